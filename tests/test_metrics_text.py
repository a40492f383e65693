"""Text metrics: hand-worked values, the corpus index against brute force, and Tiny Shakespeare."""

import math
import random

import pytest

from genlab.metrics.text import (
    CorpusIndex,
    distinct_n,
    repetition_rate,
    self_bleu,
    text_metrics,
    words,
)


def brute_longest(text: str, corpus: str) -> int:
    """Longest run of words of `text` found contiguously in `corpus`, by trying every span."""
    t, c = words(text), words(corpus)
    grams = lambda ws, n: {tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)}  # noqa: E731
    best = 0
    while best < len(t) and grams(t, best + 1) & grams(c, best + 1):
        best += 1
    return best


@pytest.fixture(scope="module")
def corpus() -> str:
    """2,000 words over a 40-word vocabulary with punctuation: n-grams repeat, as in real text."""
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(40)] + [",", "."]
    return " ".join(rng.choice(vocab) for _ in range(2000))


# --- tokens and diversity -------------------------------------------------------------------


def test_words_lowercases_and_splits_punctuation():
    assert words("Tom's dog.") == ["tom", "'", "s", "dog", "."]
    assert words("The THE, the!") == ["the", "the", ",", "the", "!"]
    assert words("  \n") == []


def test_distinct_n_hand_worked():
    assert distinct_n(["a b a b"], 1) == 0.5  # a, b / 4 unigrams
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # ab, ba / (ab, ba, ab)
    # pooled over texts: the same n-gram in two texts counts once among the unique ones
    assert distinct_n(["a b", "a b"], 2) == 0.5
    assert distinct_n(["A b.", "a B ."], 1) == 0.5  # case folded, "." is a token


def test_distinct_n_does_not_cross_texts_and_handles_empty():
    assert distinct_n(["a", "b"], 2) == 0.0  # no bigram "a b" across the two texts
    assert distinct_n([], 1) == 0.0
    assert distinct_n(["", "   "], 3) == 0.0


def test_repetition_rate_looping_vs_fresh():
    # 200 words repeating a 4-word cycle: 197 4-grams, only the first 4 are new
    assert repetition_rate(["the dog ran . " * 50]) == pytest.approx(193 / 197)
    assert repetition_rate(["one two three four five six seven eight"]) == 0.0
    # a repeat must be within one text, and the share is pooled over texts
    assert repetition_rate(["a b c d e", "a b c d e"]) == 0.0
    assert repetition_rate(["a b a b a", "c d e f g"], n=2) == pytest.approx(2 / 8)
    assert repetition_rate([]) == 0.0 and repetition_rate(["a b"]) == 0.0


# --- self-BLEU ------------------------------------------------------------------------------


def test_self_bleu_identical_texts_is_one_and_unrelated_is_zero():
    story = "Once upon a time, a little fox found a red ball in the big green park."
    assert self_bleu([story] * 3) == pytest.approx(1.0)
    assert self_bleu(["alpha beta gamma delta", "epsilon zeta eta theta"]) == 0.0


def test_self_bleu_hand_worked_with_smoothing():
    texts = ["the cat sat on the mat", "the cat lay on the mat"]
    # unigrams 5/6 (sat unmatched), bigrams 3/5 (the cat, on the, the mat); same both ways
    assert self_bleu(texts, max_n=2) == pytest.approx(math.sqrt(5 / 6 * 3 / 5))
    # trigrams 1/4 (on the mat); no 4-gram of 3 matches: method 1 gives 0.1/3
    assert self_bleu(texts, max_n=4) == pytest.approx((5 / 6 * 3 / 5 * 1 / 4 * 0.1 / 3) ** 0.25)


def test_self_bleu_clips_to_max_count_in_one_reference():
    # "the" x3 against refs with 1 each: clipped to 1 (max over refs, not their sum 2)
    assert self_bleu(["the the the", "the", "the"], max_n=1) == pytest.approx((1 / 3 + 1 + 1) / 3)
    # tied best counts: "the" x2 is in texts 0 and 2, so each still finds 2 in the other
    got = self_bleu(["the the cat", "the cat", "the the dog"], max_n=1)
    assert got == pytest.approx((1 + math.exp(1 - 3 / 2) + 2 / 3) / 3)


