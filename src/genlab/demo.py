"""`genlab demo`: train a conditional VAE, GAN and diffusion model on the embedded digits,
sample each (and interpolate the two with a latent space), evaluate all three (quality,
diversity, copies, each beside the real-vs-real floor; the VAE's likelihood too), write
one HTML report comparing them, and say where everything is.

    python -m genlab demo            # about four minutes on two CPU cores

    runs/demo/{vae,gan,diffusion}/   three runs (samples.png, eval/ inside; interpolation.png
                                     for the VAE and the GAN)
    runs/demo/report.html            leaderboard, grids, the VAE's and GAN's knobs swept, curves
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from genlab.evaluate import evaluate
from genlab.report.html import build_report
from genlab.run import is_run, load
from genlab.sample import save_images
from genlab.training.launch import train

# (family, training steps in the demo, extra overrides, what it is): shorter than the
# presets, so that all three train, sample, score and report in under 5 minutes
FAMILIES = (
    ("vae", 800, (), "a conditional VAE (800 steps)"),
    ("gan", 500, (), "a conditional GAN (non-saturating, DiffAugment, EMA; 500 steps)"),
    (
        "diffusion",
        250,
        ("model.width=16",),
        "a conditional diffusion model (U-Net, v-prediction, guidance; 250 steps)",
    ),
)
# sweeping diffusion's sampling steps and guidance takes minutes on a CPU: `genlab compare`
NOT_SWEPT = ("diffusion",)
N_EVAL = 300


def _fresh(out: Path) -> Path:
    """``out``, or ``out-2``, ``out-3``... so a second demo never overwrites the first."""
    candidate, i = out, 1
    while is_run(candidate) or (candidate.exists() and any(candidate.iterdir())):
        i += 1
        candidate = out.with_name(f"{out.name}-{i}")
    return candidate


def _pictures(run_dir: Path) -> tuple[Path, Path | None]:
    run = load(run_dir, device="cpu")
    g = torch.Generator().manual_seed(0)
    labels = [i % 10 for i in range(100)]  # each column one digit, 0..9
    grid = save_images(
        run.model.sample(100, generator=g, label=labels), run_dir / "samples.png", nrow=10
    )
    if not run.model.has_latent:
        return grid, None
    interp = save_images(
        run.model.interpolate(10, 10, generator=g, label=list(range(10))),
        run_dir / "interpolation.png",
        nrow=10,
    )
    return grid, interp


def demo(out: Path, steps: int | None = None, device: str = "auto") -> Path:
    """Run the demo into ``out`` (or out-2, ...); ``steps`` overrides both families' steps."""
    t0 = time.perf_counter()
    out = _fresh(out)
    say = lambda msg: print(f"genlab demo: {msg}", file=sys.stderr)  # noqa: E731
    lines, records = [], {}
    for family, family_steps, extra, what in FAMILIES:
        run_dir = out / family
        say(f"training {what} on the embedded 8x8 digits -> {run_dir}")
        overrides = ["data.name=digits", "model.conditional=true", f"train.device={device}"]
        overrides += list(extra)
        if steps or family_steps:
            overrides.append(f"train.steps={steps or family_steps}")
        train(family, run_dir, overrides=overrides)
        grid, interp = _pictures(run_dir)
        metrics = ("samples", "nll") if family == "vae" else ("samples",)
        say(f"scoring {N_EVAL} {family.upper()} samples against the test split")
        records[family] = evaluate(
            load(run_dir, device="cpu"), metrics=metrics, n=N_EVAL, k=100, seed=0
        )
        lines.append(f"  {family + ' samples (column = digit 0-9):':<40}{grid}")
        if interp:
            lines.append(f"  {family + ' latent interpolations:':<40}{interp}")
    say("sweeping the VAE's temperature and the GAN's truncation for the report")
    report = build_report(
        [out / f[0] for f in FAMILIES], out / "report.html", n=N_EVAL, skip_sweeps=NOT_SWEPT
    )

    fl = records["vae"]["floor"]
    table = [
        f"  {'':<22}{'FID':>8}{'precision':>11}{'recall':>8}{'class ok':>10}{'copies':>8}",
        f"  {'real-vs-real floor':<22}{fl['fid']:>8.2f}{fl['precision']:>11.2f}"
        f"{fl['recall']:>8.2f}{fl['class_consistency']:>10.1%}{'':>8}",
    ]
    for family, rec in records.items():
        table.append(
            f"  {family.upper():<22}{rec['fid']:>8.2f}{rec['precision']:>11.2f}"
            f"{rec['recall']:>8.2f}{rec['class_consistency']:>10.1%}"
            f"{round(rec['copy_share'] * N_EVAL):>5}/{N_EVAL}"
        )
    vae = records["vae"]
    print(
        f"\ngenlab demo finished in {time.perf_counter() - t0:.0f}s.\n"
        + "\n".join(lines)
        + f"\n  {'the report (open it in a browser):':<40}{report}\n"
        + f"\n  {N_EVAL} samples each vs the {vae['protocol']['n_real']} test digits, domain-"
        "classifier features (class ok: the digit asked for was drawn; copies: closer to a "
        "training digit than 99% of unseen test digits are):\n"
        + "\n".join(table)
        + f"\n  VAE test NLL (IWAE, k=100): {vae['iwae_nll']:.2f} +- {vae['iwae_nll_sem']:.2f} "
        f"nats ({vae['bits_per_dim']:.3f} bits/dim, binarized digits)\n"
        f"  every figure with its protocol: {out}/*/eval/metrics.json\n"
        f"next: genlab sample {out / 'gan'} -n 64 --out grid.png --truncation 1.0 --label 3\n"
        f"      genlab sample {out / 'diffusion'} -n 64 --out grid.png --guidance 4 --label 3\n"
        f"      genlab compare {out / 'diffusion'} --out report.html   (steps and guidance "
        "swept)\n"
    )
    return out
