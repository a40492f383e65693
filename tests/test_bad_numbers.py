"""Bad numbers are bad input: NaN, infinities and values outside a setting's meaningful
range are refused with one line and exit status 2, before anything is written; a very
large -n is refused up front (naming the memory) or streamed, never left to the allocator."""

import dataclasses
import typing

import numpy as np
import pytest
from PIL import Image

import genlab
from genlab.cli import main
from genlab.config import TrainConfig
from genlab.errors import ConfigError
from genlab.models.vae import VAE
from genlab.outputs.images import to_uint8
from genlab.registry import get, names
from genlab.rundir import RunConfig


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "cvae"
    overrides = ["data.name=digits", "train.device=cpu", "model.conditional=true"]
    genlab.train("vae", run, preset="tiny", overrides=overrides, progress=False)
    return run


def _one_line_exit_2(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("genlab: error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize(
    "override, says",
    [
        ("train.lr=nan", "finite"),
        ("train.lr=inf", "finite"),
        ("train.lr=-1", "train.lr must be >= 0"),
        ("train.warmup_steps=-4", "train.warmup_steps must be >= 0"),
        ("train.min_lr_ratio=1.5", "min_lr_ratio"),
        ("train.grad_clip=-1", "grad_clip"),
        ("train.betas=0.9,1.2", "betas"),
        ("train.weight_decay=-0.1", "weight_decay"),
        ("model.beta=nan", "finite"),
        ("model.beta=-1", "model.beta must be >= 0"),
    ],
)
def test_train_refuses_bad_numbers_before_writing(tmp_path, capsys, override, says):
    out = tmp_path / "run"
    err = _one_line_exit_2(capsys, ["train", "vae", "--out", str(out), "--quiet", override])
    assert says in err
    assert not out.exists()


def _numeric_fields(cfg) -> list[str]:
    hints = typing.get_type_hints(type(cfg))
    out = []
    for f in dataclasses.fields(cfg):
        tp = hints[f.name]
        args = typing.get_args(tp)
        if tp in (int, float) or (args and set(args) <= {int, float, type(None)}):
            out.append(f.name)
    return out


@pytest.mark.parametrize("family", names())
def test_every_numeric_setting_refuses_nan_and_infinity(family):
    cfg = RunConfig.new(family)
    for section in ("model", "train"):
        for name in _numeric_fields(getattr(cfg, section)):
            for bad in ("nan", "inf", "-inf"):
                with pytest.raises(ConfigError):
                    RunConfig.new(family, overrides=[f"{section}.{name}={bad}"])


@pytest.mark.parametrize("family", names())
def test_every_float_control_refuses_nan_and_infinity(family):
    cls = get(family)
    for name, control in cls.controls.items():
        if control.type is float:
            for bad in (float("nan"), float("inf"), float("-inf")):
                with pytest.raises(ConfigError, match=name):
                    cls.check_controls({name: bad})


def test_train_config_defaults_are_in_range():
    TrainConfig()  # the checks accept what ships


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--temperature", "nan"], "temperature=nan is not a finite number"),
        (["--temperature", "inf"], "finite"),
        (["--temperature", "-1"], "temperature"),
        (["-n", "0"], "-n must be at least 1"),
        (["--seed", "-3"], "--seed"),
        (["-n", "20000", "--out", "OUT/grid.png"], "folder/"),
        (["-n", "5000", "--interpolate", "10", "--out", "OUT/i.png"], "lower either"),
    ],
)
def test_sample_refuses_bad_numbers_before_sampling(vae_run, tmp_path, capsys, flags, says):
    flags = [f.replace("OUT", str(tmp_path)) for f in flags]
    if "--out" not in flags:
        flags += ["--out", str(tmp_path / "x.png")]
    err = _one_line_exit_2(capsys, ["sample", str(vae_run), *flags])
    assert says in err
    assert not any(tmp_path.iterdir()), "nothing is written"


def test_many_samples_are_drawn_in_batches_and_streamed(vae_run, tmp_path, monkeypatch):
    # -n 100000000 once died in the allocator: now no more than one batch is ever drawn or
    # held at once, and a folder/ or an .npz takes each batch as it comes
    sizes = []
    original = VAE.sample

    def spy(self, n, **kw):
        sizes.append(n)
        return original(self, n, **kw)

    monkeypatch.setattr(VAE, "sample", spy)
    assert main(["sample", str(vae_run), "-n", "600", "--out", str(tmp_path / "f") + "/"]) == 0
    assert len(list((tmp_path / "f").glob("*.png"))) == 600
    assert main(["sample", str(vae_run), "-n", "600", "--out", str(tmp_path / "s.npz")]) == 0
    assert sizes == [250, 250, 100] * 2
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:
        assert z["x"].shape == (600, 8, 8, 1) and z["x"].dtype == np.uint8
        assert z["y"].tolist() == [i % 10 for i in range(600)]
        streamed = z["x"]
    # the first batch is what one call draws with the same seed, the folder holds the same
    x = genlab.load(vae_run).sample(250, seed=0, label=[i % 10 for i in range(250)])
    assert np.array_equal(streamed[:250], to_uint8(x))
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "f" / "000599.png"))[..., None], streamed[599]
    )


def test_eval_and_compare_refuse_bad_counts(vae_run, tmp_path, capsys):
    _one_line_exit_2(capsys, ["eval", str(vae_run), "--n", "-5"])
    _one_line_exit_2(capsys, ["eval", str(vae_run), "--k", "0"])
    _one_line_exit_2(capsys, ["compare", str(vae_run), "--n", "0", "--out", str(tmp_path / "r")])
    _one_line_exit_2(capsys, ["eval", str(vae_run), "--temperature", "nan"])
