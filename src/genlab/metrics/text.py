"""Text metrics for generated stories: diversity, repetition, and copying from the training set.

All metrics work on word tokens (`words`): lowercase words and punctuation marks, so n-grams
include punctuation. Pure Python and numpy; no model is needed.

    index = CorpusIndex(train_text)            # once per training corpus (~0.5 s for 1 MB)
    text_metrics(samples, index)               # {"distinct_1": 0.41, "self_bleu": 0.23, ...}
    index.longest_copied_span(samples[0])      # (12, "once upon a time , there was a little ...")
    index.known_words(samples)                 # 0.93: share of the words the corpus uses
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

_TOKEN = re.compile(r"\w+|[^\w\s]")

# Hashing of word n-grams: hash(w_0..w_{L-1}) = sum_k id(w_k) * B**k mod 2**64 (uint64 wraparound).
# One 64-bit hash (B = the odd 64-bit golden-ratio constant), no second check: checking ~1e5
# generated n-grams against ~5e5 corpus n-grams compares ~5e10 pairs, so a false match has a
# probability of about 5e10 / 2**64 ~ 3e-9 (only contrived inputs, e.g. Thue-Morse sequences,
# collide more often mod 2**64). B odd makes it invertible mod 2**64, so prefix sums give the hash
# of any window in O(1), vectorised (see `_prefix_hashes`).
_B = 0x9E3779B97F4A7C15
_B_INV = pow(_B, -1, 2**64)
_ANCHOR = 4  # spans longer than this are searched from corpus positions whose 4-gram matches


def words(text: str) -> list[str]:
    """Word tokens, lowercased, punctuation marks as tokens of their own.

    words("Tom's dog.")  # -> ["tom", "'", "s", "dog", "."]
    """
    return _TOKEN.findall(text.lower())


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct-n (Li et al. 2016): unique word n-grams / all word n-grams, pooled over texts.

    distinct_n(["a b a b"], 2)  # -> 2/3 (ab, ba, ab); 0.0 when there are no n-grams
    """
    grams = [g for t in texts for g in _ngrams(words(t), n)]  # n-grams never cross texts
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(texts: list[str], n: int = 4) -> float:
    """Share of word n-grams that already occurred earlier in the same text, pooled over texts.

    repetition_rate(["the dog ran . " * 50])  # -> 0.98: a looping model scores near 1
    """
    repeated = total = 0
    for t in texts:
        grams = _ngrams(words(t), n)
        repeated += len(grams) - len(set(grams))  # every occurrence after the first is a repeat
        total += len(grams)
    return repeated / total if total else 0.0


def self_bleu(texts: list[str], max_n: int = 4) -> float:
    """Self-BLEU (Zhu et al. 2018, Texygen): mean BLEU of each text against all the others.

    Sentence BLEU as NLTK computes it with uniform weights and smoothing method 1: clipped
    n-gram precisions (clip = the largest count in any one reference), a zero numerator becomes
    0.1 / denominator, no unigram match gives 0, and the brevity penalty uses the reference
    length closest to the text's (the shorter one on a tie). Higher means less diverse.

    self_bleu(["a cat sat here", "a cat sat there"], max_n=2)  # -> 0.707 = sqrt(3/4 * 2/3)
    """
    if len(texts) < 2:
        raise ValueError(f"self_bleu needs at least 2 texts, got {len(texts)}")
    toks = [words(t) for t in texts]
    lengths = [len(t) for t in toks]
    counts = [[Counter(_ngrams(t, n)) for t in toks] for n in range(1, max_n + 1)]  # [n-1][i]

    # With each text in turn as the hypothesis and all others as references, the clip count of
    # an n-gram is its largest count in the other texts. Keeping, per n-gram, the top count, the
    # text holding it and the runner-up count makes that O(1) instead of a scan of all texts.
    tops = []
    for per_text in counts:
        top: dict[tuple[str, ...], list[int]] = {}  # n-gram -> [best count, its text, second best]
        for i, counter in enumerate(per_text):
            for g, c in counter.items():
                best = top.setdefault(g, [0, -1, 0])
                if c > best[0]:
                    best[:] = [c, i, best[0]]
                elif c > best[2]:
                    best[2] = c
        tops.append(top)

    scores = []
    for i, c in enumerate(lengths):
        nums, dens = [], []  # clipped matches and hypothesis n-grams, for n = 1..max_n
        for per_text, top in zip(counts, tops):
            nums.append(sum(min(k, _count_in_others(top[g], i)) for g, k in per_text[i].items()))
            dens.append(max(1, sum(per_text[i].values())))
        if nums[0] == 0:  # no unigram matches (or an empty text): BLEU is 0, as in NLTK
            scores.append(0.0)
            continue
        log_p = [math.log(m / d if m else 0.1 / d) for m, d in zip(nums, dens)]  # method 1
        r = min((abs(ref - c), ref) for j, ref in enumerate(lengths) if j != i)[1]
        brevity = 1.0 if c > r else math.exp(1 - r / c)
        scores.append(brevity * math.exp(sum(log_p) / max_n))
    return sum(scores) / len(scores)