def test_self_bleu_brevity_penalty_uses_closest_reference():
    # "the cat sat" (3 words) vs a 6-word ref: precision 1, penalty exp(1 - 6/3);
    # the 6-word text vs the 3-word one: p1 = 3/6, p2 = 2/5, no penalty
    got = self_bleu(["the cat sat", "the cat sat on the mat"], max_n=2)
    assert got == pytest.approx((math.exp(-1) + math.sqrt(3 / 6 * 2 / 5)) / 2)


def test_self_bleu_is_order_invariant_and_ranks_diversity():
    rng = random.Random(1)
    vocab = [f"w{i}" for i in range(200)]
    diverse = [" ".join(rng.choice(vocab) for _ in range(50)) for _ in range(8)]
    base = diverse[0].split()
    similar = [" ".join(base[:40] + rng.sample(vocab, 10)) for _ in range(8)]  # shared 40 words
    assert self_bleu(diverse) == pytest.approx(self_bleu(diverse[::-1]))
    assert self_bleu(diverse) < 0.1 < 0.7 < self_bleu(similar)


def test_self_bleu_needs_two_texts_and_scores_empty_texts_zero():
    with pytest.raises(ValueError, match="at least 2"):
        self_bleu(["just one story"])
    assert self_bleu(["", ""]) == 0.0
    assert self_bleu(["a b c d", "a b c d", ""]) == pytest.approx(2 / 3)


# --- corpus index ---------------------------------------------------------------------------


def test_novelty_copied_text_is_zero_unseen_words_one(corpus):
    index = CorpusIndex(corpus)
    ws = corpus.split()
    copied = [" ".join(ws[100:160]), " ".join(ws[1500:1520]).upper()]  # case does not matter
    assert index.novelty(copied, 3) == 0.0 and index.novelty(copied, 4) == 0.0
    assert index.novelty(["zebra yak xylophone vole urchin"], 3) == 1.0
    text = " ".join(ws[10:14]) + " zebra"  # two 4-grams: one copied, one ending in "zebra"
    assert index.novelty([text], 4) == 0.5


def test_novelty_matches_brute_force(corpus):
    index = CorpusIndex(corpus)
    rng = random.Random(2)
    vocab = [f"w{i}" for i in range(45)]  # w40..w44 never occur in the corpus
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 30))) for _ in range(20)]
    toks = words(corpus)
    for n in (1, 2, 3, 4):
        seen = {tuple(toks[i : i + n]) for i in range(len(toks))}
        grams = [tuple(words(t)[i : i + n]) for t in texts for i in range(len(words(t)) - n + 1)]
        expected = sum(g not in seen for g in grams) / len(grams)
        assert index.novelty(texts, n) == pytest.approx(expected, abs=1e-15)


def test_longest_copied_span_finds_spliced_passage(corpus):
    index = CorpusIndex(corpus)
    passage = " ".join(corpus.split()[700:712])  # 12 words
    assert index.longest_copied_span(f"zebra yak {passage} vole") == (12, passage)
    # at the very start and end of the corpus, with different case and spacing
    head, tail = corpus.split()[:9], corpus.split()[-15:]
    assert index.longest_copied_span("ZEBRA " + " ".join(head).upper()) == (9, " ".join(head))
    assert index.longest_copied_span(" ".join(tail) + " zebra") == (15, " ".join(tail))


def test_longest_copied_span_matches_brute_force(corpus):
    index = CorpusIndex(corpus)
    rng = random.Random(3)
    ws = corpus.split()
    for _ in range(20):
        # pieces copied from random places, glued with corpus words and unseen ones
        parts = []
        for _ in range(3):
            start = rng.randrange(len(ws))
            parts += ws[start : start + rng.randint(0, 25)] + rng.sample(ws + ["zebra"] * 5, 2)
        text = " ".join(parts)
        length, span = index.longest_copied_span(text)
        assert length == brute_longest(text, corpus)
        assert len(span.split()) == length and f" {span} " in f" {corpus} " and span in text


