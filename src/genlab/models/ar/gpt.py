"""A GPT: a decoder-only Transformer language model (Radford et al. 2018, 2019).

    model = GPT(GPTConfig(n_layer=4, n_head=4, n_embd=128, block_size=64), DataInfo.text(65))
    losses = model.loss({"x": ids})                  # ids (B, T+1): predict ids[:, 1:]
    stories = model.sample(4, prompt="Once upon a time", temperature=0.8)

Pre-norm blocks (LayerNorm before attention and MLP, as GPT-2), causal self-attention
through ``scaled_dot_product_attention`` (fused kernels on CPU and GPU), learned position
embeddings, the output layer tied to the token embedding (Press and Wolf 2017), dropout on
embeddings, attention and residual branches. GPT-2's initialisation: N(0, 0.02), with the
residual projections scaled by 1/sqrt(2 n_layer).

Generation keeps a key/value cache per layer (``KVCache``): a new token attends to the
cached keys and values of the ones before it instead of recomputing them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import ConfigError
from genlab.models.ar.lm import TINY_TRAIN, LanguageModel
from genlab.models.layers import attention
from genlab.registry import register


@dataclass
class GPTConfig:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    block_size: int = 256  # the longest context (positions)
    dropout: float = 0.0
    bias: bool = False  # biases in linear layers and LayerNorms (GPT-2: True)
    # the MLP's GELU: exact (erf), or GPT-2's tanh approximation ("gelu_new" in transformers),
    # which a model imported from GPT-2 keeps so that its outputs stay the same
    activation: Literal["gelu", "gelu_tanh"] = "gelu"

    def __post_init__(self):
        # (n_embd divisible by n_head is checked when the model is built: overrides are
        # applied one at a time, and n_head=6 n_embd=192 passes through n_head=6 n_embd=256)
        if min(self.n_layer, self.n_head, self.block_size) < 1:
            raise ValueError("model.n_layer, n_head and block_size must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ValueError("model.dropout must be in [0, 1)")


class KVCache:
    """Keys and values of the tokens seen so far, preallocated for ``block_size`` positions:
    per layer one (2, B, n_head, block_size, head_dim) tensor, keys then values; ``length``
    positions of it are filled."""

    def __init__(self, cfg: GPTConfig, batch: int, device, dtype):
        shape = (2, batch, cfg.n_head, cfg.block_size, cfg.n_embd // cfg.n_head)
        self.kv = [torch.empty(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.length = 0

    def update(self, layer: int, kv: torch.Tensor) -> torch.Tensor:
        """Store kv (2, B, nh, t, hs) after the cached ones; return all of them so far."""
        t = kv.size(3)
        self.kv[layer].narrow(3, self.length, t).copy_(kv)
        return self.kv[layer].narrow(3, 0, self.length + t)


def _drop(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    # a function, not an nn.Dropout: generation calls this per token, and it costs nothing
    return F.dropout(x, p, True) if training and p > 0 else x


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0):
        B, T, C = x.shape
        # one view and one permute for q, k and v together: generation runs this per token,
        # and on a CPU each op's dispatch costs more than a small layer's arithmetic
        qkv = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        q, kv = qkv[0], qkv[1:]  # (B, nh, T, hs) and (2, B, nh, T, hs)
        causal = True
        if cache is not None:
            causal = cache.length == 0  # a prefill is causal; one new token sees all before it
            if not causal and T != 1:
                raise ValueError("after the prefill, the cache takes one token at a time")
            kv = cache.update(layer, kv)
        k, v = kv.unbind(0)
        # float32 while training under CPU bf16, where the bf16 backward kernel is slow
        y = attention(q, k, v, is_causal=causal, p=self.dropout if self.training else 0.0)
        y = self.proj(y.transpose(1, 2).reshape(B, T, C))
        return _drop(y, self.dropout, self.training)


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.dropout = cfg.dropout
        self.approximate = "tanh" if cfg.activation == "gelu_tanh" else "none"
        self.ln1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.fc_out = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)

    def forward(self, x, cache=None, layer=0):
        x = x + self.attn(self.ln1(x), cache, layer)
        # the MLP; the exact (erf) GELU, as nanoGPT: PyTorch's CPU kernel for it is faster
        # than the tanh form's on a training batch, and the two differ by less than 1e-3
        h = self.fc_out(F.gelu(self.fc(self.ln2(x)), approximate=self.approximate))
        return x + _drop(h, self.dropout, self.training)


# what the Shakespeare presets share: layers, heads and width (cpu and default differ in
# context and dropout), and AdamW as nanoGPT sets it (decay 0.1, beta2 0.99), without an
# EMA of the weights
_SMALL = {
    "data.name": "tinyshakespeare",
    "model.n_layer": 4,
    "model.n_head": 4,
    "model.n_embd": 256,
}
_ADAMW = {
    "train.warmup_steps": 100,
    "train.weight_decay": 0.1,
    "train.betas": (0.9, 0.99),
    "train.ema_decay": 0.0,
}


@register
class GPT(LanguageModel):
    """GPT: a decoder-only Transformer language model (pre-norm, causal attention, tied weights)."""

    family = "gpt"
    config_class = GPTConfig
    # bf16 on an AMX CPU: more steps/s at equal loss (cpu preset, benchmarks/cpu_bf16.py)
    cpu_bf16 = True
    presets = {
        # a small GPT with nanoGPT's context of 256 (Tiny Shakespeare unless --data says
        # otherwise): 1,000 steps of 12 x 256 tokens
        "default": {
            **_SMALL,
            "model.block_size": 256,
            "model.dropout": 0.1,
            "train.steps": 1000,
            "train.batch_size": 12,
            "train.lr": 1e-3,
            **_ADAMW,
            "train.eval_every": 250,
            "train.sample_every": 500,
        },
        # nanoGPT's CPU budget (2,000 steps of 12 x 64 tokens, 1.54M tokens) on Tiny
        # Shakespeare at character level: the figure it reaches is in the README
        "cpu": {
            **_SMALL,
            "model.block_size": 64,
            "train.steps": 2000,
            "train.batch_size": 12,
            "train.lr": 2e-3,
            **_ADAMW,
            "train.eval_every": 500,
            "train.sample_every": 1000,
        },
        # nanoGPT's CPU model (4 layers, width 128, context 64; 0.8M parameters) trained
        # for time, not tokens: 600 steps of 32 x 64 at lr 5e-3 reach the validation loss
        # of nanoGPT's 2,000-step CPU recipe sooner (the README has the figures; with
        # train.precision=auto, bf16 on a CPU with AMX units)
        "fast": {
            **_SMALL,
            "model.n_embd": 128,
            "model.block_size": 64,
            "train.steps": 600,
            "train.batch_size": 32,
            "train.lr": 5e-3,
            **_ADAMW,
            "train.warmup_steps": 50,
            "train.eval_every": 200,  # each pass over the validation split takes time
            "train.sample_every": 600,
            "train.checkpoint_every": 600,
        },
        # nanoGPT's Shakespeare recipe (10.65M parameters), for a GPU: 64 x 256 tokens a step
        "gpu": {
            "data.name": "tinyshakespeare",
            "model.n_layer": 6,
            "model.n_head": 6,
            "model.n_embd": 384,
            "model.block_size": 256,
            "model.dropout": 0.2,
            "train.steps": 5000,
            "train.batch_size": 64,
            "train.lr": 1e-3,
            **_ADAMW,
            "train.eval_every": 250,
            "train.sample_every": 1000,
            "train.precision": "bf16",
            "train.compile": True,
        },
        # stories: byte-level BPE on the TinyStories sample
        "stories": {
            "data.name": "tinystories-2mb",
            "data.tokenizer": "bpe",
            "data.vocab_size": 4096,
            "model.n_layer": 4,
            "model.n_head": 6,
            "model.n_embd": 192,
            "model.block_size": 128,
            "model.dropout": 0.1,
            "train.batch_size": 16,
            "train.lr": 3e-3,
            "train.warmup_steps": 50,
            "train.weight_decay": 0.1,
            "train.betas": (0.9, 0.99),
            "train.ema_decay": 0.0,
            "train.minutes": 14,
            "train.steps": 100000,
            "train.eval_every": 250,
            "train.sample_every": 1000,
        },
        "tiny": {
            **TINY_TRAIN,
            "model.n_layer": 1,
            "model.n_head": 2,
            "model.n_embd": 16,
            "model.block_size": 16,
        },
    }

    def __init__(self, config: GPTConfig, info):
        super().__init__(config, info)
        c = config
        if c.n_embd % c.n_head:
            raise ConfigError(
                f"model.n_embd={c.n_embd} must divide evenly by model.n_head={c.n_head}"
            )
        self.wte = nn.Embedding(self.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "fc_out.weight")):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    @property
    def block_size(self) -> int:
        return self.config.block_size

    def hidden(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """The last block's output (B, T, C) for ids (B, T); with a cache, positions continue
        after the cached ones."""
        start = cache.length if cache is not None else 0
        T = idx.size(1)
        if start + T > self.config.block_size:
            raise ValueError(f"context of {start + T} tokens > block_size {self.block_size}")
        pos = self.wpe.weight[start : start + T]  # (T, C): a slice, not a lookup
        x = _drop(self.wte(idx) + pos, self.config.dropout, self.training)  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        if cache is not None:
            cache.length += T
        return self.ln_f(x)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return F.linear(self.hidden(idx), self.wte.weight)  # tied read-out: (B, T, V)

    def step(self, idx: torch.Tensor, state: KVCache | None):
        if state is None:
            p = next(self.parameters())
            state = KVCache(self.config, idx.size(0), idx.device, p.dtype)
        h = self.hidden(idx, state)[:, -1]  # only the last position is read out
        return F.linear(h, self.wte.weight), state
