"""Every registered family passes the same checks the moment it registers:
finite loss, backward, sample shape and range, controls, save/load, resume."""

import pytest
import torch
from safetensors.torch import load_file

import genlab
from genlab.data.tokenizers import build_tokenizer
from genlab.errors import ConfigError
from genlab.models.base import DataInfo
from genlab.registry import get, names
from genlab.rundir import RunConfig, build_model

FAMILIES = names()
SHAPES = [(1, 8, 8), (3, 16, 16)]  # images; a text family takes a vocabulary instead
VOCAB = "abcdefghij .\n"  # a text family's tiny character vocabulary
# a family that takes a prompt: its captions, and what the tests ask it to draw
CAPTIONS = ["a small red circle, top left", "a large blue square, bottom right"]
PROMPT = {"prompt": "a large red circle, top right"}


def _prompted(family) -> bool:
    return get(family).takes_prompt


def _prompt(family) -> dict:
    return PROMPT if _prompted(family) else {}


def _is_text(family) -> bool:
    return get(family).data_kind == "text"


def _tiny(family, shape, overrides=()):
    cfg = RunConfig.new(family, preset="tiny", overrides=list(overrides))
    tokenizer = None
    if _is_text(family):
        info = DataInfo.text(len(VOCAB) + 1)
        tokenizer = build_tokenizer("char", [VOCAB], with_eot=True)
    elif _prompted(family):
        tokenizer = build_tokenizer("bpe", CAPTIONS * 10, 300)
        info = DataInfo.images(shape, [], vocab_size=tokenizer.vocab_size)
    else:
        info = DataInfo.images(shape, [str(i) for i in range(10)])
    torch.manual_seed(0)
    model = build_model(cfg, info)
    if tokenizer is not None:
        model.tokenizer = tokenizer
    return model, cfg


def _batch(shape, n=8, family=None):
    g = torch.Generator().manual_seed(1)
    if family is not None and _is_text(family):  # token ids (B, T + 1)
        return {"x": torch.randint(0, len(VOCAB) + 1, (n, 17), generator=g), "step": 0}
    x = torch.rand(n, *shape, generator=g) * 2 - 1
    x = (x * 127.5).round() / 127.5  # on the 8-bit grid, as real data is
    out = {"x": x, "y": torch.arange(n) % 10, "step": 0}
    if family is not None and _prompted(family):  # caption ids, -1 after each caption
        text = torch.randint(0, 256, (n, 12), generator=g)
        text[:, 6:] = torch.where(torch.arange(n)[:, None] % 2 == 0, -1, text[:, 6:])
        out["text"] = text
    return out


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_loss_is_finite_and_backward_reaches_every_parameter(family, shape):
    model, _ = _tiny(family, shape)
    out = model.loss(_batch(shape, family=family))
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_sample_shape_range_and_seed(family, shape):
    model, _ = _tiny(family, shape)
    model.eval()
    a = model.sample(5, generator=torch.Generator().manual_seed(3), **_prompt(family))
    b = model.sample(5, generator=torch.Generator().manual_seed(3), **_prompt(family))
    if _is_text(family):  # strings over the vocabulary, as many as asked
        assert len(a) == 5 and all(isinstance(t, str) and set(t) <= set(VOCAB) for t in a)
        assert a == b and len(set(a)) > 1
        return
    assert a.shape == (5, *shape)
    assert a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_declares_the_protocol(family):
    cls = get(family)
    assert {"default", "tiny"} <= set(cls.presets), "every family ships default and tiny presets"
    assert cls.__doc__, "the docstring's first line is what `genlab info --family` prints"
    assert cls.data_kind in ("images", "text")


@pytest.mark.parametrize("family", FAMILIES)
def test_controls_are_declared_and_unknown_ones_rejected(family):
    cls = get(family)
    filled = cls.check_controls({})
    assert set(filled) == set(cls.controls)
    with pytest.raises(ConfigError, match="does not take"):
        cls.check_controls({"no_such_knob": 1})


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_round_trip_and_resume(family, tmp_path):
    # text families train on the prose that ships with Python (embedded, as digits is)
    # a family that takes a prompt trains on shapes (captioned, drawn by genlab's code)
    data = "pydoc" if _is_text(family) else "shapes" if _prompted(family) else "digits"
    common = [f"data.name={data}", "train.device=cpu"]
    straight = tmp_path / "straight"
    genlab.train(family, straight, preset="tiny", overrides=common, progress=False)
    run = genlab.load(straight)
    assert run.config.family == family
    a = run.sample(4, seed=2, **_prompt(family))
    b = genlab.load(straight).sample(4, seed=2, **_prompt(family))
    assert a == b if _is_text(family) else torch.equal(a, b)

    # half, then resume to the end: the same weights as the straight run
    split = tmp_path / "split"
    genlab.train(family, split, preset="tiny", overrides=common, progress=False, until=13)
    assert (split / "state" / "step-00000013").is_dir()
    genlab.train(family, split, resume=True, progress=False)
    for f in ("model.safetensors", "ema.safetensors"):
        a, b = load_file(straight / f), load_file(split / f)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), f
