"""No silent failures: a run that diverges stops (or rolls back) and never makes diverged
weights its model; metrics.jsonl forgives only a torn last line; a checkpoint folder that
already exists is replaced, not trusted."""

import json
import math
import random

import pytest
import torch
from safetensors.torch import load_file

import genlab
from genlab.cli import main
from genlab.errors import RunError
from genlab.fsutil import read_jsonl
from genlab.models.vae import VAE
from genlab.training.checkpoint import CheckpointDir
from genlab.training.divergence import Divergence

# the command a new user tried: it ran to the end with losses of 3.5e31
EXPLODING_GAN = ["train", "gan", "--data", "digits", "--steps", "300", "--quiet", "train.lr=1e6"]


def test_an_exploding_gan_stops_with_one_line_and_saves_nothing(tmp_path, capsys):
    run = tmp_path / "gan"
    assert main([*EXPLODING_GAN, "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("genlab: error: training diverged at step") and "\n" not in err
    assert "gradient norm" in err and "nothing was saved" in err
    assert not (run / "model.safetensors").exists() and not (run / "state").exists()


def test_rollback_goes_back_until_the_rollbacks_run_out_and_keeps_the_good_weights(
    tmp_path, capsys
):
    run = tmp_path / "gan"
    args = [*EXPLODING_GAN, "--out", str(run), "train.on_divergence=rollback"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "after 3 rollback(s)" in err and "step-00000000" in err
    rollbacks = [r for r in read_jsonl(run / "metrics.jsonl") if "rollback" in r]
    assert [("x0.5" in r["rollback"], "x0.125" in r["rollback"]) for r in rollbacks] == [
        (True, False),
        (False, False),
        (False, True),
    ]
    # the run's model is the last good checkpoint's (the untrained start), never diverged
    ckpt = load_file(run / "state" / "step-00000000" / "model.safetensors")
    for name in ("model.safetensors", "ema.safetensors"):
        saved = load_file(run / name)
        assert all(torch.isfinite(t).all() for t in saved.values())
    model = load_file(run / "model.safetensors")
    assert all(torch.equal(model[k], ckpt[k]) for k in ckpt)


def test_a_finite_loss_that_explodes_is_divergence_too(tmp_path, monkeypatch):
    original = VAE.loss

    def explodes(self, batch):
        out = original(self, batch)
        if self.training and batch["step"] >= 14:  # steps 15.. log a loss 1e6 times larger
            out["loss"] = out["loss"] * 1e6
        return out

    monkeypatch.setattr(VAE, "loss", explodes)
    run = tmp_path / "vae"
    common = ["data.name=digits", "train.device=cpu"]
    with pytest.raises(RunError, match=r"at step 15: the loss jumped to .* recent range"):
        genlab.train("vae", run, preset="tiny", overrides=common, progress=False)
    # the last good checkpoint (step 10) is the run's model
    assert json.loads((run / "state" / "step-00000010" / "trainer.json").read_text())["step"] == 10
    assert not (run / "state" / "step-00000020").exists()
    assert genlab.load(run).step == 10


def test_metrics_jsonl_forgives_a_torn_last_line_only(tmp_path, capsys):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo')
    assert [r["step"] for r in read_jsonl(path)] == [1, 2]
    assert "line 3 is cut short" in capsys.readouterr().err
    path.write_text('{"step": 1, "loss": 2.0}\nnot json\n{"step": 3, "loss": 1.0}\n')
    with pytest.raises(RunError, match=r"metrics.jsonl line 2 is not a JSON record"):
        read_jsonl(path)
    # a complete last line that is not JSON is damage, not a torn write
    path.write_text('{"step": 1, "loss": 2.0}\n[1, 2]\n')
    with pytest.raises(RunError, match="line 2"):
        read_jsonl(path)


def test_info_on_a_damaged_curve_is_one_line_and_exit_2(tmp_path, capsys):
    run = tmp_path / "vae"
    genlab.train("vae", run, preset="tiny", overrides=["train.device=cpu"], progress=False)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines[3] = lines[3][:10]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["info", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "metrics.jsonl line 4" in err and "\n" not in err


def test_a_checkpoint_folder_already_there_is_replaced_not_kept(tmp_path):
    ckpt = CheckpointDir(tmp_path)
    ckpt.write(5, {"model": {"w": torch.zeros(3)}}, {"step": 5})
    ckpt.write(5, {"model": {"w": torch.ones(3)}}, {"step": 5, "again": True})
    groups, meta = ckpt.read(ckpt.latest())
    assert torch.equal(groups["model"]["w"], torch.ones(3)) and meta["again"]
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["step-00000005"]


def test_wandering_losses_are_not_divergence_but_a_jump_or_an_inf_gradient_is():
    rng = random.Random(0)
    watch = Divergence()
    # a GAN's losses wander (here between 0.3 and 6), a VAE's fall from hundreds: fine
    for v in [rng.uniform(0.3, 6.0) for _ in range(500)] + [400 - i for i in range(300)]:
        assert watch.check({"loss": v, "grad_norm": 1.0}) is None
    assert "jumped" in watch.check({"loss": 1e6, "grad_norm": 1.0})
    assert "grad_norm_d" in Divergence().check({"loss": 1.0, "grad_norm_d": math.inf})
    assert Divergence().check({"loss": math.nan}) == "the loss became nan"
