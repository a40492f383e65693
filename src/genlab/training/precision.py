"""The number formats a run trains in: train.precision (fp32 or bf16), and TF32 on CUDA.

"auto" is bf16 only on a CPU with bf16 matrix units, for a family that sets ``cpu_bf16``;
elsewhere bf16 is asked for. Under bf16 the forward passes run in torch.autocast while
weights, gradients and optimizer state stay float32.

    precision = resolve_precision(tc.precision, device, model)   # "fp32" or "bf16"
    with autocast(device, precision):
        out = model(batch)
"""

from __future__ import annotations

import torch

from genlab.models.base import cpu_has_bf16_units


def resolve_precision(precision: str, device: torch.device, model) -> str:
    """Either "fp32" or "bf16": train.precision, with "auto" decided for this device and
    family (bf16 on a CPU with bf16 matrix units where the family sets ``cpu_bf16``)."""
    if precision != "auto":
        return precision
    on_amx = device.type == "cpu" and cpu_has_bf16_units()
    return "bf16" if on_amx and model.cpu_bf16 else "fp32"


def autocast(device: torch.device, precision: str):
    """The context a forward pass runs in: bf16 autocast, or (fp32) nothing changed."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def allow_tf32(device: torch.device) -> None:
    """On CUDA, TF32 for what autocast leaves in float32 (as nanoGPT): Ampere and later
    GPUs multiply float32 matrices through it much faster, to about 1e-3 relative."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
