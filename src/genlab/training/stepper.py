"""Optimizer steps: gradient clipping, and the ``Stepper`` of families that own their update.

The trainer steps every optimizer at once after a step's backward passes (``step_all``).
A family with ordered updates (the GAN: discriminator, then generator) gets a ``Stepper``
instead and steps each optimizer itself; the Stepper also averages the gradients over DDP
ranks, because such a model is not DDP-wrapped.

    norm = step_all(optimizers, max_norm=1.0)     # after loss.backward()
    norm = Stepper(optimizers, clip=1.0).step("d", d_loss)
"""

from __future__ import annotations

import torch
import torch.distributed as dist


class Stepper:
    """What a family that owns its step uses: ``stepper.step("gen", loss)`` back-propagates,
    averages the gradients over DDP ranks, clips, steps that optimizer and clears its
    gradients; returns the gradient norm. (The family's model is not DDP-wrapped here,
    because its ordered updates run several forward passes per step.)"""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], clip: float, world: int = 1):
        self.optimizers, self.clip, self.world = optimizers, clip, world

    def step(self, name: str, loss: torch.Tensor) -> torch.Tensor:
        opt = self.optimizers[name]
        loss.backward()
        if self.world > 1:
            grads = [p.grad for p in _with_grads(opt)]
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)
            flat /= self.world
            parts = flat.split([g.numel() for g in grads])
            torch._foreach_copy_(grads, [f.view_as(g) for f, g in zip(parts, grads)])
        norm = clip_gradients(opt, self.clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return norm


def step_all(optimizers: dict[str, torch.optim.Optimizer], max_norm: float) -> torch.Tensor:
    """Clip each optimizer's gradients, then step and clear them all; returns the first
    optimizer's gradient norm (before clipping)."""
    norms = [clip_gradients(opt, max_norm) for opt in optimizers.values()]
    for opt in optimizers.values():
        opt.step()
        opt.zero_grad(set_to_none=True)
    return norms[0]


def clip_gradients(opt: torch.optim.Optimizer, max_norm: float) -> torch.Tensor:
    """Scale ``opt``'s gradients to a global norm of at most ``max_norm`` (0: leave them);
    returns their norm before clipping."""
    params = _with_grads(opt)
    if max_norm > 0:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    return (
        torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        if params
        else torch.zeros(())
    )


def _with_grads(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
