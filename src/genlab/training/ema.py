"""Exponential moving average of a model's weights (Polyak averaging).

ema = EMA(model, decay=0.999)
...after each optimizer step: ema.update(model, step)
with ema.applied(model):      # weights swapped in for sampling or validation
    x = model.sample(16)
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn


class EMA:
    """Float32 shadow copies of every parameter and floating buffer."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True):
        self.decay = decay
        self.warmup = warmup
        self.names = [k for k, v in model.state_dict().items() if v.dtype.is_floating_point]
        state = model.state_dict()
        self.shadow = {k: state[k].detach().float().clone() for k in self.names}

    def decay_at(self, step: int) -> float:
        # early on the average would be dominated by random init: ramp the decay up
        return min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        state = model.state_dict()
        live = [
            state[k].float() if state[k].dtype != torch.float32 else state[k] for k in self.names
        ]
        shadow = [self.shadow[k] for k in self.names]
        # shadow <- shadow + (1 - decay) * (live - shadow), for all tensors at once
        torch._foreach_lerp_(shadow, live, 1.0 - self.decay_at(step))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.names) - set(state)
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:3]}")
        for k in self.names:
            self.shadow[k].copy_(state[k])

    def weights_for(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """A full state dict of ``model`` with the averaged weights in place."""
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        for k in self.names:
            state[k] = self.shadow[k].to(state[k].dtype)
        return state

    @contextlib.contextmanager
    def applied(self, model: nn.Module):
        """Temporarily load the averaged weights into ``model``."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.weights_for(model))
        try:
            yield model
        finally:
            model.load_state_dict(backup)
