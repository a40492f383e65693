"""Guards that each family learns, through the real trainer.

Every registered family (and the GRU beside the LSTM) trains briefly on embedded data
through ``genlab.train`` and is compared with its own untrained start: the same config and
seed for one step at train.lr=0, which leaves the weights as they were built. It must beat
that start by a stated margin:

- validation loss at most LOSS_RATIO of the start's (the GAN's "validation loss" is its
  D + G objective, which does not fall as G improves, so the GAN is judged on samples);
- conditional image families: class consistency (the domain classifier agreeing with the
  digit asked for) of at least MIN_CONSISTENCY, where chance is 10%;
- families that take a prompt (on the embedded shapes): the share of shapes drawn in the
  colour the prompt names (the drawn pixels' mean colour nearest the palette's), at least
  MIN_CONSISTENCY, where chance is 1 in 6;
- text: validation bits per character below the unigram entropy of the training text
  (what a model that knows only letter frequencies would score).

The budgets below are the fewest steps that pass with room to spare on two CPU cores. To see
the guard fail when learning is broken:

    GENLAB_LEARNING_OVERRIDES="train.lr=0" pytest tests/test_learning.py
"""

import json
import math
import os
from collections import Counter

import numpy as np
import pytest

import genlab
from genlab.data import DataConfig, load_corpus, load_data
from genlab.metrics.features import get_classifier
from genlab.metrics.protocol import generate
from genlab.metrics.text_protocol import likelihood
from genlab.registry import get, names

LOSS_RATIO = 0.7  # trained validation loss <= 70% of the untrained start's
MIN_CONSISTENCY = 0.5  # chance: 0.1 (ten digits)
N_SAMPLES = 200  # samples whose class consistency is measured

# family -> steps and overrides of the brief run (on top of the tiny preset's logging)
BUDGET = {
    "vae": (100, ["model.kl_warmup_steps=0", "train.warmup_steps=20"]),
    "gan": (400, ["train.warmup_steps=20"]),
    "diffusion": (100, ["model.width=16", "train.warmup_steps=20", "train.lr=2e-3"]),
    "rnn": (150, ["model.hidden=64", "model.block_size=32", "train.lr=3e-3"]),
    "gpt": (150, ["model.n_embd=64", "model.n_head=4", "model.block_size=32", "train.lr=3e-3"]),
    "txt2img": (300, ["model.width=16", "train.warmup_steps=20", "train.lr=2e-3"]),
}
IMAGE_COMMON = {"train.batch_size": 64, "model.conditional": "true", "data.name": "digits"}
PROMPT_COMMON = {"train.batch_size": 64, "data.name": "shapes"}
TEXT_COMMON = {"train.batch_size": 16, "data.name": "grimms", "train.warmup_steps": 20}
CASES = [(f, ()) for f in names()] + [("rnn", ("model.cell=gru",))]


# one genlab cache for the module: the domain classifier is trained once
pytestmark = pytest.mark.usefixtures("use_module_cache")


def _train(family, out, overrides, steps):
    common = get(family).data_kind == "text" and TEXT_COMMON or IMAGE_COMMON
    if get(family).takes_prompt:
        common = PROMPT_COMMON
    items = [f"{k}={v}" for k, v in common.items()] + list(overrides)
    items += [
        "train.device=cpu",
        f"train.steps={steps}",
        "train.eval_every=0",  # validation once, at the end
        "train.sample_every=0",
        "train.checkpoint_every=0",
        "train.log_every=10",
        "train.eval_batches=0",  # the whole validation split
    ]
    genlab.train(family, out, preset="tiny", overrides=items, progress=False)
    val = [r for r in map(json.loads, (out / "metrics.jsonl").open()) if "val_loss" in r]
    return genlab.load(out), val[-1]["val_loss"]


def _consistency(run) -> float:
    data = DataConfig(run.config.data.name)
    splits = load_data(data, "train", False), load_data(data, "test", False)
    clf = get_classifier(data, progress=False, splits=splits)
    x, labels = generate(run, N_SAMPLES, progress=False)
    return float((clf.probs(x).argmax(1) == np.asarray(labels)).mean())


def _colour_accuracy(run) -> float:
    """The share of shapes drawn in the colour their prompt names (see the docstring)."""
    from genlab.data.shapes import COLOURS

    names = list(COLOURS)
    palette = np.array(list(COLOURS.values()), dtype=float)
    prompts = [
        f"a large {c} {shape}, {place}"
        for c in names
        for shape in ("circle", "square", "triangle")
        for place in ("top left", "bottom right")
    ]
    x = ((run.sample(len(prompts), seed=0, prompt=prompts) + 1) * 127.5).numpy()
    hits = 0
    for img, c in zip(x, (p.split()[2] for p in prompts)):
        ink = img.min(0) < 180  # not the white ground
        if ink.sum() < 4:
            continue
        mean = img[:, ink].mean(1)
        hits += names[int(((palette - mean) ** 2).sum(1).argmin())] == c
    return hits / len(prompts)


def _unigram_bits_per_char(text: str) -> float:
    counts = Counter(text)
    total = sum(counts.values())
    return -sum(c / total * math.log2(c / total) for c in counts.values())


@pytest.mark.parametrize("family, variant", CASES, ids=[" ".join((f, *v)) for f, v in CASES])
def test_family_learns_beyond_its_untrained_start(family, variant, tmp_path):
    assert family in BUDGET, f"give the {family} family a learning budget in BUDGET"
    steps, overrides = BUDGET[family]
    overrides = [*overrides, *variant]
    start, start_loss = _train(family, tmp_path / "start", [*overrides, "train.lr=0"], 1)
    broken = os.environ.get("GENLAB_LEARNING_OVERRIDES", "").split()  # see the docstring
    run, loss = _train(family, tmp_path / "trained", [*overrides, *broken], steps)

    if get(family).data_kind == "text":
        corpus = load_corpus(run.config.data, run.model.tokenizer, progress=False)
        bpc = likelihood(run, corpus, progress=False)["bits_per_char"]
        unigram = _unigram_bits_per_char(corpus.text.text("train"))
        assert bpc < unigram, f"{bpc:.3f} bits/char, unigram entropy {unigram:.3f}"
    elif get(family).takes_prompt:
        trained, untrained = _colour_accuracy(run), _colour_accuracy(start)
        assert trained >= MIN_CONSISTENCY, (
            f"{trained:.1%} of shapes in the prompt's colour after {steps} steps "
            f"(untrained {untrained:.1%})"
        )
    else:
        trained, untrained = _consistency(run), _consistency(start)
        assert trained >= MIN_CONSISTENCY, (
            f"class consistency {trained:.1%} after {steps} steps (untrained {untrained:.1%})"
        )
    if family != "gan":
        assert loss <= LOSS_RATIO * start_loss, (
            f"validation loss {loss:.4g} after {steps} steps vs {start_loss:.4g} untrained"
        )
