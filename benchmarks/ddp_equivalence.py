"""Do two DDP ranks average gradients exactly? Two gloo ranks on the CPU at a global batch B
(B/2 each) against one process at batch B, and one process at B/2 (what an un-averaged
rank would do) for scale: the largest weight difference after the same steps.

    python benchmarks/ddp_equivalence.py [--batch 32] [--steps 5] [--family ddp_probe_step]

The approach of tests/test_ddp.py, which asserts the same thing: a deterministic conv
autoencoder (no sampling noise, dropout or batch statistics) registered as a family beside
genlab's CLI, trained on the embedded digits through ``genlab train`` under torchrun
(``--nproc_per_node=2``, gloo) and as one process, one torch thread per process, Adam with
no warm-up, a large LR (0.01) and gradient clipping, no EMA. ``ddp_probe_step`` takes the
path of a family that owns its optimizer step (as the GAN does). Prints one JSON object;
under a minute on a 2-core CPU (mostly the six Python processes starting).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

SRC = Path(__file__).resolve().parents[1] / "src"

# genlab's CLI with the probe families registered first (as in tests/test_ddp.py)
LAUNCHER = Path(__file__).resolve().parent / "ddp_probe_launch.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(launcher: Path, out: Path, family: str, batch: int, steps: int, nproc: int = 1) -> dict:
    """Train the probe into ``out`` (under torchrun when nproc > 1); its final weights."""
    cmd = [sys.executable]
    if nproc > 1:
        cmd += ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
        cmd += ["--master_addr=127.0.0.1", f"--master_port={_free_port()}"]
    cmd += [str(launcher), "train", family, "--out", str(out), "--steps", str(steps)]
    cmd += ["--seed", "3", "--data", "digits", "--device", "cpu", "--quiet"]
    cmd += ["train.ema_decay=0", "train.warmup_steps=0", "train.lr=0.01"]
    cmd += [f"train.batch_size={batch}"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(cmd, cwd=out.parent, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)}\nexited {proc.returncode}\n{proc.stderr[-4000:]}")
    return load_file(out / "model.safetensors")


def max_diff(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32, help="global batch B (even; default 32)")
    p.add_argument("--steps", type=int, default=5, help="optimizer steps (default 5)")
    p.add_argument("--family", default="ddp_probe", choices=["ddp_probe", "ddp_probe_step"])
    args = p.parse_args()
    if args.batch < 2 or args.batch % 2:
        p.error("--batch must be even")
    if not torch.distributed.is_available():
        sys.exit("this torch build has no torch.distributed")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        launcher = LAUNCHER
        ddp = train(launcher, root / "ddp", args.family, args.batch, args.steps, nproc=2)
        one = train(launcher, root / "one", args.family, args.batch, args.steps)
        half = train(launcher, root / "half", args.family, args.batch // 2, args.steps)
    record = {
        "benchmark": "ddp_equivalence",
        "family": args.family,
        "steps": args.steps,
        "batch": args.batch,
        "ranks": 2,
        "backend": "gloo (CPU, 1 thread per process)",
        # the largest |weight| difference over every tensor after the last step
        "max_abs_diff_two_ranks_vs_one_process": max_diff(ddp, one),
        "max_abs_diff_half_batch_vs_one_process": max_diff(half, one),
        "seconds": round(time.perf_counter() - t0, 1),
        "torch": torch.__version__,
    }
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
