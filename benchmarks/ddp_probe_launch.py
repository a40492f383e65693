"""genlab's CLI plus the ddp_probe families, for tests/test_ddp.py and ddp_equivalence.py:

    torchrun --nproc_per_node=2 benchmarks/ddp_probe_launch.py train ddp_probe --out R ...

A deterministic conv autoencoder (no sampling noise, dropout or batch statistics), so that
what two ranks compute can be compared with what one process computes, weight for weight.
"""

import sys
from dataclasses import dataclass

import torch
from torch import nn

import genlab.cli
from genlab.models.base import GenerativeModel
from genlab.registry import register


@dataclass
class ProbeConfig:
    hidden: int = 16


@register
class Probe(GenerativeModel):
    """A deterministic conv autoencoder: loss = mean over the batch of the squared error."""

    family = "ddp_probe"
    config_class = ProbeConfig

    def __init__(self, config, info):
        super().__init__(config, info)
        c, h, w = info.shape
        self.shape = (c, h, w)
        self.encoder = nn.Sequential(
            nn.Conv2d(c, 4, 3, padding=1), nn.Tanh(), nn.Flatten(),
            nn.Linear(4 * h * w, config.hidden), nn.Tanh(),
        )
        self.decoder = nn.Linear(config.hidden, c * h * w)

    def _decode(self, z):
        return self.decoder(z).view(-1, *self.shape)

    def loss(self, batch):
        x = batch["x"]
        err = (self._decode(self.encoder(x)) - x).pow(2).flatten(1).sum(1)
        return {"loss": err.mean()}

    @torch.no_grad()
    def sample(self, n, *, generator=None):
        z = torch.randn(n, self.config.hidden, generator=generator, device=self.device)
        return torch.tanh(self._decode(z))


@register
class ProbeOwnStep(Probe):
    """The same model through the path a GAN takes: it owns its step (stepper.step)."""

    family = "ddp_probe_step"
    owns_step = True

    def train_step(self, batch, stepper):
        out = self.loss(batch)
        stepper.step("main", out["loss"])
        return {"loss": out["loss"].detach()}


if __name__ == "__main__":
    sys.exit(genlab.cli.main(sys.argv[1:]))
