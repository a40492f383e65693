"""The GAN family: its augmentations, losses, truncation, monitors and divergence handling.
(The registry-wide checks in test_families.py cover shapes, controls, save/load, resume.)"""

import hashlib
import json

import pytest
import torch

import genlab
from genlab.errors import RunError
from genlab.models.base import DataInfo
from genlab.models.gan import GAN, GANConfig, diff_augment, truncated_normal
from genlab.training.checkpoint import CheckpointDir
from genlab.training.stepper import Stepper

INFO = DataInfo.images((1, 8, 8), [str(i) for i in range(10)])


def _batch(n=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.rand(n, 1, 8, 8, generator=g) * 2 - 1, "y": torch.arange(n) % 10}


def _gan(**kw):
    torch.manual_seed(0)
    model = GAN(GANConfig(width=8, latent_dim=8, **kw), INFO)
    return model, Stepper(model.optimizers(_Train()), clip=0.0)


class _Train:
    lr = 1e-3


def test_diffaugment_moves_pixels_differently_per_image_and_passes_gradients():
    x = torch.rand(1, 1, 8, 8).repeat(32, 1, 1, 1).requires_grad_(True)  # one image, 32 times
    torch.manual_seed(0)
    out = diff_augment(x, "translation,cutout")
    assert out.shape == x.shape
    changed = (out != x).flatten(1).any(1)
    assert changed.float().mean() > 0.9  # nearly every copy is moved or cut
    assert (out != out[0]).flatten(1).any(1).float().mean() > 0.8  # each its own way
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # D's gradient reaches G
    assert torch.equal(diff_augment(x, ""), x)


def test_truncation_bounds_latents_and_makes_samples_more_alike():
    z = truncated_normal(4096, 8, 0.5, torch.Generator().manual_seed(0))
    assert z.abs().max() <= 0.5 and z.std() < 0.35  # a N(0,1) truncated at 0.5 has std 0.28
    plain = truncated_normal(16, 8, None, torch.Generator().manual_seed(1))
    assert torch.equal(plain, torch.randn(16, 8, generator=torch.Generator().manual_seed(1)))

    model, _ = _gan()
    spread = {}
    for t in (0.25, 1.0, None):
        x = model.sample(256, generator=torch.Generator().manual_seed(0), truncation=t)
        spread[t] = x.flatten(1).std(0).mean().item()
    assert spread[0.25] < spread[1.0] < spread[None]


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"loss": "hinge", "spectral_norm": True},
        {"loss": "wgan-gp", "n_critic": 3},
        {"r1_gamma": 1.0, "conditional": True},
        {"arch": "mlp"},
        {"g_norm": "batch"},
        {"g_norm": "none", "diffaug": "color,translation,cutout"},
    ],
)
def test_every_loss_and_option_trains_with_finite_monitors(kw):
    model, stepper = _gan(**kw)
    g_before = [p.detach().clone() for p in model.generator.parameters()]
    out = model.train_step({**_batch(), "step": 0}, stepper)
    for key in ("loss", "d_loss", "g_loss", "d_real", "d_fake", "grad_norm_d", "grad_norm_g"):
        assert torch.isfinite(out[key]), key
    assert any(not torch.equal(a, b) for a, b in zip(g_before, model.generator.parameters()))
    d_steps = stepper.optimizers["d"].state[next(model.discriminator.parameters())]["step"]
    assert int(d_steps) == kw.get("n_critic", 1)  # n_critic D updates per G update
    assert model.discriminator.head.weight.requires_grad  # unfrozen after the G update


def test_the_projection_discriminator_reads_the_label():
    model, _ = _gan(conditional=True)
    x = _batch()["x"]
    a = model.discriminator(x, torch.zeros(16, dtype=torch.long))
    b = model.discriminator(x, torch.ones(16, dtype=torch.long))
    assert not torch.allclose(a, b)


def test_a_collapsed_generator_raises_the_alarm():
    model, stepper = _gan()
    with torch.no_grad():
        for p in model.generator.parameters():
            p.zero_()  # every z gives the same image
    out = model.train_step({**_batch(), "step": 0}, stepper)
    assert out["diversity"] < 0.05
    assert "mode collapse" in model.alarm({"diversity": float(out["diversity"]), "step": 500})
    assert model.alarm({"diversity": 0.9, "step": 500}) is None
    assert model.alarm({"diversity": 0.1, "step": 50}) is None  # G is still leaving its init


def _digest(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_forced_divergence_stops_naming_the_step_and_keeps_the_checkpoint(tmp_path):
    run = tmp_path / "gan"
    common = ["data.name=digits", "train.device=cpu"]
    genlab.train("gan", run, preset="tiny", overrides=common, progress=False, until=10)
    before = _digest(run / "state")
    weights = (run / "model.safetensors").read_bytes()
    with pytest.raises(RunError) as e:
        genlab.train("gan", run, resume=True, overrides=["train.lr=1e30"], progress=False)
    msg = str(e.value)
    assert "at step 1" in msg and "step-00000010" in msg and "\n" not in msg
    assert _digest(run / "state") == before  # the good checkpoint is untouched
    assert (run / "model.safetensors").read_bytes() == weights
    # and it resumes from there at a sane learning rate
    genlab.train("gan", run, resume=True, overrides=["train.lr=1e-4"], progress=False)
    assert torch.isfinite(genlab.load(run).sample(4, seed=0)).all()


def test_rollback_returns_to_the_checkpoint_halves_the_lr_and_finishes(tmp_path, monkeypatch):
    run = tmp_path / "gan"
    common = ["data.name=digits", "train.device=cpu", "train.on_divergence=rollback"]
    original = GAN.train_step
    fired = []

    def once_nan(self, batch, stepper):
        out = original(self, batch, stepper)
        if batch["step"] == 13 and not fired:  # one bad step after the step-10 checkpoint
            fired.append(True)
            out["loss"] = torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(GAN, "train_step", once_nan)
    genlab.train("gan", run, preset="tiny", overrides=common, progress=False)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rollbacks = [r for r in records if "rollback" in r]
    assert len(rollbacks) == 1 and rollbacks[0]["step"] == 10
    assert "step 14" in rollbacks[0]["rollback"] and "x0.5" in rollbacks[0]["rollback"]
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == sorted(steps) and steps[-1] == 20  # the bad stretch is gone, then redone
    ckpt = CheckpointDir(run)
    assert ckpt.read(ckpt.latest())[1]["lr_scale"] == 0.5  # kept for a later resume
    assert torch.isfinite(genlab.load(run).sample(4, seed=0)).all()


def test_rollback_gives_up_after_max_rollbacks(tmp_path):
    run = tmp_path / "gan"
    common = ["data.name=digits", "train.device=cpu"]
    genlab.train("gan", run, preset="tiny", overrides=common, progress=False, until=10)
    before = _digest(run / "state")
    bad = ["train.lr=1e30", "train.on_divergence=rollback", "train.max_rollbacks=2"]
    with pytest.raises(RunError, match="step-00000010"):
        genlab.train("gan", run, resume=True, overrides=bad, progress=False)
    rollbacks = [
        json.loads(line)
        for line in (run / "metrics.jsonl").read_text().splitlines()
        if "rollback" in line
    ]
    assert [("x0.5" in r["rollback"], "x0.25" in r["rollback"]) for r in rollbacks] == [
        (True, False),
        (False, True),
    ]
    assert _digest(run / "state") == before
