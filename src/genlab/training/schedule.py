"""The learning-rate schedule: linear warm-up, then a cosine (or a constant) to the end.

The trainer keeps each parameter group's ``base_lr`` (the config's LR times a rollback's
scale) and sets ``lr`` from it before every step; ``lr_factor`` is the multiplier.

    set_lr(optimizers, lr_factor(step, cfg.train))     # before the step's forward pass
"""

from __future__ import annotations

import math

import torch

from genlab.config import TrainConfig


def lr_factor(step: int, cfg: TrainConfig, time_progress: float = 0.0) -> float:
    """Multiplier of the base LR at ``step`` (0-based): linear warm-up, then a cosine that
    reaches ``min_lr_ratio`` at the last step (or when ``time_progress``, the share of
    the ``train.minutes`` budget used, reaches 1)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    decay_steps = max(1, cfg.steps - 1 - cfg.warmup_steps)
    p = min(1.0, max((step - cfg.warmup_steps) / decay_steps, time_progress))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p))


def set_lr(optimizers: dict[str, torch.optim.Optimizer], factor: float) -> None:
    """Each parameter group's LR: its ``base_lr`` times ``factor``."""
    for opt in optimizers.values():
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * factor
