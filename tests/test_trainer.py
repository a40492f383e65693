"""The loop itself: LR schedule, accumulation, bf16 autocast, time budget, divergence."""

import json
import math
from dataclasses import dataclass

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import genlab
from genlab import registry
from genlab.errors import RunError
from genlab.models.base import GenerativeModel
from genlab.training.checkpoint import CheckpointDir
from genlab.training.schedule import lr_factor
from genlab.training.trainer import TrainConfig


@dataclass
class ProbeConfig:
    hidden: int = 8
    nan_from_step: int = -1  # from this step on the loss is NaN (-1: never)


class Probe(GenerativeModel):
    """A deterministic linear autoencoder: what it learns depends only on the data order."""

    family = "probe"
    config_class = ProbeConfig
    presets = {
        "default": {
            "train.steps": 8,
            "train.batch_size": 32,
            "train.warmup_steps": 0,
            "train.ema_decay": 0.0,
            "train.lr": 0.01,
            "train.log_every": 1,
            "train.eval_every": 0,
            "train.sample_every": 0,
            "train.checkpoint_every": 4,
        }
    }

    def __init__(self, config, info):
        super().__init__(config, info)
        d = math.prod(info.shape)
        self.enc, self.dec = nn.Linear(d, config.hidden), nn.Linear(config.hidden, d)

    def loss(self, batch):
        x = batch["x"].flatten(1)
        err = (self.dec(torch.tanh(self.enc(x))) - x).pow(2).sum(1).mean()
        if 0 <= self.config.nan_from_step <= batch["step"]:
            err = err * float("nan")
        return {"loss": err}

    @torch.no_grad()
    def sample(self, n, *, generator=None):
        z = torch.randn(n, self.config.hidden, generator=generator)
        return torch.tanh(self.dec(z)).view(n, *self.info.shape)


@pytest.fixture
def probe(monkeypatch):
    monkeypatch.setitem(registry._FAMILIES, "probe", Probe)
    return "probe"


def test_lr_warms_up_linearly_then_follows_the_cosine_to_its_floor():
    cfg = TrainConfig(steps=101, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(55, cfg) == pytest.approx(0.55)  # half way through the decay
    assert lr_factor(100, cfg) == pytest.approx(0.1)  # the last step runs at the floor
    assert lr_factor(20, cfg, time_progress=1.0) == pytest.approx(0.1)  # budget spent
    assert lr_factor(50, TrainConfig(schedule="constant", warmup_steps=0)) == 1.0


def test_logged_lr_follows_the_schedule(probe, tmp_path):
    genlab.train(probe, tmp_path / "r", overrides=["train.warmup_steps=2"], progress=False)
    recs = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in recs if "lr" in r]
    assert len(lrs) == 8
    assert lrs[0] == pytest.approx(0.005) and lrs[1] == pytest.approx(0.01)
    assert lrs[-1] == pytest.approx(0.001) and lrs == sorted(lrs[:2]) + sorted(lrs[2:])[::-1]


def test_accumulating_two_halves_equals_one_full_batch(probe, tmp_path):
    genlab.train(probe, tmp_path / "one", progress=False)
    genlab.train(probe, tmp_path / "acc", overrides=["train.grad_accum=2"], progress=False)
    genlab.train(probe, tmp_path / "half", overrides=["train.batch_size=16"], progress=False)
    one, acc = (
        load_file(tmp_path / "one/model.safetensors"),
        load_file(tmp_path / "acc/model.safetensors"),
    )
    half = load_file(tmp_path / "half/model.safetensors")
    for k in one:
        torch.testing.assert_close(acc[k], one[k], atol=1e-6, rtol=1e-5)
    assert max((half[k] - one[k]).abs().max().item() for k in one) > 1e-3


def test_bf16_autocast_trains(tmp_path):
    genlab.train(
        "vae", tmp_path / "r", preset="tiny", overrides=["train.precision=bf16"], progress=False
    )
    recs = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().split("\n") if x]
    assert all(math.isfinite(r.get("loss", 0.0)) for r in recs)
    assert genlab.load(tmp_path / "r").sample(2).isfinite().all()


def test_time_budget_stops_early_with_a_checkpoint(probe, tmp_path):
    summary = genlab.train(
        probe,
        tmp_path / "r",
        overrides=["train.steps=100000", "train.minutes=0.002"],
        progress=False,
    )
    assert summary["stopped_by_time"] and 0 < summary["step"] < 100000
    assert CheckpointDir(tmp_path / "r").latest().name == f"step-{summary['step']:08d}"


def test_divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint(probe, tmp_path):
    run = tmp_path / "r"
    # NaN from step 5; logged every 100 steps, yet a checkpoint step (8) is always logged and
    # checked first, so the NaN is caught there, before anything is saved
    with pytest.raises(RunError, match="diverged at step 8: the loss became nan.*step-00000004"):
        genlab.train(
            probe,
            run,
            overrides=["model.nan_from_step=5", "train.log_every=100", "train.steps=12"],
            progress=False,
        )
    assert CheckpointDir(run).latest().name == "step-00000004"
    good = load_file(CheckpointDir(run).latest() / "model.safetensors")
    assert all(t.isfinite().all() for t in good.values())
    assert all(t.isfinite().all() for t in load_file(run / "model.safetensors").values())
    # logged every step, the loss check names the step and the checkpoint
    with pytest.raises(RunError, match="at step 6: the loss became nan.*step-00000004"):
        genlab.train(probe, tmp_path / "r2", overrides=["model.nan_from_step=5"], progress=False)