def _count_in_others(top: list[int], i: int) -> int:
    """Largest count of an n-gram in any text but text i, from [best count, its text, second]."""
    best, holder, second = top
    return second if holder == i else best


def _prefix_hashes(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prefix sums S (T+1,) of id_j * B**j and powers B**-j (T,), all uint64 mod 2**64."""
    pow_b = np.full(len(ids), _B, dtype=np.uint64)
    pow_inv = np.full(len(ids), _B_INV, dtype=np.uint64)
    pow_b[:1] = pow_inv[:1] = 1
    pow_b, pow_inv = np.cumprod(pow_b), np.cumprod(pow_inv)  # B**j, B**-j; wrap mod 2**64
    prefix = np.zeros(len(ids) + 1, dtype=np.uint64)
    np.cumsum(ids.astype(np.uint64) * pow_b, out=prefix[1:])
    return prefix, pow_inv


def _window_hashes(
    prefix: np.ndarray, pow_inv: np.ndarray, n: int, starts: np.ndarray | None = None
) -> np.ndarray:
    """Hashes of the n-grams starting at `starts` (default: all T-n+1 of them)."""
    if starts is None:
        starts = np.arange(max(len(prefix) - n, 0))
    # (S[i+n] - S[i]) * B**-i = sum_k id_{i+k} * B**k: the same value wherever the n-gram sits
    return (prefix[starts + n] - prefix[starts]) * pow_inv[starts]


def _member(sorted_hashes: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Boolean mask: which `queries` occur in `sorted_hashes`."""
    if len(sorted_hashes) == 0:
        return np.zeros(len(queries), dtype=bool)
    pos = np.searchsorted(sorted_hashes, queries).clip(max=len(sorted_hashes) - 1)
    return sorted_hashes[pos] == queries


class CorpusIndex:
    """Built once from the training corpus (a str, e.g. 2 MB); answers which word n-grams occur in it.

    index = CorpusIndex(Path("input.txt").read_text())
    index.novelty(samples, n=4)           # share of generated 4-grams absent from the corpus
    index.longest_copied_span(sample)     # (length in words, the span)
    """

    def __init__(self, corpus: str):
        self.vocab: dict[str, int] = {}
        ids = [self.vocab.setdefault(w, len(self.vocab)) for w in words(corpus)]
        self.ids = np.array(ids, dtype=np.int64)  # (N,) word ids of the whole corpus
        self._prefix, self._pow_inv = _prefix_hashes(self.ids)
        self._by_n: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # n -> (sorted hashes, starts)

    def _ids(self, text: str) -> np.ndarray:
        # A word the corpus never uses gets id len(vocab): no corpus n-gram contains it.
        return np.array([self.vocab.get(w, len(self.vocab)) for w in words(text)], dtype=np.int64)

    def _index(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """All corpus n-gram hashes, sorted, with the corpus position each n-gram starts at."""
        if n not in self._by_n:
            hashes = _window_hashes(self._prefix, self._pow_inv, n)  # (N-n+1,)
            order = np.argsort(hashes, kind="stable")
            self._by_n[n] = hashes[order], order
        return self._by_n[n]

    def novelty(self, texts: list[str], n: int = 4) -> float:
        """Share of the generated word n-grams (pooled over texts) that never occur in the corpus.

        0.0 when the texts have no n-grams.
        """
        sorted_hashes, _ = self._index(n)
        new = total = 0
        for t in texts:
            queries = _window_hashes(*_prefix_hashes(self._ids(t)), n)
            new += int((~_member(sorted_hashes, queries)).sum())
            total += len(queries)
        return new / total if total else 0.0

    def known_words(self, texts: list[str]) -> float:
        """Readability: the share of the texts' words (word tokens of letters only, so no
        punctuation or numbers) that occur somewhere in the corpus, pooled over texts.

        Real held-out text of the corpus scores near 1; made-up words ("thenk", "wald") lower
        it. 0.0 when the texts have no words.

            CorpusIndex("The cat sat.").known_words(["the dog sat", "a cat"])  # -> 3/5 = 0.6
        """
        tokens = [w for t in texts for w in words(t) if w.isalpha()]
        known = sum(w in self.vocab for w in tokens)
        return known / len(tokens) if tokens else 0.0

    def longest_copied_span(self, text: str) -> tuple[int, str]:
        """The longest run of consecutive words of `text` that occurs contiguously in the corpus.

        index.longest_copied_span("zork once upon a time zork")  # -> (4, "once upon a time")
        """
        tokens = words(text)
        length, start = self._longest(text, tokens)
        return length, " ".join(tokens[start : start + length])

    def copied_span(self, text: str) -> tuple[int, int, int]:
        """The longest copied span as (length in words, start, end): character offsets into
        ``text`` (0, 0 when nothing is copied), for highlighting it where the text is shown.

        index.copied_span("Zork, once upon a time!")  # -> (4, 6, 22)
        """
        tokens = words(text)
        length, start = self._longest(text, tokens)
        if length == 0:
            return 0, 0, 0
        spans = [m.span() for m in _TOKEN.finditer(text.lower())]
        # lower() keeps offsets for all but a few characters (e.g. U+0130): clamp to the text
        a, b = spans[start][0], spans[start + length - 1][1]
        return length, min(a, len(text)), min(b, len(text))

    def _longest(self, text: str, tokens: list[str]) -> tuple[int, int]:
        """(length, first word index) of the longest copied span of ``text`` (``tokens`` its
        words)."""
        prefix, pow_inv = _prefix_hashes(self._ids(text))
        # A corpus copy of a span longer than _ANCHOR words starts with one of the text's
        # _ANCHOR-grams, so long spans are only hashed at those corpus positions.
        sorted_hashes, order = self._index(_ANCHOR)
        anchors = np.unique(_window_hashes(prefix, pow_inv, _ANCHOR))
        first = np.searchsorted(sorted_hashes, anchors, side="left")
        last = np.searchsorted(sorted_hashes, anchors, side="right")
        candidates = np.concatenate([order[:0]] + [order[a:b] for a, b in zip(first, last)])

        # If an L-word span occurs in the corpus, so does every shorter one: binary search on L,
        # keeping lo = longest length known present, hi = shortest length known absent.
        lo, hi, start = 0, min(len(tokens), len(self.ids)) + 1, 0
        while hi - lo > 1:
            mid = (lo + hi) // 2
            queries = _window_hashes(prefix, pow_inv, mid)  # (T-mid+1,) the text's mid-grams
            if mid <= _ANCHOR:
                hit = _member(self._index(mid)[0], queries)
            else:
                starts = candidates[candidates + mid <= len(self.ids)]
                copies = _window_hashes(self._prefix, self._pow_inv, mid, starts)
                copied = _member(np.sort(queries), copies)  # (len(starts),)
                hit = np.isin(queries, copies[copied])
                if copied.any():  # later probes are longer: their copies start at one of these
                    candidates = starts[copied]
            if hit.any():
                lo, start = mid, int(np.argmax(hit))
            else:
                hi = mid
        return lo, start


def text_metrics(samples: list[str], index: CorpusIndex | None = None) -> dict[str, float]:
    """Diversity and repetition of `samples`, and with a training-corpus index, their copying.

    text_metrics(samples, CorpusIndex(train_text))
    # -> distinct_1/2/3, self_bleu, repetition_rate, known_words (share of words the corpus
    #    uses), novelty_3, novelty_4 (share of new word 3- and 4-grams), copied_span_max,
    #    copied_span_mean (longest copied span, in words)

    Needs at least 2 samples (self-BLEU compares each sample with the others).
    """
    out = {f"distinct_{n}": distinct_n(samples, n) for n in (1, 2, 3)}
    out["self_bleu"] = self_bleu(samples)
    out["repetition_rate"] = repetition_rate(samples)
    if index is not None:
        out["known_words"] = index.known_words(samples)
        out["novelty_3"] = index.novelty(samples, 3)
        out["novelty_4"] = index.novelty(samples, 4)
        spans = [float(index.longest_copied_span(s)[0]) for s in samples]
        out["copied_span_max"] = max(spans)
        out["copied_span_mean"] = sum(spans) / len(spans)
    return out
