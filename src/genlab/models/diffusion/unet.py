"""The denoising U-Net (Ronneberger et al. 2015, as used by Ho et al. 2020 and Nichol &
Dhariwal 2021): residual blocks conditioned on a sinusoidal timestep embedding and an
optional class embedding, group norm, self-attention at the coarse resolutions; and, for
text, cross-attention from the pixels to a prompt's token states (Rombach et al. 2022).

    net = UNet(channels=1, size=28, width=64, num_classes=10)
    out = net(x_t, t, y)        # (B, 1, 28, 28): eps, v or x0, as the family trains it
    net = UNet(channels=3, size=32, context_dim=128)         # text-conditioned
    out = net(x_t, t, context=tokens, context_mask=mask)    # tokens (B, L, 128), mask (B, L)

With ``patch`` > 1 the network sees each patch x patch block of pixels as one position
(pixel_unshuffle in, pixel_shuffle out, as Hoogeboom et al. 2023's simple diffusion
downsamples first): a 32x32 image runs at 16x16, a quarter of the cost at the top level.

With ``context_dim`` the levels of ``cross_attention_res`` and smaller (and the middle)
gain a cross-attention layer after each residual block, and the prompt's first token
state (the text encoder's summary of the whole prompt) is added to the timestep
embedding, so every block sees the prompt; cross-attention places it.

The levels follow the image: 8 -> [8, 4], 28 -> [28, 14, 7], 64 -> [64, 32, 16, 8, 4]
(halving while even and above 4), with ``width`` channels at full size, doubled per level
up to ``max_width``. Label index ``num_classes`` is the null label that classifier-free
guidance trains and samples with.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from genlab.models.layers import (
    Downsample,
    ResBlock,
    Upsample,
    attention,
    group_norm,
    level_widths,
    resolution_levels,
)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """(B,) timesteps -> (B, dim) sines and cosines at geometric frequencies."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


class Attention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, residual.

    q, k and v come from one linear layer over (B, HW, C) tokens and are laid out with
    the head dimension contiguous, which lets scaled_dot_product_attention take its fused
    kernels (on the CPU too; strided inputs fall back to plain matrix products)."""

    def __init__(self, channels: int, head_dim: int = 32):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = group_norm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        qkv = self.qkv(tokens).view(b, h * w, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, HW, head_dim)
        # (float32 while training under CPU bf16: see ``attention``)
        a = attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)
        return x + self.out(a).transpose(1, 2).reshape(b, c, h, w)


class CrossAttention(nn.Module):
    """Multi-head attention from the pixels of a feature map (queries) to a prompt's token
    states (keys and values), residual; ``mask`` (B, L) marks the tokens that take part
    (padding does not). Zero-initialised output: a new layer starts as the identity."""

    def __init__(self, channels: int, context_dim: int, head_dim: int = 32):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = group_norm(channels)
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(context_dim, 2 * channels)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        d = c // self.heads
        q = self.q(self.norm(x).flatten(2).transpose(1, 2))  # (B, HW, C)
        q = q.view(b, h * w, self.heads, d).transpose(1, 2)
        k, v = self.kv(context).view(b, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4)
        keep = mask[:, None, None, :].to(torch.bool)  # (B, 1, 1, L)
        a = attention(q, k, v.contiguous(), mask=keep).transpose(1, 2).reshape(b, h * w, c)
        return x + self.out(a).transpose(1, 2).reshape(b, c, h, w)


class UNet(nn.Module):
    def __init__(
        self,
        channels: int,
        size: int,
        *,
        width: int = 64,
        max_width: int = 256,
        blocks: int = 2,
        attention_res: int = 16,
        num_classes: int = 0,
        dropout: float = 0.0,
        context_dim: int = 0,
        cross_attention_res: int = 16,
        patch: int = 1,
    ):
        super().__init__()
        if size % patch:
            raise ValueError(f"images of {size}x{size} do not cut into {patch}x{patch} patches")
        # patch > 1: each patch x patch block of pixels becomes one position with its pixels
        # as channels (pixel_unshuffle), so the network runs at size / patch
        self.patch = patch
        channels, size = channels * patch * patch, size // patch
        levels = resolution_levels(size)
        widths = level_widths(width, max_width, len(levels))
        emb = 4 * width
        self.width, self.num_classes, self.context_dim = width, num_classes, context_dim
        self.time_mlp = nn.Sequential(nn.Linear(width, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.label_emb = nn.Embedding(num_classes + 1, emb) if num_classes else None
        self.text_emb = nn.Linear(context_dim, emb) if context_dim else None
        self.conv_in = nn.Conv2d(channels, widths[0], 3, padding=1)

        def block(c_in: int, c_out: int, res: int) -> nn.ModuleList:
            parts = [ResBlock(c_in, c_out, dropout, emb_dim=emb)]
            if res <= attention_res:
                parts.append(Attention(c_out))
            if context_dim and res <= cross_attention_res:
                parts.append(CrossAttention(c_out, context_dim))
            return nn.ModuleList(parts)

        self.down = nn.ModuleList()
        skips = [widths[0]]
        c = widths[0]
        for i, res in enumerate(levels):
            for _ in range(blocks):
                self.down.append(block(c, widths[i], res))
                c = widths[i]
                skips.append(c)
            if i < len(levels) - 1:
                self.down.append(nn.ModuleList([Downsample(c, c)]))
                skips.append(c)
        mid = [ResBlock(c, c, dropout, emb_dim=emb), Attention(c)]
        if context_dim:
            mid.append(CrossAttention(c, context_dim))
        self.mid = nn.ModuleList([*mid, ResBlock(c, c, dropout, emb)])
        self.up = nn.ModuleList()
        for i in reversed(range(len(levels))):
            for _ in range(blocks + 1):
                self.up.append(block(c + skips.pop(), widths[i], levels[i]))
                c = widths[i]
            if i > 0:
                self.up.append(nn.ModuleList([Upsample(c, c)]))
        self.norm_out = group_norm(c)
        self.conv_out = nn.Conv2d(c, channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def embed(
        self, t: torch.Tensor, y: torch.Tensor | None, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        e = self.time_mlp(timestep_embedding(t, self.width))
        if self.label_emb is not None:
            if y is None:  # unconditional: the null label
                y = torch.full_like(t, self.num_classes)
            e = e + self.label_emb(y)
        if self.text_emb is not None:
            if context is None:
                raise ValueError("a text-conditioned U-Net needs the prompt's context")
            e = e + self.text_emb(context[:, 0])  # the encoder's summary token
        return e

    @staticmethod
    def _run(parts: nn.ModuleList, h: torch.Tensor, e: torch.Tensor, ctx) -> torch.Tensor:
        for m in parts:
            if isinstance(m, ResBlock):
                h = m(h, e)
            elif isinstance(m, CrossAttention):
                h = m(h, *ctx)
            else:
                h = m(h)
        return h

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        e = self.embed(t, y, context)
        ctx = (context, context_mask)
        if self.patch > 1:
            x = F.pixel_unshuffle(x, self.patch)
        h = self.conv_in(x)
        hs = [h]
        for parts in self.down:
            h = self._run(parts, h, e, ctx)
            hs.append(h)
        h = self._run(self.mid, h, e, ctx)
        for parts in self.up:
            if isinstance(parts[0], Upsample):
                h = parts[0](h)
            else:
                h = self._run(parts, torch.cat([h, hs.pop()], dim=1), e, ctx)
        out = self.conv_out(F.silu(self.norm_out(h)))
        return F.pixel_shuffle(out, self.patch) if self.patch > 1 else out
