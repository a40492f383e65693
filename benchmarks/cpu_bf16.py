"""Whether bf16 pays on this CPU: each family's CPU recipe trained through genlab's trainer
with train.precision=fp32 and with bf16, same seed, steps/s and quality at equal steps.

    python benchmarks/cpu_bf16.py [--families gpt,rnn,vae,gan,diffusion] [--steps N]
        [--noise-seeds 1] [--fid-n 1000] [--threads N] [--out DIR] [key=value ...]

Each family trains the recipe a user runs on a CPU (RECIPES): the GPT its ``cpu`` preset,
the LSTM as ``genlab demo`` trains it, the image families their ``default`` preset on
digits with labels, as the README and the demo train them; fewer steps than the presets
(the cosine schedule still runs its full course over them). Trailing ``key=value``
overrides apply to every family measured (e.g. ``--families diffusion model.width=16``,
the demo's narrower U-Net). Runs go through ``genlab.training.launch.train``, as ``genlab
train`` does, one after another in this process: fp32, bf16, then fp32 again with each
noise seed, so that the fp32 timings bracket the bf16 one in time.

Speed: steps/s of every metrics.jsonl log window but the first (warm-up), the median;
the fp32 figure pools the windows of its runs. Quality at equal steps: the final weights'
validation loss for gpt, rnn, vae and diffusion, recomputed in float32 for both runs
with the trainer's protocol (same batches, same noise), so that bf16 arithmetic in the
measurement does not count as a difference in the model (the loss the trainer logged,
in the run's own precision, is reported too); for the GAN, whose losses do not measure
quality, FID of ``--fid-n`` samples in the domain classifier's features (genlab.evaluate).

Equal quality: bf16's figure is at most ``tolerance`` worse than fp32's at the same seed
(better counts as equal), where tolerance = max(2 x the largest fp32 seed-to-seed gap, a
floor: 1% of the loss, 10% of the FID). The seed gap is how far quality moves with nothing
but the seed changed, a difference nobody would call a worse model; bf16 is equal where it
moves quality no further. One gap is one draw of that noise, hence the factor 2; the floor,
just above the gaps measured here (GPT 0.7% of its loss, the GAN 7% of its FID), keeps a
lucky small gap from failing an equal run. A family passes with speed ratio >= 1.1 at
equal quality. Prints one JSON object; 9-11 minutes on two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from genlab import demo
from genlab.data import TensorData, TokenData, load_corpus, load_data
from genlab.data.tokenizers import load_tokenizer
from genlab.evaluate import evaluate
from genlab.models.base import cpu_has_bf16_units
from genlab.run import load
from genlab.training.launch import train

DEMO_IMAGES = ["data.name=digits", "model.conditional=true"]
# family: (preset, overrides, steps, quality figure). The GPT: 1,000 of its cpu preset's
# 2,000 steps; the LSTM: genlab demo's (src/genlab/demo.py); VAE and GAN: genlab demo's
# overrides, the GAN at 1,000 steps (the demo trains 500, where its FID is still falling);
# the diffusion model: the README's command (width 32; the demo narrows it to 16)
RECIPES = {
    "gpt": ("cpu", [], 1000, "val_loss"),
    "rnn": ("default", list(demo.TEXT_OVERRIDES), demo.TEXT_STEPS, "val_loss"),
    "vae": ("default", DEMO_IMAGES, 800, "val_loss"),
    "gan": ("default", DEMO_IMAGES, 1000, "fid"),
    "diffusion": ("default", DEMO_IMAGES, 400, "val_loss"),
}
SPEED_RATIO = 1.1  # bf16 steps/s over fp32's that counts as faster
LOSS_FLOOR, FID_FLOOR = 0.01, 0.10  # the tolerance's floor, relative to fp32's figure
SEED0 = 0


def say(msg: str) -> None:
    print(f"cpu_bf16: {msg}", file=sys.stderr, flush=True)


def train_run(
    family: str, overrides: list[str], precision: str, seed: int, steps: int, root: Path
) -> dict:
    """One training run; its steps/s per log window, logged losses and the precision used."""
    preset = RECIPES[family][0]
    out = root / f"{family}-{precision}-seed{seed}"
    t0 = time.perf_counter()
    summary = train(
        family,
        out,
        preset=preset,
        overrides=[
            *overrides,
            f"train.steps={steps}",
            f"train.precision={precision}",
            f"train.seed={seed}",
            "train.device=cpu",
        ],
        progress=False,
    )
    wall = time.perf_counter() - t0
    if summary["precision"] != precision:
        raise RuntimeError(f"{family} asked for {precision} and trained in {summary['precision']}")
    records = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    logs = [r for r in records if "examples_per_s" in r]
    vals = [r for r in records if "val_loss" in r]
    batch = logs[0]["examples"] // logs[0]["step"]
    return {
        "dir": out,
        "windows_steps_per_s": [r["examples_per_s"] / batch for r in logs[1:]],
        "batch_size": batch,
        "final_train_loss": logs[-1]["loss"],
        "val_loss_logged": vals[-1]["val_loss"] if vals and vals[-1]["step"] == steps else None,
        "wall_s": wall,
    }


@torch.no_grad()
def fp32_val_loss(run_dir: Path) -> float:
    """The trainer's validation of a run's final weights (EMA where kept), in float32: the
    same batches, the same fixed noise (seed + 12345), losses weighted by examples or tokens."""
    run = load(run_dir, device="cpu")
    cfg, model = run.config, run.model
    if model.data_kind == "text":
        corpus = load_corpus(cfg.data, load_tokenizer(run_dir / "tokenizer.json"), progress=False)
        val = TokenData(corpus.val, cfg.model.block_size)
    else:
        val = TensorData.from_images(load_data(cfg.data, "test", progress=False))
    total, n = 0.0, 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed + 12345)
        for batch in val.batches(cfg.train.batch_size, model.device, cfg.train.eval_batches):
            batch["step"] = run.step
            b = batch.get("count", len(batch["x"]))
            total += model.loss(batch)["loss"].float().item() * b
            n += b
    return total / n


def quality(family: str, run: dict, fid_n: int) -> float:
    if RECIPES[family][3] == "fid":
        rec = evaluate(
            load(run["dir"], device="cpu"), metrics=("samples",), n=fid_n, seed=0, progress=False
        )
        run["fid_floor"] = rec["floor"]["fid"]
        return rec["fid"]
    return fp32_val_loss(run["dir"])


def measure(
    family: str, extra: list[str], steps: int, noise_seeds: int, fid_n: int, root: Path
) -> dict:
    preset, overrides, _, metric = RECIPES[family]
    overrides = [*overrides, *extra]
    runs = {}
    plan = [("fp32", SEED0), ("bf16", SEED0)] + [
        ("fp32", SEED0 + k) for k in range(1, noise_seeds + 1)
    ]
    for precision, seed in plan:
        say(f"{family}: {steps} steps, {precision}, seed {seed}")
        run = train_run(family, overrides, precision, seed, steps, root)
        run["quality"] = quality(family, run, fid_n)
        runs[(precision, seed)] = run

    fp32, bf16 = runs[("fp32", SEED0)], runs[("bf16", SEED0)]
    noise = [runs[("fp32", s)] for s in range(SEED0 + 1, SEED0 + noise_seeds + 1)]
    fp32_rate = statistics.median(w for r in (fp32, *noise) for w in r["windows_steps_per_s"])
    bf16_rate = statistics.median(bf16["windows_steps_per_s"])
    ratio = bf16_rate / fp32_rate
    q32, q16 = fp32["quality"], bf16["quality"]
    seed_gap = max((abs(r["quality"] - q32) for r in noise), default=None)
    floor = (FID_FLOOR if metric == "fid" else LOSS_FLOOR) * abs(q32)
    tolerance = max(2 * seed_gap, floor) if seed_gap is not None else floor
    equal = q16 - q32 <= tolerance  # lower is better for both figures; better is equal too

    def side(run: dict) -> dict:
        out = {
            "steps_per_s": round(statistics.median(run["windows_steps_per_s"]), 3),
            "log_windows": len(run["windows_steps_per_s"]),
            metric if metric == "fid" else "val_loss_fp32": round(run["quality"], 4),
            "final_train_loss": round(run["final_train_loss"], 4),
            "wall_s": round(run["wall_s"], 1),
        }
        if metric == "fid":
            out["fid_floor"] = round(run["fid_floor"], 4)
        else:
            out["val_loss_logged"] = round(run["val_loss_logged"], 4)
        return out

    return {
        "recipe": {
            "preset": preset,
            "overrides": overrides,
            "steps": steps,
            "batch_size": fp32["batch_size"],
        },
        "fp32": {**side(fp32), "seed": SEED0},
        "bf16": {**side(bf16), "seed": SEED0},
        "fp32_other_seeds": [{**side(r), "seed": s} for s, r in enumerate(noise, SEED0 + 1)],
        "speed": {
            "fp32_steps_per_s": round(fp32_rate, 3),
            "bf16_steps_per_s": round(bf16_rate, 3),
            "fp32_examples_per_s": round(fp32_rate * fp32["batch_size"], 1),
            "bf16_examples_per_s": round(bf16_rate * fp32["batch_size"], 1),
        },
        "speed_ratio": round(ratio, 3),
        "quality": {
            "metric": metric if metric == "fid" else "val_loss_fp32",
            "fp32": round(q32, 4),
            "bf16": round(q16, 4),
            "bf16_minus_fp32": round(q16 - q32, 4),
            "fp32_seed_gap": round(seed_gap, 4) if seed_gap is not None else None,
            "tolerance": round(tolerance, 4),
            "equal": equal,
        },
        "passes": ratio >= SPEED_RATIO and equal,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default=",".join(RECIPES), help="comma-separated (default all)")
    p.add_argument(
        "--steps", type=int, default=None, help="steps of every run (default: each recipe's)"
    )
    p.add_argument(
        "--noise-seeds", type=int, default=1, help="extra fp32 seeds for the noise (default 1)"
    )
    p.add_argument("--fid-n", type=int, default=1000, help="GAN samples scored (default 1000)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default torch's)")
    p.add_argument(
        "--out", type=Path, default=None, help="keep the runs here (default: a temp dir)"
    )
    p.add_argument("overrides", nargs="*", help="key=value for every family's runs")
    args = p.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(families) - set(RECIPES))
    if unknown:
        p.error(f"unknown families {unknown}; choose from {', '.join(RECIPES)}")
    if (args.steps is not None and args.steps < 20) or args.noise_seeds < 0 or args.fid_n < 10:
        p.error("--steps must be >= 20, --noise-seeds >= 0, --fid-n >= 10")
    if args.threads:
        torch.set_num_threads(args.threads)
    if not cpu_has_bf16_units():
        say(
            "this CPU has no bf16 matrix units (AMX): bf16 is emulated here, and the figures "
            "say nothing about a CPU that has them"
        )

    t0, load_before = time.perf_counter(), os.getloadavg()
    results = {}
    with contextlib.ExitStack() as stack:
        if args.out is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="genlab-bf16-")))
        else:
            root = args.out
            root.mkdir(parents=True, exist_ok=True)
        for family in families:
            steps = args.steps or RECIPES[family][2]
            results[family] = measure(
                family, args.overrides, steps, args.noise_seeds, args.fid_n, root
            )

    result = {
        "families": results,
        "pass": [f for f, r in results.items() if r["passes"]],
        "criterion": f"speed_ratio (bf16 steps/s over fp32's) >= {SPEED_RATIO} and bf16's "
        "quality (lower is better) at most `tolerance` worse than fp32's at the same seed; "
        f"tolerance = max(2 x the fp32 seed-to-seed gap, {LOSS_FLOOR:.0%} of the loss or "
        f"{FID_FLOOR:.0%} of the FID)",
        "quality_figures": {
            "val_loss_fp32": "the final weights' (EMA where kept) validation loss, the "
            "trainer's protocol recomputed in float32 (val_loss_logged: as the trainer "
            "logged it, in the run's own precision)",
            "fid": f"FID of {args.fid_n} EMA samples in the domain classifier's features "
            "against the test split (genlab.evaluate); fid_floor: real-vs-real at the same n",
        },
        "speed": "median steps/s over the metrics.jsonl log windows but each run's first; "
        "fp32 pools its seeds' runs",
        "cpu_has_bf16_units": cpu_has_bf16_units(),
        "threads": torch.get_num_threads(),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "seconds": round(time.perf_counter() - t0),
        "torch": torch.__version__,
    }
    if args.overrides:
        result["overrides"] = args.overrides
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
