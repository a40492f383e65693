"""Where training runs: the device, the ranks under ``torchrun``, and RNG state.

env = Distributed("auto")          # cuda, then mps, then cpu; DDP ranks from torchrun
state = rng_state(env.device)      # this process's RNG as one uint8 tensor (checkpoints)
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from genlab.errors import ConfigError


def pick_device(name: str) -> torch.device:
    if name != "auto":
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise ConfigError(
                f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps"
            ) from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for but no CUDA GPU is visible")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class Distributed:
    """Rank, world size and device under ``torchrun`` (one process: rank 0 of 1)."""

    def __init__(self, device_name: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = pick_device(device_name)
        if self.world > 1:
            if self.device.type == "cuda":
                self.device = torch.device("cuda", local)
                torch.cuda.set_device(self.device)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """The average of ``t`` over ranks (logged losses describe the global batch)."""
        if self.world > 1:
            t = t.clone()
            dist.all_reduce(t)
            t /= self.world
        return t

    def gather(self, obj: Any) -> list[Any]:
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


def rng_state(device: torch.device) -> torch.Tensor:
    """This process's RNG state (CPU, plus the current CUDA device) as one uint8 tensor."""
    states = [torch.get_rng_state()]
    if device.type == "cuda":
        states.append(torch.cuda.get_rng_state(device))
    return torch.cat(states)


def set_rng_state(state: torch.Tensor, device: torch.device) -> None:
    cpu = torch.get_rng_state()
    torch.set_rng_state(state[: cpu.numel()].clone())
    if device.type == "cuda":
        torch.cuda.set_rng_state(state[cpu.numel() :].clone(), device)
