"""Autoregressive generation, shared by the GPT and the RNN: one loop, every control.

    ids = generate(model, [prompt_ids] * 4, max_new_tokens=200, temperature=0.8, top_p=0.95,
                   generator=torch.Generator().manual_seed(0))   # 4 lists of new token ids

The model gives two things (see ``models/ar/lm.py``):

- ``model.step(idx, state) -> (logits, state)``: logits (B, V) of the token after ``idx``
  (B, t), given the ``state`` its previous call returned (None: ``idx`` is the whole
  context). The GPT's state is its key/value cache, the RNN's its hidden state; either
  way a step costs one token's work, not the whole context's.
- ``model.block_size``: the longest context it attends to (None for an RNN).

When a GPT's context is full, the oldest half is dropped and the cache refilled from the
rest, so each refill buys ``block_size // 2`` cheap steps. ``use_cache=False`` recomputes
the same window from scratch at every step (the reference ``benchmarks/generate_speed.py``
compares against): both see exactly the same tokens.

Logit processing, in order: repetition penalty (CTRL, Keskar et al. 2019), no-repeat n-gram
ban, temperature (0: greedy), top-k, top-p (nucleus, Holtzman et al. 2020), min-p (Nguyen
et al. 2024). A sequence ends at ``eot_id``, or when ``max_new_tokens`` were drawn;
``stop`` strings are cut in ``lm.py``, which sees text.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _penalize_repeats(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty: a token already in the context has its logit divided by ``penalty``
    when positive, multiplied when negative (so it always becomes less likely)."""
    hit = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, hit, logits)


def _banned_by_ngrams(seqs: list[list[int]], n: int) -> list[list[int]]:
    """For each sequence, the tokens that would complete an n-gram it already holds."""
    out = []
    for seq in seqs:
        if len(seq) < n:
            out.append([])
            continue
        prefix = tuple(seq[len(seq) - n + 1 :])
        out.append(
            [seq[i + n - 1] for i in range(len(seq) - n + 1) if tuple(seq[i : i + n - 1]) == prefix]
        )
    return out


def filter_logits(
    logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0
) -> torch.Tensor:
    """Set to -inf every logit that top-k, top-p or min-p removes (B, V); the most likely
    token always survives."""
    if top_k and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # drop a token when the mass before it already reaches top_p
        drop_sorted = (cum - sorted_logits.softmax(-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    if min_p > 0.0:
        probs = logits.softmax(-1)
        floor = min_p * probs.max(dim=-1, keepdim=True).values
        logits = logits.masked_fill(probs < floor, float("-inf"))
    return logits


def _next_logits(model, buf, start: int, length: int, state, use_cache: bool):
    """Logits (B, V) of the token after the window ``buf[:, start:length]`` and the state to
    pass next time: from the cache, one token's work, when there is one; else the window
    from scratch (and no state kept without ``use_cache``)."""
    if use_cache and state is not None:
        return model.step(buf[:, length - 1 : length], state)
    logits, state = model.step(buf[:, start:length], None)
    return logits, (state if use_cache else None)


def _ban_ngrams(logits: torch.Tensor, history: list[list[int]], n: int, vocab: int) -> list[bool]:
    """Set to -inf, in place, the logits of the tokens that would repeat an n-gram of each
    sequence; returns for each whether every token would (it is stuck, nothing to draw)."""
    stuck = [False] * len(history)
    for i, banned in enumerate(_banned_by_ngrams(history, n)):
        if len(set(banned)) >= vocab:
            stuck[i] = True
            logits[i] = 0.0  # a finite row to draw from; the draw is dropped
        elif banned:
            logits[i, banned] = float("-inf")
    return stuck


def _draw(logits, temperature, top_k, top_p, min_p, generator, want_probs: bool):
    """The next token of each sequence (B,) and the distribution it was drawn from (B, V)
    (greedy: the plain softmax, and only if ``want_probs``)."""
    if temperature == 0:
        return logits.argmax(-1), (logits.softmax(-1) if want_probs else None)
    probs = filter_logits(logits / temperature, top_k, top_p, min_p).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1), probs


def _record(tokens, out, done, history, stuck, eot_id, on_token) -> None:
    """Each sequence's drawn token into its history and, while it has not ended, into its
    output; it ends at ``eot_id``, when stuck, or where ``on_token`` says so."""
    for i, t in enumerate(tokens):
        if history is not None:
            history[i].append(t)
        if done[i]:
            continue
        if t == eot_id or stuck[i]:
            done[i] = True
            continue
        out[i].append(t)
        if on_token is not None and on_token(i, t):
            done[i] = True


@torch.inference_mode()  # no autograd bookkeeping at all: lighter per token than no_grad
def generate(
    model,
    prompts: list[list[int]],
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    min_p: float = 0.0,
    repetition_penalty: float = 1.0,
    no_repeat_ngram: int = 0,
    eot_id: int | None = None,
    generator: torch.Generator | None = None,
    on_token: Callable[[int, int], bool | None] | None = None,
    on_probs: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
    use_cache: bool = True,
) -> list[list[int]]:
    """New tokens for each prompt (all prompts the same length, at least one token).

    ``on_token(i, token)`` is called for every token drawn for sequence i, in order; it
    may return True to end sequence i there (stop strings, a closed stream). A sequence
    that drew ``eot_id`` ends; its list holds the ids before it. So does one to which
    ``no_repeat_ngram`` leaves no token at all. ``on_probs(probs, drawn)``, called at each
    step before ``on_token``, sees the distribution the tokens were drawn from (B, V) (after
    every control; greedy: the plain softmax) and the drawn ids (B,): the studio shows each
    token's probability and its alternatives.
    """
    if not prompts or not prompts[0]:
        raise ValueError("generate needs at least one prompt token per sequence")
    if len({len(p) for p in prompts}) != 1:
        raise ValueError("all prompts must have the same length")
    device = model.device
    prompt = torch.tensor(prompts, dtype=torch.long, device=device)  # (B, L)
    b, length = prompt.shape
    buf = torch.empty(b, length + max_new_tokens, dtype=torch.long, device=device)
    buf[:, :length] = prompt  # the context is buf[:, :length]
    block = model.block_size
    vocab = model.vocab_size
    seen = None
    if repetition_penalty != 1.0:
        seen = torch.zeros(b, vocab, dtype=torch.bool, device=device)
        seen.scatter_(1, prompt, True)
    out: list[list[int]] = [[] for _ in range(b)]
    done = [False] * b
    history = [list(p) for p in prompts] if no_repeat_ngram else None
    start, state = 0, None  # the window buf[:, start:length] is what the model sees
    for _ in range(max_new_tokens):
        if block is not None and length - start > block:
            start, state = length - block // 2, None  # full: keep the newest half
        logits, state = _next_logits(model, buf, start, length, state, use_cache)
        if logits.dtype != torch.float32:
            logits = logits.float()
        if seen is not None:
            logits = _penalize_repeats(logits, seen, repetition_penalty)
        stuck = [False] * b  # every token would repeat an n-gram: nothing left to draw
        if history is not None:
            stuck = _ban_ngrams(logits, history, no_repeat_ngram, vocab)
        nxt, probs = _draw(
            logits, temperature, top_k, top_p, min_p, generator, on_probs is not None
        )
        if on_probs is not None:
            on_probs(probs, nxt)
        buf[:, length] = nxt
        length += 1
        if seen is not None:
            seen.scatter_(1, nxt[:, None], True)
        _record(nxt.tolist(), out, done, history, stuck, eot_id, on_token)
        if all(done):
            break
    return out
