"""Start or resume a run: configs in, a run directory out.

    from genlab.training.launch import train
    summary = train("vae", out="runs/vae", overrides=["data.name=digits", "train.steps=500"])

This is what ``genlab train`` calls, in one process or under ``torchrun``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import torch

from genlab.config import apply_overrides
from genlab.data import TensorData, data_info, load_data
from genlab.errors import ConfigError, RunError
from genlab.run import RunConfig, build_model, is_run, read_config, write_config
from genlab.training.distributed import Distributed
from genlab.training.trainer import Trainer


def check_out_dir(out: Path, resume: bool) -> None:
    """Refuse, before anything is written, to train over something already there."""
    if resume:
        if not is_run(out):
            raise RunError(f"--resume: {out} holds no genlab run; start it without --resume")
        return
    if is_run(out):
        raise RunError(
            f"{out} already holds a run; continue it with --resume, or choose another --out"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunError(f"{out} exists and is not an empty folder; choose another --out")


def resumed_config(out: Path, family: str | None, overrides: list[str]) -> RunConfig:
    """The saved config with the overrides a resume may change (steps, time, logging, device)."""
    saved, _ = read_config(out)
    if family and family != saved.family:
        raise ConfigError(f"{out} holds a {saved.family} run, not {family}")
    cfg = apply_overrides(saved, overrides)
    if cfg.model != saved.model or cfg.data != saved.data:
        raise ConfigError(
            "--resume continues a run as it was: model.* and data.* cannot change "
            "(start a new run with --out elsewhere)"
        )
    fixed = ("batch_size", "seed", "grad_accum", "betas", "weight_decay")
    for name in fixed:
        if getattr(cfg.train, name) != getattr(saved.train, name):
            raise ConfigError(f"--resume cannot change train.{name}; start a new run instead")
    return cfg


def train(
    family: str | None,
    out: str | Path,
    *,
    preset: str = "default",
    overrides: list[str] = (),
    resume: bool = False,
    progress: bool = True,
    until: int | None = None,
) -> dict[str, Any]:
    """Train a new run into ``out`` (or continue it with ``resume``); returns a summary.

    ``until`` stops this session at that step (checkpointed); resume continues it.
    """
    out = Path(out)
    check_out_dir(out, resume)
    if resume:
        cfg = resumed_config(out, family, list(overrides))
    else:
        if family is None:
            raise ConfigError("name a model family, e.g. `genlab train vae`")
        cfg = RunConfig.new(family, preset, list(overrides))
    env = Distributed(cfg.train.device)
    quiet = not (progress and env.main)
    train_set = load_data(cfg.data, "train", progress=not quiet)
    test_set = load_data(cfg.data, "test", progress=not quiet)
    info = data_info(train_set)
    if resume:
        _, saved_info = read_config(out)
        if (tuple(saved_info.shape), saved_info.classes) != (tuple(info.shape), info.classes):
            raise RunError(
                f"the data at {cfg.data.name!r} no longer matches the run "
                f"({saved_info.shape} vs {info.shape}); restore it or start a new run"
            )
    torch.manual_seed(cfg.train.seed)  # the same initial weights on every rank
    model = build_model(cfg, info)
    # the trainer restores a resumed run's checkpoint here: a damaged one stops
    # us before anything on disk changes
    trainer = Trainer(
        out,
        cfg,
        model,
        TensorData.from_images(train_set),
        TensorData.from_images(test_set),
        resume=resume,
        progress=progress,
        dist_env=env,
    )
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
        write_config(out, cfg, info)
        if not quiet:
            n_params = sum(p.numel() for p in model.parameters())
            print(
                f"genlab: {cfg.family} ({n_params / 1e6:.2f}M parameters) on "
                f"{train_set.name} {tuple(info.shape)} x {len(train_set.x)} from {train_set.source}"
                f"; device {env.device}, {env.world} process(es) -> {out}",
                file=sys.stderr,
            )
    env.barrier()
    summary = trainer.fit(until=until)
    summary["config"] = dataclasses.asdict(cfg.train)
    return summary
