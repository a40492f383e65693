"""genlab export --format diffusers: a diffusion run as a diffusers DDIM pipeline folder whose
UNet2DModel gives the same output as genlab's U-Net, and whose DDIMScheduler, with the same
noise and steps, gives genlab's DDIM images. Needs `diffusers` (genlab[hf])."""

import json
import re
import subprocess
import sys
import types

import pytest
import torch

from genlab.cli import main
from genlab.data import DataInfo
from genlab.hf.unet2d import write_unet2d
from genlab.models.diffusion import Diffusion, DiffusionConfig

diffusers = pytest.importorskip("diffusers")


def _cli_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    return err[0]


def _load(folder):
    unet = diffusers.UNet2DModel.from_pretrained(folder, subfolder="unet").eval()
    sched = diffusers.DDIMScheduler.from_pretrained(folder, subfolder="scheduler")
    return unet, sched


@pytest.mark.parametrize(
    "size,schedule,prediction,conditional",
    [(8, "cosine", "v", True), (28, "linear", "eps", False), (16, "cosine", "x0", True)],
)
def test_every_unet_weight_lands_where_diffusers_reads_it(
    size, schedule, prediction, conditional, tmp_path
):
    """Random weights far from initialisation (the zero-initialised output layers too), on
    three image sizes (two and three levels; 28 halves to 7), so a misplaced tensor shows."""
    torch.manual_seed(0)
    cfg = DiffusionConfig(
        width=32,
        blocks=2 if size == 16 else 1,
        schedule=schedule,
        prediction=prediction,
        conditional=conditional,
        timesteps=1000,
    )
    info = DataInfo.images((1, size, size), [str(i) for i in range(10)])
    model = Diffusion(cfg, info).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    run = types.SimpleNamespace(model=model, config=types.SimpleNamespace(model=cfg))
    write_unet2d(run, tmp_path / "hf")
    unet, sched = _load(tmp_path / "hf")
    assert sum(p.numel() for p in unet.parameters()) == sum(p.numel() for p in model.parameters())
    x, t = torch.randn(4, 1, size, size), torch.tensor([0, 10, 500, 999])
    y = torch.tensor([0, 3, 9, 10]) if conditional else None  # 10: the null label
    with torch.no_grad():
        ours = model.net(x, t, y)
        theirs = unet(x, t, class_labels=y).sample
    assert (ours - theirs).abs().max().item() <= 1e-5 and ours.std() > 0.1
    # the schedule and the prediction type
    assert (sched.alphas_cumprod.double() - model.schedule.alpha_bar).abs().max() < 1e-6
    assert sched.config.prediction_type == {"v": "v_prediction", "eps": "epsilon"}.get(
        prediction, "sample"
    )


def test_a_conditional_run_exported_gives_diffusers_the_same_output_and_ddim_images(
    tmp_path, capsys
):
    import genlab

    run_dir, out = tmp_path / "run", tmp_path / "hf"
    genlab.train(
        "diffusion",
        run_dir,
        preset="tiny",
        overrides=["model.width=32", "model.conditional=true", "model.timesteps=100"],
        progress=False,
    )
    assert main(["export", str(run_dir), "--format", "diffusers", "--out", str(out)]) == 0
    assert "DiffusionPipeline.from_pretrained" in capsys.readouterr().out
    run = genlab.load(run_dir)
    unet, sched = _load(out)
    x, t, y = torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 30, 50, 98, 99]), torch.arange(6)
    with torch.no_grad():
        ours = run.model.net(x, t, y)
        diff = (ours - unet(x, t, class_labels=y).sample).abs().max().item()
    assert diff <= 1e-5 and ours.abs().max() > 0.01  # trained: the output layer is not zero

    # DDIM, 20 steps, guidance 3, the same starting noise: the model card's loop
    n, guidance, labels = 10, 3.0, torch.arange(10)
    want = run.model.sample(
        n,
        generator=torch.Generator().manual_seed(7),
        sampler="ddim",
        sampling_steps=20,
        guidance=guidance,
        label=labels.tolist(),
    )
    x = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    null = torch.full_like(labels, 10)
    sched.set_timesteps(20)
    with torch.no_grad():
        for t in sched.timesteps:
            out_c, out_u = unet(
                torch.cat([x, x]), t, class_labels=torch.cat([labels, null])
            ).sample.chunk(2)
            eps = out_u + guidance * (out_c - out_u)
            x = sched.step(eps, t, x, eta=0.0, use_clipped_model_output=True).prev_sample
    assert (want - x.clamp(-1, 1)).abs().max().item() <= 1e-4
    assert want.std() > 0.1  # images, not a constant

    card = (out / "README.md").read_text()
    assert "validation loss" in card and "`digits`" in card and "class_labels" in card
    assert "conditional on 10 classes" in card and "100 timesteps" in card
    # the model card's own sampling code, run as a user would: genlab's default images
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    scope: dict = {}
    torch.manual_seed(11)
    exec(code.replace("THIS_FOLDER", str(out)), scope)
    want = run.model.sample(
        16, generator=torch.Generator().manual_seed(11), sampler="ddim", sampling_steps=50
    )
    assert ((want + 1) / 2 - scope["images"]).abs().max().item() <= 1e-4