def test_corpus_index_empty_inputs():
    index = CorpusIndex("Once upon a time, there was a fox.")
    assert index.longest_copied_span("") == (0, "")
    assert index.longest_copied_span("zebra") == (0, "")
    assert index.longest_copied_span("A FOX!") == (2, "a fox")
    assert index.novelty([]) == 0.0 and index.novelty(["a fox"]) == 0.0  # no 4-grams at all
    empty = CorpusIndex("")
    assert empty.novelty(["once upon a time"]) == 1.0
    assert empty.longest_copied_span("once upon a time") == (0, "")


def test_text_metrics_keys_and_values(corpus):
    samples = ["the dog ran . " * 10, "a cat sat on the mat, and the cat slept."]
    plain = text_metrics(samples)
    assert set(plain) == {"distinct_1", "distinct_2", "distinct_3", "self_bleu", "repetition_rate"}
    assert plain["distinct_2"] == distinct_n(samples, 2)
    assert plain["self_bleu"] == self_bleu(samples)

    index = CorpusIndex(corpus)
    copied = [" ".join(corpus.split()[:30]), "zebra " + " ".join(corpus.split()[50:60])]
    full = text_metrics(copied, index)
    # the only new n-grams are the ones starting with "zebra": 1 of 28 + 9 3-grams, 1 of 27 + 8
    assert full["novelty_3"] == pytest.approx(1 / 37) and full["novelty_4"] == pytest.approx(1 / 35)
    assert full["copied_span_max"] == 30 and full["copied_span_mean"] == 20
    assert full["known_words"] == 0.0  # "zebra" is the only word of letters ("w12" is not)
    with pytest.raises(ValueError):
        text_metrics(["only one"], index)


def test_known_words_hand_worked():
    index = CorpusIndex("The cat sat on the mat. Tom's dog ran 3 miles!")
    # words of letters: the dog sat | a cat cats ("42" and "," are not words); known: the, dog,
    # sat, cat; pooled over the two texts: 4 of 6
    assert index.known_words(["The dog sat", "A cat, 42 cats!"]) == pytest.approx(4 / 6)
    assert index.known_words(["TOM'S"]) == 1.0  # tom, s: both in the corpus, case folded
    assert index.known_words(["the thw"]) == 0.5
    assert index.known_words(["3 , ."]) == 0.0 and index.known_words([]) == 0.0


# --- real data ------------------------------------------------------------------------------


def test_known_words_on_the_embedded_grimms():
    from genlab.data.text import load_text

    ts = load_text("grimms", progress=False)
    index = CorpusIndex(ts.text("train"))
    held_out = ts.text("val")
    assert 0.95 < index.known_words([held_out]) < 1.0  # real text: a few names are new
    letters = list(held_out)
    random.Random(0).shuffle(letters)  # the same characters, no words
    assert index.known_words(["".join(letters)]) < 0.3


def test_tiny_shakespeare_index(shared_data):
    text = (shared_data / "tinyshakespeare" / "input.txt").read_text()
    index = CorpusIndex(text)
    toks = words(text)
    assert len(index.ids) == len(toks) and len(index.vocab) == len(set(toks))

    line = "Before we proceed any further, hear me speak."  # the play's second line
    assert index.longest_copied_span(f"Zebrafish {line} Xylophones") == (
        len(words(line)),
        " ".join(words(line)),
    )
    # novelty agrees with a set of the corpus 4-grams, on text made from corpus pieces
    rng = random.Random(4)
    samples = []
    for _ in range(20):
        start = rng.randrange(len(toks) - 100)
        samples.append(" ".join(toks[start : start + 30] + rng.sample(toks, 10)))
    seen = set(zip(toks, toks[1:], toks[2:], toks[3:]))
    grams = [g for s in samples for g in zip(*(words(s)[k:] for k in range(4)))]
    assert index.novelty(samples, 4) == pytest.approx(
        sum(g not in seen for g in grams) / len(grams)
    )
    assert index.novelty([" ".join(toks[5000:5300])], 4) == 0.0
