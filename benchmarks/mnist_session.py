"""What the MNIST quality benchmarks share: their command-line options for a training
session that a GPU command's time limit may cut (``--until`` / ``--resume``), the data
mirror beside the checkout, and one training session through ``genlab.train``.

    p = session_parser(__doc__, "runs/bench-gan-mnist", "30000")
    args = p.parse_args()
    session = train_session("gan", args, p, new_run=["model.conditional=false"])
    if session.complete: ...evaluate...
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import torch

import genlab
from genlab.rundir import read_config
from genlab.training.distributed import pick_device

REPO = Path(__file__).resolve().parents[1]


def default_mirror() -> str | None:
    """The shared data folder beside or inside the checkout, if any and none is set."""
    if os.environ.get("GENLAB_DATA_MIRROR"):
        return None
    for folder in (REPO.parent / "shared" / "data", REPO / "shared" / "data"):
        if (folder / "mnist").is_dir():
            return str(folder)
    return None


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


def session_parser(doc: str, out: str, preset_steps: str) -> argparse.ArgumentParser:
    """The options every MNIST benchmark takes; a script adds its evaluation's own."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--out", default=out, help="run directory")
    p.add_argument(
        "--steps", type=int, help=f"optimizer steps (default: the preset's {preset_steps})"
    )
    p.add_argument("--minutes", type=float, help="training time budget (train.minutes)")
    p.add_argument(
        "--until",
        type=int,
        metavar="STEP",
        help="end this session at STEP (checkpointed); --resume continues",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("overrides", nargs="*", help="extra key=value config overrides (new run)")
    return p


@dataclass
class Session:
    out: Path
    device: torch.device
    summary: dict
    config: object  # RunConfig
    info: object  # DataInfo
    complete: bool  # the run reached its steps (or its minutes): evaluate it

    def record(self, benchmark: str) -> dict:
        return {
            "benchmark": benchmark,
            "complete": self.complete,
            "steps": self.summary["step"],
            "steps_target": self.config.train.steps,
            "train_seconds": round(self.summary["elapsed_s"], 1),
            "device": device_description(self.device),
        }


def train_session(
    family: str, args, parser: argparse.ArgumentParser, new_run: tuple[str, ...] = ()
) -> Session:
    """Train (or resume) ``family`` with its "mnist" preset on MNIST as ``args`` say;
    ``new_run``: overrides a new run starts with (before the user's own)."""
    mirror = default_mirror()
    if mirror:
        os.environ["GENLAB_DATA_MIRROR"] = mirror
    device = pick_device(args.device)
    overrides = [f"train.device={device}"]
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    if args.minutes is not None:
        overrides.append(f"train.minutes={args.minutes}")
    if not args.resume:
        overrides = ["data.name=mnist", *new_run, *overrides, *args.overrides]
    elif args.overrides:
        parser.error("--resume continues the run as it was: give no key=value overrides")
    out = Path(args.out)
    summary = genlab.train(
        family,
        out,
        preset="mnist",
        overrides=overrides,
        resume=args.resume,
        progress=not args.quiet,
        until=args.until,
    )
    cfg, info = read_config(out)
    complete = summary["step"] >= cfg.train.steps or summary["stopped_by_time"]
    return Session(out, device, summary, cfg, info, bool(complete))


def next_command(script: str, out: Path) -> str:
    return f"python benchmarks/{script} --out {out} --resume [--until STEP]"
