"""train.tensorboard=true: the event files hold exactly the metrics.jsonl curves, the
sample grids and the text samples; a resume or rollback leaves one value per step; a
missing tensorboard package stops the run before anything is trained."""

import io
import json
import math
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator as ea

import genlab
from genlab.errors import ConfigError
from genlab.models.gan import GAN
from genlab.outputs.text import TEXT_RULE

ON = ["train.device=cpu", "train.tensorboard=true"]


def _events(run):
    acc = ea.EventAccumulator(
        str(run / "tensorboard"), size_guidance={ea.SCALARS: 0, ea.IMAGES: 0, ea.TENSORS: 0}
    )
    return acc.Reload()


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _assert_same_curves(run):
    """Every number of every metrics.jsonl record is a scalar of that name at that step
    (stored as float32), each step once, and nothing else."""
    want = {}
    for rec in _records(run):
        for key, value in rec.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                assert (key, rec["step"]) not in want, f"metrics.jsonl repeats {key} at a step"
                want[(key, rec["step"])] = float(np.float32(value))
    acc = _events(run)
    got = {}
    for tag in acc.Tags()["scalars"]:
        steps = [e.step for e in acc.Scalars(tag)]
        assert len(steps) == len(set(steps)), f"{tag} has a step twice: {steps}"
        got.update({(tag, e.step): e.value for e in acc.Scalars(tag)})
    assert got.keys() == want.keys()
    bad = [
        k for k in want if got[k] != want[k] and not (math.isnan(got[k]) and math.isnan(want[k]))
    ]
    assert not bad, f"{len(bad)} values differ, e.g. {bad[:3]}"
    return acc


def test_an_image_run_writes_its_curves_and_sample_grids(tmp_path):
    run = tmp_path / "r"
    genlab.train("vae", run, preset="tiny", overrides=["data.name=digits", *ON], progress=False)
    acc = _assert_same_curves(run)
    tags = set(acc.Tags()["scalars"])
    assert {"loss", "lr", "examples_per_s", "grad_norm", "val_loss"} <= tags
    assert [e.step for e in acc.Scalars("loss")] == list(range(1, 21))  # log_every=1
    assert [e.step for e in acc.Scalars("val_loss")] == [10, 20]
    images = acc.Images("samples")
    assert [e.step for e in images] == [10, 20]
    for e in images:  # the very grid of samples/step-*.png
        png = run / "samples" / f"step-{e.step:08d}.png"
        tb = Image.open(io.BytesIO(e.encoded_image_string)).convert("RGB")
        assert np.array_equal(np.asarray(tb), np.asarray(Image.open(png).convert("RGB")))


def test_a_text_run_writes_its_text_samples(tmp_path):
    run = tmp_path / "r"
    genlab.train("gpt", run, preset="tiny", overrides=["data.name=pydoc", *ON], progress=False)
    acc = _assert_same_curves(run)
    assert {"loss", "tokens", "val_loss", "val_tokens"} <= set(acc.Tags()["scalars"])
    texts = acc.Tensors("samples/text_summary")
    assert [e.step for e in texts] == [10, 20]
    for e in texts:
        body = e.tensor_proto.string_val[0].decode("utf-8")
        saved = (run / "samples" / f"step-{e.step:08d}.txt").read_text(encoding="utf-8")
        samples = saved[:-1].split(f"\n{TEXT_RULE}\n")
        assert len(samples) == 4
        assert all(f"```\n{s}\n```" in body for s in samples)


def test_a_resume_after_a_crash_hides_the_steps_it_redoes(tmp_path):
    run = tmp_path / "r"
    args = ["data.name=digits", *ON]
    genlab.train("vae", run, preset="tiny", overrides=args, progress=False, until=15)
    # as if killed at step 15 before its checkpoint: steps 11-15 are logged, then redone
    shutil.rmtree(run / "state" / "step-00000015")
    before = {e.step: e.value for e in _events(run).Scalars("loss")}
    # a different learning rate, so the redone stretch differs from the stale one
    genlab.train("vae", run, resume=True, overrides=["train.lr=3e-3"], progress=False)
    acc = _assert_same_curves(run)
    after = {e.step: e.value for e in acc.Scalars("loss")}
    assert sorted(after) == list(range(1, 21))
    assert all(after[s] == before[s] for s in range(1, 11))
    assert any(after[s] != before[s] for s in range(11, 16))
    assert [e.step for e in acc.Images("samples")] == [10, 20]


def test_a_rollback_drops_the_bad_stretch_from_the_curves(tmp_path, monkeypatch):
    original = GAN.train_step
    fired = []

    def once_nan(self, batch, stepper):
        out = original(self, batch, stepper)
        if batch["step"] == 13 and not fired:  # one bad step after the step-10 checkpoint
            fired.append(True)
            out["loss"] = torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(GAN, "train_step", once_nan)
    run = tmp_path / "gan"
    args = ["data.name=digits", "train.on_divergence=rollback", *ON]
    genlab.train("gan", run, preset="tiny", overrides=args, progress=False)
    assert fired and any("rollback" in r for r in _records(run))
    acc = _assert_same_curves(run)  # the NaN at step 14 is gone, as from metrics.jsonl
    assert all(math.isfinite(e.value) for e in acc.Scalars("loss"))


def test_without_the_package_it_stops_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    run = tmp_path / "r"
    with pytest.raises(ConfigError) as e:
        genlab.train("vae", run, preset="tiny", overrides=["data.name=digits", *ON], progress=False)
    assert str(e.value) == (
        "train.tensorboard=true needs the tensorboard package: pip install 'genlab[tensorboard]'"
    )
    assert not run.exists()  # nothing trained, nothing written
    # it is optional: off (the default), the same run trains without it
    off = ["data.name=digits", "train.device=cpu"]
    genlab.train("vae", run, preset="tiny", overrides=off, progress=False)
    assert (run / "metrics.jsonl").is_file() and not (run / "tensorboard").exists()
