"""The text encoder of the text-to-image family: a prompt's token ids -> one state a token.

A small bidirectional transformer (pre-norm blocks, as in CLIP's and T5's encoders) over
the ids of a tokenizer trained on the captions (byte-level BPE, so any text encodes: a word
it never saw falls into known pieces). It is trained together with the U-Net, from
scratch: the captions are a small, closed language (emoji names, tones, styles) that a
story model knows nothing of, and an encoder a tenth of the U-Net's size learns it in the
same steps.

    enc = TextEncoder(vocab_size=1024, width=128, layers=2, context=32)
    ids = enc.pad([[5, 9, 2], [7]])          # (2, 32) int64, -1 after each prompt
    states, mask = enc(ids)                  # (2, 33, 128) and (2, 33) bool

Position 0 of every output is a learned summary token placed before the prompt: it is
always present (so an empty prompt, the unconditional one classifier-free guidance
trains with, is a valid input: the summary alone) and its state is what the U-Net adds to
its timestep embedding. Padding (-1) takes no part in attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genlab.models.layers import attention

PAD = -1  # the id of padding in a batch of prompts


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x)); no causal mask."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, c // self.heads).unbind(2)
        q, k, v = (a.transpose(1, 2) for a in (q, k, v))  # (B, heads, T, head_dim)
        p = self.dropout if self.training else 0.0
        a = attention(q, k, v, mask=keep, p=p).transpose(1, 2).reshape(b, t, c)
        x = x + self.proj(a)
        return x + self.mlp(self.ln2(x))


class TextEncoder(nn.Module):
    """Token ids (B, L) with PAD after each prompt -> (states (B, L + 1, width), mask)."""

    def __init__(
        self,
        vocab_size: int,
        *,
        width: int = 128,
        layers: int = 2,
        heads: int = 4,
        context: int = 32,
        dropout: float = 0.0,
    ):
        super().__init__()
        if width % heads:
            raise ValueError(f"text width {width} must divide by its {heads} heads")
        self.context = context
        self.tok = nn.Embedding(vocab_size, width)
        self.summary = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.zeros(1, context + 1, width))
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.summary, std=0.02)
        self.blocks = nn.ModuleList(EncoderBlock(width, heads, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(width)

    def pad(self, prompts: list[list[int]]) -> torch.Tensor:
        """Prompts' ids (each at most ``context`` long) as one (B, context) batch."""
        out = torch.full((len(prompts), self.context), PAD, dtype=torch.long)
        for i, ids in enumerate(prompts):
            if len(ids) > self.context:
                raise ValueError(f"a prompt of {len(ids)} tokens is longer than {self.context}")
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, length = ids.shape
        mask = F.pad(ids != PAD, (1, 0), value=True)  # the summary token is always there
        x = torch.cat([self.summary.expand(b, -1, -1), self.tok(ids.clamp(min=0))], dim=1)
        x = x + self.pos[:, : length + 1]
        keep = mask[:, None, None, :]  # every position looks at every real token
        for block in self.blocks:
            x = block(x, keep)
        return self.ln(x), mask


__all__ = ["PAD", "TextEncoder"]
