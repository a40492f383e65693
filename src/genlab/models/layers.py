"""Building blocks shared by the families (the image families' convolutions; attention).

levels = resolution_levels(28)          # [28, 14, 7]: halve while even and > 4
block = ResBlock(64, dropout=0.1)
y = attention(q, k, v, is_causal=True)  # (B, heads, T, head_dim), as scaled_dot_product_attention
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def resolution_levels(size: int, smallest: int = 4) -> list[int]:
    """Spatial sizes from ``size`` down, halving while even and above ``smallest``.

    8 -> [8, 4], 28 -> [28, 14, 7], 32 -> [32, 16, 8, 4], 64 -> [64, 32, 16, 8, 4].
    """
    sizes = [size]
    while sizes[-1] % 2 == 0 and sizes[-1] > smallest:
        sizes.append(sizes[-1] // 2)
    return sizes


def level_widths(width: int, max_width: int, levels: int) -> list[int]:
    """Channels at each of ``levels`` resolution levels: ``width`` at full resolution,
    doubled at each halving, at most ``max_width``. (32, 256, 4) -> [32, 64, 128, 256]."""
    return [min(width * 2**i, max_width) for i in range(levels)]


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    is_causal: bool = False,
    p: float = 0.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``scaled_dot_product_attention`` (fused kernels on CPU and GPU; dropout ``p``), with
    one rule for training under CPU bf16 autocast: PyTorch's CPU flash-attention backward
    is slower in bf16 than in float32 at these models' sizes (the GPT's and the U-Net's),
    which undid bf16's gain in the matmuls. So while gradients are on, attention runs in
    float32; without them (sampling, validation) it stays in bf16, whose forward kernel is
    the faster. ``mask`` (broadcast to (B, heads, T, S), True where a query may look)
    leaves out keys such as a prompt's padding."""
    if q.dtype == torch.bfloat16 and q.device.type == "cpu" and torch.is_grad_enabled():
        with torch.autocast("cpu", enabled=False):
            y = F.scaled_dot_product_attention(
                q.float(), k.float(), v.float(), attn_mask=mask, is_causal=is_causal, dropout_p=p
            )
        return y.to(q.dtype)
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=p
    )


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with as many groups (<= 32) as divide the channels: no batch
    statistics, so DDP ranks and batch sizes do not change the function."""
    groups = math.gcd(channels, 32)
    return nn.GroupNorm(groups, channels)


class ResBlock(nn.Module):
    """Pre-activation residual block: (GN, SiLU, conv3x3) x 2 with dropout between.

    With ``emb_dim`` > 0 it also takes an embedding (a diffusion timestep, a class) that
    scales and shifts the second norm's output per channel: GN(h) * (1 + scale) + shift.
    """

    def __init__(self, c_in: int, c_out: int | None = None, dropout: float = 0.0, emb_dim: int = 0):
        super().__init__()
        c_out = c_out or c_in
        self.norm1, self.conv1 = group_norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2, self.conv2 = group_norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out) if emb_dim else None
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.norm2(h)
        if self.emb is not None:
            scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Downsample(nn.Module):
    """Stride-2 3x3 convolution: (B, C_in, H, W) -> (B, C_out, H/2, W/2)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest x2 then 3x3 convolution (no checkerboard artefacts of transposed convs)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def label_tensor(
    n: int, label, num_classes: int, conditional: bool, family: str, device
) -> torch.Tensor | None:
    """The labels of ``n`` samples as a tensor for a conditional model (None otherwise);
    a label given to an unconditional model, or out of range, is a ConfigError."""
    from genlab.errors import ConfigError

    if not conditional:
        if label is not None:
            raise ConfigError(
                f"this {family.upper()} is not conditional; train with "
                "model.conditional=true to choose labels"
            )
        return None
    labels = labels_for(n, label, num_classes)
    if max(labels) >= num_classes:
        raise ConfigError(
            f"label {max(labels)} is out of range: this model has "
            f"{num_classes} classes (0..{num_classes - 1})"
        )
    return torch.tensor(labels, device=device)


def labels_for(n: int, label: int | list[int] | None, num_classes: int) -> list[int] | None:
    """The class label of each of ``n`` samples: given, repeated, or cycling 0..K-1."""
    if num_classes == 0:
        return None
    if label is None:
        return [i % num_classes for i in range(n)]
    labels = list(label) if isinstance(label, (list, tuple)) else [label]
    return [labels[i % len(labels)] for i in range(n)]


def slerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of ``a`` and ``b`` (keeps prior norms)."""
    cos = F.cosine_similarity(a, b, dim=1).clamp(-1 + 1e-6, 1 - 1e-6).unsqueeze(1)
    omega = torch.acos(cos)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
