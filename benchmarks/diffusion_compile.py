"""What ``train.compile=true`` costs and gives the diffusion trainer: compile time and
steady steps/s with the whole ``loss()`` compiled (how the trainer compiled every family
before 2026-12-02, and still compiles those that do not choose), with only the U-Net's
training forward compiled (``Diffusion.compile_for_training``: the default now), and
uncompiled.

    python benchmarks/diffusion_compile.py [--steps 40] [--device cpu] [key=value ...]

The recipe is the README's: the default preset on digits, conditional, here for
``--steps`` steps logged every step (trailing ``key=value`` overrides are added). Each
mode trains in a fresh process with an empty inductor cache of its own, so that no mode
reuses kernels another compiled. ``compile_s``: the first 5 steps' time less 5 steady
steps (the median step of the rest); ``graphs``: the distinct graphs Dynamo compiled (a
recompilation adds one). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HEAD = 5  # steps counted as warm-up (compilation happens in them)
MODES = ("eager", "whole_loss", "unet")


def child(mode: str, steps: int, device: str, extra: list[str], out: Path) -> dict:
    import torch
    from torch._dynamo.utils import counters

    import genlab
    from genlab.models.diffusion.model import Diffusion

    if mode == "whole_loss":  # the trainer's generic path: torch.compile of the whole loss
        Diffusion.compile_for_training = lambda self: False
    overrides = [
        "data.name=digits",
        "model.conditional=true",
        f"train.steps={steps}",
        f"train.device={device}",
        f"train.compile={mode != 'eager'}",
        "train.log_every=1",
        "train.eval_every=0",
        "train.sample_every=0",
        "train.checkpoint_every=0",
        *extra,
    ]
    summary = genlab.train("diffusion", out, preset="default", overrides=overrides, progress=False)
    recs = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    clock = {r["step"]: r["elapsed_s"] for r in recs if "loss" in r}
    step_s = [clock[s] - clock[s - 1] for s in range(HEAD + 1, steps + 1)]
    steady = statistics.median(step_s)
    return {
        "compile_s": round(clock[HEAD] - HEAD * steady, 2),
        "first_step_s": round(clock[1], 2),
        "steps_per_s": round(1 / steady, 2),
        "graphs": counters["stats"]["unique_graphs"],
        "final_loss": round([r for r in recs if "loss" in r][-1]["loss"], 4),
        "precision": summary["precision"],
        "torch": torch.__version__,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # one child's run
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args, extra = ap.parse_known_args()
    if args.steps <= 2 * HEAD:
        sys.exit(f"diffusion_compile: --steps must be above {2 * HEAD}")
    if args.mode:
        res = child(args.mode, args.steps, args.device, extra, args.out)
        print("BENCH " + json.dumps(res), flush=True)
        return
    results = {}
    for mode in MODES:
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                **os.environ,
                "TORCHINDUCTOR_CACHE_DIR": str(Path(tmp) / "inductor"),
                "TRITON_CACHE_DIR": str(Path(tmp) / "triton"),
            }
            print(f"diffusion_compile: {mode} ...", file=sys.stderr)
            cmd = [sys.executable, __file__, "--mode", mode, "--out", str(Path(tmp) / "run")]
            cmd += ["--steps", str(args.steps), "--device", args.device, *extra]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            line = next((s for s in done.stdout.splitlines() if s.startswith("BENCH ")), None)
            if done.returncode != 0 or line is None:
                sys.exit(f"diffusion_compile: {mode} failed:\n{done.stderr[-3000:]}")
            results[mode] = json.loads(line[len("BENCH ") :])
    eager, whole, unet = (results[m] for m in MODES)
    out = {
        "recipe": "diffusion, default preset, digits, conditional",
        "steps": args.steps,
        "device": args.device,
        **results,
        "compile_s_ratio_unet_over_whole_loss": round(unet["compile_s"] / whole["compile_s"], 3)
        if whole["compile_s"] > 0
        else None,
        "steps_per_s_vs_eager": {
            m: round(results[m]["steps_per_s"] / eager["steps_per_s"], 3) for m in MODES[1:]
        },
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