def test_an_unconditional_run_exported_samples_in_diffusers_ddim_pipeline(tmp_path):
    """DiffusionPipeline.from_pretrained finds a DDIMPipeline, whose own noise (from the same
    seed) and steps give genlab's DDIM images."""
    import genlab

    run_dir, out = tmp_path / "run", tmp_path / "hf"
    overrides = ["model.width=32", "model.schedule=linear", "model.prediction=eps"]
    genlab.train("diffusion", run_dir, preset="tiny", overrides=overrides, progress=False)
    assert main(["export", str(run_dir), "--format", "diffusers", "--out", str(out)]) == 0
    run = genlab.load(run_dir)
    pipe = diffusers.DiffusionPipeline.from_pretrained(out)
    assert type(pipe).__name__ == "DDIMPipeline"
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(
        batch_size=4,
        generator=torch.Generator().manual_seed(3),
        num_inference_steps=10,
        eta=0.0,
        use_clipped_model_output=True,
        output_type="np",
    ).images  # (4, 8, 8, 1) in [0, 1]
    ours = run.model.sample(
        4, generator=torch.Generator().manual_seed(3), sampler="ddim", sampling_steps=10
    )
    ours = ((ours + 1) / 2).permute(0, 2, 3, 1).numpy()
    assert abs(ours - theirs).max() <= 1e-4 and ours.std() > 0.05


def test_export_to_diffusers_refuses_what_it_cannot_write(tmp_path, capsys):
    import genlab

    genlab.train("diffusion", tmp_path / "narrow", preset="tiny", progress=False)  # width 8
    line = _cli_error(
        ["export", str(tmp_path / "narrow"), "--format", "diffusers", "--out", str(tmp_path / "o")],
        capsys,
    )
    assert "multiples of 32" in line and "model.width=8" in line
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()
    genlab.train("vae", tmp_path / "vae", preset="tiny", progress=False)
    line = _cli_error(
        ["export", str(tmp_path / "vae"), "--format", "diffusers", "--out", str(tmp_path / "o")],
        capsys,
    )
    assert "vae run" in line and "diffusion" in line


def test_writing_a_diffusers_folder_does_not_import_diffusers():
    probe = (
        "import sys, genlab.cli.export, genlab.hf.unet2d; "
        "print('diffusers' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_exported_configs_name_what_genlab_trained(tmp_path):
    cfg = DiffusionConfig(
        width=32, blocks=1, attention_res=8, schedule="linear", timesteps=500, prediction="eps"
    )
    model = Diffusion(cfg, DataInfo.images((3, 16, 16), []))
    run = types.SimpleNamespace(model=model, config=types.SimpleNamespace(model=cfg))
    write_unet2d(run, tmp_path)
    sched = json.loads((tmp_path / "scheduler" / "scheduler_config.json").read_text())
    assert sched["beta_schedule"] == "linear" and sched["num_train_timesteps"] == 500
    assert sched["beta_start"] == pytest.approx(2e-4) and sched["beta_end"] == pytest.approx(0.04)
    unet = json.loads((tmp_path / "unet" / "config.json").read_text())
    assert unet["in_channels"] == 3 and unet["num_class_embeds"] is None
    assert unet["block_out_channels"] == [32, 64, 128]
    assert unet["down_block_types"] == ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"]
