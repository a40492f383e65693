"""An LSTM or GRU language model (the char-rnn of Karpathy 2015; Merity et al. 2018).

    model = RNN(RNNConfig(cell="lstm", hidden=256, layers=2), DataInfo.text(65))
    losses = model.loss({"x": ids})                  # ids (B, T+1): predict ids[:, 1:]
    stories = model.sample(4, prompt="Once upon a time", temperature=0.8)

Token embedding -> a stack of LSTM (or GRU) layers -> a linear read-out tied to the
embedding (Inan et al. 2017; Press and Wolf 2017), with dropout between layers and on the
output. Training windows start from a zero state (truncated back-propagation over
``block_size`` tokens, each window independent); generation carries the state from token
to token, so each new token costs one step of the recurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genlab.models.ar.lm import TINY_TRAIN, LanguageModel
from genlab.registry import register


@dataclass
class RNNConfig:
    cell: Literal["lstm", "gru"] = "lstm"
    hidden: int = 256  # state size (and embedding size: the read-out is tied)
    layers: int = 2
    block_size: int = 128  # training window (truncated BPTT); generation has no limit
    dropout: float = 0.0

    def __post_init__(self):
        if self.hidden < 1 or self.layers < 1 or self.block_size < 1:
            raise ValueError("model.hidden, layers and block_size must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ValueError("model.dropout must be in [0, 1)")


@register
class RNN(LanguageModel):
    """RNN: an LSTM or GRU language model (model.cell=lstm|gru) with tied embeddings."""

    family = "rnn"
    config_class = RNNConfig
    # bf16 on an AMX CPU: more steps/s at equal loss (demo's LSTM, benchmarks/cpu_bf16.py)
    cpu_bf16 = True
    presets = {
        "default": {
            "data.name": "tinyshakespeare",
            "model.cell": "lstm",
            "model.hidden": 256,
            "model.layers": 2,
            "model.block_size": 64,
            "train.steps": 2000,
            "train.batch_size": 12,
            "train.lr": 3e-3,
            "train.warmup_steps": 50,
            "train.ema_decay": 0.0,
            "train.eval_every": 250,
            "train.sample_every": 1000,
        },
        "tiny": {
            **TINY_TRAIN,
            "model.hidden": 16,
            "model.layers": 1,
            "model.block_size": 16,
        },
    }

    def __init__(self, config: RNNConfig, info):
        super().__init__(config, info)
        c = config
        self.embed = nn.Embedding(self.vocab_size, c.hidden)
        rnn = nn.LSTM if c.cell == "lstm" else nn.GRU
        self.rnn = rnn(
            c.hidden, c.hidden, c.layers, batch_first=True, dropout=c.dropout if c.layers > 1 else 0
        )
        self.drop = nn.Dropout(c.dropout)
        self.bias = nn.Parameter(torch.zeros(self.vocab_size))  # read-out bias; weight tied
        nn.init.normal_(self.embed.weight, 0.0, 0.05)

    @property
    def block_size(self) -> None:
        return None  # the state carries any length of context

    def forward_logits(self, idx: torch.Tensor, state=None):
        """Logits (B, T, V) for ids (B, T) and the state after them."""
        x = self.drop(self.embed(idx))
        if (
            self.config.cell == "gru"
            and x.device.type == "cpu"
            and torch.is_autocast_enabled("cpu")
        ):
            # PyTorch's CPU GRU has no fused bf16 kernel (the LSTM has oneDNN's): under bf16
            # autocast it runs a (B, H) x (H, 3H) product and casts per step and layer, which
            # at the default preset's batch of 12 (2 x 256) trained slower than float32; at a
            # batch of 32 bf16 was the faster instead. Float32 is never the slower: the GRU
            # runs in float32
            with torch.autocast("cpu", enabled=False):
                h, state = self.rnn(x.float(), state)
        else:
            h, state = self.rnn(x, state)
        return F.linear(self.drop(h), self.embed.weight, self.bias), state

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return self.forward_logits(idx)[0]

    def step(self, idx: torch.Tensor, state):
        logits, state = self.forward_logits(idx, state)
        return logits[:, -1], state
