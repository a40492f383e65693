"""Measuring a text run: likelihood on the validation split, and what its samples are like.

    record = evaluate_text(genlab.load("runs/gpt"), n=100, seed=0, controls={"top_p": 0.9})
    record["bits_per_char"], record["distinct_2"], record["copied_span_max"]

Two parts, each saved with the protocol that makes it reproducible:

- likelihood: the mean negative log-likelihood of every validation token, predicted once in
  non-overlapping windows of the model's context (as the trainer's val_loss): nats per
  token, perplexity, bits per token and bits per character (the total over the characters
  those tokens spell, so a character model and a BPE model compare).
- samples: ``n`` continuations drawn with the given controls, scored by ``metrics/text.py``
  (readability as the share of words the training text uses, distinct-n, self-BLEU,
  repetition, n-gram novelty and the longest span copied from the training text). Beside
  them, ``reference`` scores ``n`` pieces of real held-out text of the same lengths the same
  way: what a model that writes like the corpus would get.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import torch
from tqdm.auto import tqdm

from genlab.data import TokenData, load_corpus
from genlab.metrics.text import CorpusIndex, text_metrics, words

BATCH = 50  # samples generated at once


@torch.no_grad()
def likelihood(run, corpus, progress: bool = True) -> dict[str, Any]:
    """Validation NLL of ``run`` over the whole split of ``corpus`` (see module doc)."""
    model = run.model
    data = TokenData(corpus.val.to(model.device), run.config.model.block_size)
    with tqdm(
        total=len(data.x) - 1,
        desc="validation likelihood",
        unit="tok",
        file=sys.stderr,
        disable=not progress,
        delay=1.0,
    ) as bar:
        r = model.evaluate(data.batches(32), progress=bar.update)
    tok = corpus.tokenizer
    targets = corpus.val[1:].tolist()
    eot = tok.eot_id
    # an end-of-text token stands for one character (the break between documents)
    chars = len(tok.decode([t for t in targets if t != eot])) + sum(t == eot for t in targets)
    nats = r["nll_sum"] / r["tokens"]
    return {
        "val_loss": nats,
        "perplexity": math.exp(nats),
        "bits_per_token": nats / math.log(2),
        "bits_per_char": r["nll_sum"] / math.log(2) / chars,
        "val_tokens": r["tokens"],
        "val_chars": chars,
    }


def _reference_texts(corpus, lengths: list[int]) -> list[str]:
    """Real held-out text cut to the given lengths (characters): the first validation
    documents, or evenly spaced pieces of one long validation text."""
    docs = [d for d in corpus.text.val if d.strip()]
    if len(docs) >= len(lengths):
        return [d[:k] for d, k in zip(docs, lengths)]
    text = "\n\n".join(docs)
    step = max(1, (len(text) - max(lengths)) // max(1, len(lengths)))
    return [text[i * step : i * step + k] for i, k in enumerate(lengths)]


def evaluate_text(
    run,
    *,
    metrics=("samples", "nll"),
    n: int = 100,
    seed: int = 0,
    controls: dict | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The record of ``run`` under this protocol (see the module doc)."""
    model = run.model
    corpus = load_corpus(run.config.data, model.tokenizer, progress=progress)
    full = model.check_controls(dict(controls or {}))
    protocol: dict[str, Any] = {
        "data": run.config.data.name,
        **run.identity(),  # weights, their sha256 and training step
        "split": "validation",
        "tokenizer": f"{corpus.tokenizer.kind} ({corpus.tokenizer.vocab_size} ids)",
    }
    record: dict[str, Any] = {}
    t0 = time.perf_counter()
    if "nll" in metrics:
        record.update(likelihood(run, corpus, progress))
        protocol["likelihood"] = (
            "every validation token predicted once, non-overlapping windows of "
            f"{run.config.model.block_size} tokens; bits per character over the characters "
            "they spell (an end-of-text counts as one)"
        )
    if "samples" in metrics:
        g = torch.Generator(device=model.device).manual_seed(seed)
        samples: list[str] = []
        with tqdm(
            total=n, desc="generating", unit="sample", file=sys.stderr, disable=not progress
        ) as bar:
            for first in range(0, n, BATCH):
                samples += model.sample(min(BATCH, n - first), generator=g, **full)
                bar.update(min(BATCH, n - first))
        index = CorpusIndex(corpus.text.text("train"))
        record.update(text_metrics(samples, index))
        reference = _reference_texts(corpus, [max(1, len(s)) for s in samples])
        record["reference"] = text_metrics(reference, index)
        record["mean_words"] = sum(len(words(s)) for s in samples) / max(1, n)
        record["samples_preview"] = samples[:3]
        protocol.update(
            n_generated=n,
            seed=seed,
            controls=full,
            ngrams="lowercased words and punctuation marks (metrics/text.py)",
            reference="n pieces of the validation text, each as long as a sample",
        )
    record["protocol"] = protocol
    record["time_s"] = round(time.perf_counter() - t0, 1)
    return record
