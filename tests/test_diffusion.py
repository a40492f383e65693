"""The diffusion family: classifier-free guidance, label dropout, the U-Net's shapes,
the controls' errors and the CLI's diffusion flags."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import genlab
from genlab.cli import main
from genlab.errors import ConfigError
from genlab.models.base import DataInfo
from genlab.models.diffusion import Diffusion, DiffusionConfig
from genlab.models.diffusion.unet import UNet

CLASSES = [str(i) for i in range(10)]


def tiny(**kw) -> Diffusion:
    torch.manual_seed(0)
    cfg = DiffusionConfig(width=8, blocks=1, timesteps=100, **kw)
    return Diffusion(cfg, DataInfo.images((1, 8, 8), CLASSES))


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 64, 64)])
def test_unet_keeps_the_image_shape_at_every_supported_size(shape):
    net = UNet(shape[0], shape[1], width=8, blocks=1, num_classes=3)
    x = torch.randn(2, *shape)
    out = net(x, torch.tensor([0, 999]), torch.tensor([1, 3]))  # 3 = the null label
    assert out.shape == x.shape
    # the output convolution starts at zero, so an untrained net predicts 0
    assert out.abs().max().item() == 0


def test_odd_or_oversized_images_are_refused_with_a_hint():
    with pytest.raises(ConfigError, match="data.size"):
        Diffusion(DiffusionConfig(), DataInfo.images((1, 128, 128), []))
    with pytest.raises(ConfigError, match="labelled"):
        Diffusion(DiffusionConfig(conditional=True), DataInfo.images((1, 8, 8), []))


def test_guidance_mixes_conditional_and_unconditional_predictions():
    m = tiny(conditional=True).eval()
    for p in m.parameters():  # a non-zero network, so the two predictions differ
        p.data.normal_(0, 0.2)
    x, t = torch.randn(4, 1, 8, 8), torch.full((4,), 50)
    y = torch.tensor([1, 2, 3, 4])
    null = torch.full_like(y, 10)
    cond, uncond = m.net(x, t, y), m.net(x, t, null)
    assert not torch.allclose(cond, uncond)
    for w in (0.0, 1.0, 3.0):
        x0, eps = m.denoiser({"y": y}, {"y": null}, w)(x, t)
        want = m.schedule.split(uncond + w * (cond - uncond), x, t, "v")
        torch.testing.assert_close(x0, want[0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(eps, want[1], rtol=1e-4, atol=1e-5)


def test_training_drops_labels_to_the_null_label_and_validation_does_not():
    m = tiny(conditional=True, label_dropout=0.5)
    seen = []
    m.net.label_emb.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].clone()))
    batch = {"x": torch.randn(400, 1, 8, 8).clamp(-1, 1), "y": torch.randint(0, 10, (400,))}
    m.train()
    m.loss(batch)
    share = (seen[-1] == 10).float().mean().item()
    assert 0.4 < share < 0.6
    m.eval()
    m.loss(batch)
    assert not (seen[-1] == 10).any()


def test_validation_loss_is_deterministic_and_training_loss_is_not():
    m = tiny()
    batch = {"x": torch.rand(32, 1, 8, 8) * 2 - 1}
    m.eval()
    assert m.loss(batch)["loss"].item() == m.loss(batch)["loss"].item()
    m.train()
    assert m.loss(batch)["loss"].item() != m.loss(batch)["loss"].item()


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++2m"])
def test_every_sampler_gives_images_in_range_and_repeats_with_the_seed(sampler):
    m = tiny(conditional=True).eval()
    for p in m.parameters():
        p.data.normal_(0, 0.1)

    def draw(seed):
        g = torch.Generator().manual_seed(seed)
        return m.sample(6, generator=g, sampler=sampler, sampling_steps=10, label=[0, 5])

    a, b, c = draw(1), draw(1), draw(2)
    assert a.shape == (6, 1, 8, 8) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_controls_a_model_cannot_honour_are_errors():
    with pytest.raises(ConfigError, match="conditional"):
        tiny().sample(2, guidance=3.0)
    with pytest.raises(ConfigError, match="timesteps"):
        tiny().sample(2, sampling_steps=101)
    with pytest.raises(ConfigError, match="not one of"):
        Diffusion.check_controls({"sampler": "euler"})
    with pytest.raises(ConfigError, match="does not take --temperature"):
        Diffusion.check_controls({"temperature": 0.5})
    assert [k for k, _ in tiny().sweeps()] == ["sampling_steps"]
    assert [k for k, _ in tiny(conditional=True).sweeps()] == ["sampling_steps", "guidance"]


def test_cli_trains_and_samples_with_the_diffusion_flags(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "diffusion", "--out", str(run), "--preset", "tiny", "--quiet"]
    assert main([*args, "model.conditional=true"]) == 0
    out = tmp_path / "s.npz"
    code = main(
        [
            "sample",
            str(run),
            "-n",
            "4",
            "--out",
            str(out),
            "--sampler",
            "dpm++2m",
            "--sampling-steps",
            "8",
            "--guidance",
            "3",
            "--label",
            "7",
        ]
    )
    assert code == 0
    data = np.load(out)
    assert data["x"].shape == (4, 8, 8, 1) and (data["y"] == 7).all()
    capsys.readouterr()
    bad = tmp_path / "b.png"
    assert main(["sample", str(run), "-n", "2", "--out", str(bad), "--sampling-steps", "500"]) == 2
    err = capsys.readouterr().err
    assert "timesteps" in err and "Traceback" not in err and not bad.exists()


def test_compile_takes_only_the_unets_training_forward(tmp_path, monkeypatch):
    """train.compile on a diffusion run compiles the U-Net alone, at one static shape, for
    training steps only (validation and sampling run other batch sizes, each of which
    would compile again), and the run's weights keep their names."""
    compiled = []

    def fake_compile(module, **kw):
        calls = []

        def run(*args):
            calls.append(args[0].shape[0])
            return module(*args)

        compiled.append((module, kw, calls))
        return run

    monkeypatch.setattr(torch, "compile", fake_compile)
    genlab.train(
        "diffusion",
        tmp_path / "r",
        preset="tiny",
        overrides=["train.compile=true", "train.steps=4", "train.eval_every=2"],
        progress=False,
    )
    [(module, kw, calls)] = compiled
    assert type(module).__name__ == "UNet" and kw == {"dynamic": False}
    assert calls == [16] * 4  # the four training steps' batches, nothing else
    run = genlab.load(tmp_path / "r")
    assert not any("_orig_mod" in k or "_compiled" in k for k in run.model.state_dict())
