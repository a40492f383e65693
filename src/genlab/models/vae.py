"""Variational autoencoder (Kingma & Welling 2014), beta-VAE and conditional VAE.

Convolutional encoder q(z|x) and decoder p(x|z) that adapt to the image size
(8x8 to 64x64) and channels; a standard Gaussian prior; three decoder
likelihoods; importance-weighted NLL (Burda et al. 2016) for evaluation.

    vae = VAE(VAEConfig(latent_dim=16), DataInfo.images((1, 28, 28), list("0123456789")))
    out = vae.loss({"x": x, "y": y, "step": 100})   # x in [-1, 1], (B, 1, 28, 28)
    imgs = vae.sample(64, temperature=0.8, label=3)
    nll = vae.iwae_nll(x_test, k=1000)              # (B,) nats per image
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from genlab.config import check_range
from genlab.errors import ConfigError
from genlab.models.base import LABEL, TINY_IMAGE_TRAIN, Control, DataInfo, LatentImageModel
from genlab.models.layers import (
    Downsample,
    ResBlock,
    Upsample,
    group_norm,
    level_widths,
    resolution_levels,
)
from genlab.registry import register

Likelihood = Literal["auto", "bernoulli", "gaussian", "logistic"]


@dataclass
class VAEConfig:
    latent_dim: int = 16
    width: int = 32  # channels at full resolution; doubled at each halving
    max_width: int = 256
    blocks: int = 1  # residual blocks per resolution level
    # auto: bernoulli (dynamically binarized) for gray images, logistic for colour
    likelihood: Likelihood = "auto"
    beta: float = 1.0  # weight of the KL term (beta-VAE when != 1)
    kl_warmup_steps: int = 0  # ramp beta linearly from 0 over this many steps
    conditional: bool = False  # condition encoder and decoder on the class label
    dropout: float = 0.0

    def __post_init__(self):
        if self.latent_dim < 1 or self.width < 1 or self.blocks < 0:
            raise ValueError("latent_dim and width must be >= 1, blocks >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        check_range("model", self, max_width=(1, None), beta=(0, None), kl_warmup_steps=(0, None))


@register
class VAE(LatentImageModel):
    """Convolutional VAE: Gaussian latent, Bernoulli/Gaussian/logistic decoder, optional labels."""

    family = "vae"
    config_class = VAEConfig
    # bf16 on an AMX CPU: more steps/s at equal loss (digits, benchmarks/cpu_bf16.py)
    cpu_bf16 = True
    sweep = ("temperature", (0.5, 0.75, 1.0, 1.25, 1.5))
    controls = {
        "temperature": Control(float, 1.0, "std of the prior draw z ~ N(0, T^2 I)", 0.0, 10.0),
        "label": LABEL,
    }
    presets = {
        # 8x8 digits, sized for two CPU cores (88k parameters)
        "default": {
            "train.steps": 2000,
            "train.batch_size": 128,
            "train.lr": 2e-3,
            "model.blocks": 0,
            "model.kl_warmup_steps": 300,
            "train.sample_every": 500,
            "train.eval_every": 500,
            "train.checkpoint_every": 1000,
        },
        # a pipeline check in seconds (tests use it; so can you, on new data)
        "tiny": {
            "train.steps": 20,
            "train.batch_size": 32,
            "model.width": 8,
            "model.latent_dim": 4,
            "train.warmup_steps": 2,
            **TINY_IMAGE_TRAIN,
        },
        # MNIST-sized images: a wider, deeper network and a longer run
        "mnist": {
            "train.steps": 20000,
            "train.batch_size": 128,
            "train.lr": 1e-3,
            "model.width": 64,
            "model.blocks": 2,
            "model.latent_dim": 32,
            "model.kl_warmup_steps": 2000,
            "train.eval_every": 2000,
            "train.sample_every": 2000,
            "train.checkpoint_every": 2000,
        },
        # spoken digits (FSDD) as 64x64 spectrograms: 20 minutes on two CPU cores. A narrow
        # network (width 16 at full resolution) for steps; the logistic likelihood, since a
        # spectrogram is not a binary image (auto would binarise it)
        "fsdd": {
            "data.name": "fsdd",
            "model.conditional": True,
            "model.likelihood": "logistic",
            "model.width": 16,
            "model.blocks": 0,
            "model.latent_dim": 32,
            "model.kl_warmup_steps": 500,
            "train.batch_size": 32,
            "train.lr": 1e-3,
            "train.steps": 100000,
            "train.minutes": 20,
            "train.eval_every": 500,
            "train.sample_every": 1000,
            "train.checkpoint_every": 1000,
        },
    }

    def __init__(self, config: VAEConfig, info: DataInfo):
        super().__init__(config, info, name="the VAE", any_channels=True)
        c, h, _ = info.shape
        self.likelihood = config.likelihood
        if self.likelihood == "auto":
            self.likelihood = "bernoulli" if c == 1 else "logistic"
        sizes = resolution_levels(h)
        widths = level_widths(config.width, config.max_width, len(sizes))
        self.bottom = (widths[-1], sizes[-1], sizes[-1])
        n_cls = info.num_classes if config.conditional else 0
        self.label_emb = nn.Embedding(n_cls, 32) if n_cls else None
        emb = 32 if n_cls else 0
        d = config.dropout

        # encoder: (B, C, H, W) -> (B, 2 * latent)
        enc: list[nn.Module] = [nn.Conv2d(c, widths[0], 3, padding=1)]
        for i in range(len(sizes)):
            enc += [ResBlock(widths[i], dropout=d) for _ in range(config.blocks)]
            if i + 1 < len(sizes):
                enc.append(Downsample(widths[i], widths[i + 1]))
        enc += [group_norm(widths[-1]), nn.SiLU(), nn.Flatten()]
        self.encoder = nn.Sequential(*enc)
        flat = widths[-1] * sizes[-1] ** 2
        self.to_posterior = nn.Linear(flat + emb, 2 * config.latent_dim)

        # decoder: (B, latent) -> (B, out_channels, H, W)
        self.from_latent = nn.Linear(config.latent_dim + emb, flat)
        dec: list[nn.Module] = []
        for i in reversed(range(len(sizes))):
            dec += [ResBlock(widths[i], dropout=d) for _ in range(config.blocks)]
            if i > 0:
                dec.append(Upsample(widths[i], widths[i - 1]))
        out_ch = c if self.likelihood == "bernoulli" else 2 * c  # logits, or mean + log-scale
        dec += [
            group_norm(widths[0]),
            nn.SiLU(),
            nn.Conv2d(widths[0], out_ch, 3, padding=1),
        ]
        self.decoder = nn.Sequential(*dec)

    # -- the two networks -------------------------------------------------
    def _cond(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.label_emb is None:
            return h
        if y is None:
            raise ConfigError("this VAE is conditional: give labels (--label)")
        return torch.cat([h, self.label_emb(y)], dim=1)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """q(z|x) = N(mu, diag(exp(logvar))); returns (mu, logvar), each (B, latent)."""
        mu, logvar = self.to_posterior(self._cond(self.encoder(x), y)).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder output: Bernoulli logits (B, C, H, W) or mean and log-scale (B, 2C, H, W)."""
        h = self.from_latent(self._cond(z, y)).view(-1, *self.bottom)
        return self.decoder(h)

    def log_px(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """log p(x | z) summed over pixels: (B,) nats. x in [-1, 1]."""
        if self.likelihood == "bernoulli":
            target = (x + 1) / 2  # binary 0/1 images
            return (
                -F.binary_cross_entropy_with_logits(out, target, reduction="none").flatten(1).sum(1)
            )
        mean, log_scale = out.chunk(2, dim=1)
        return (
            discretized_log_prob(x, mean, log_scale.clamp(min=-7.0), self.likelihood)
            .flatten(1)
            .sum(1)
        )

    def mean_image(self, out: torch.Tensor) -> torch.Tensor:
        """The decoder's expected image in [-1, 1]."""
        if self.likelihood == "bernoulli":
            return torch.sigmoid(out) * 2 - 1
        return out.chunk(2, dim=1)[0].clamp(-1, 1)

    def _prepare(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Bernoulli likelihood: draw binary pixels with p = intensity (dynamic binarization)."""
        if self.likelihood != "bernoulli":
            return x
        return torch.bernoulli((x + 1) / 2, generator=generator) * 2 - 1

    # -- protocol ---------------------------------------------------------
    def loss(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        x = self._prepare(batch["x"])
        y = self._labels_of(batch)
        mu, logvar = self.encode(x, y)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # reparameterization
        rec = -self.log_px(x, self.decode(z, y)).mean()  # nats per image
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
        warm = self.config.kl_warmup_steps
        beta = self.config.beta * (min(1.0, (batch.get("step", 0) + 1) / warm) if warm else 1.0)
        return {
            "loss": rec + beta * kl,
            "rec": rec.detach(),
            "kl": kl.detach(),
            "nelbo": (rec + kl).detach(),
        }

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        label: int | list[int] | None = None,
    ) -> torch.Tensor:
        z = self.latents(n, generator=generator, temperature=temperature)
        return self.from_latents(z, label)

    def latents(
        self, n: int, *, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        """The prior draws ``sample`` decodes (N, latent_dim): the studio interpolates them."""
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=self.device)
        return z * temperature

    def _images(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.mean_image(self.decode(z, y))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decode the posterior mean of each image: (B, C, H, W) in [-1, 1]."""
        mu, _ = self.encode(self._prepare(x), y)
        return self.mean_image(self.decode(mu, y))

    # -- likelihood -------------------------------------------------------
    @torch.no_grad()
    def iwae_nll(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        k: int = 1000,
        generator: torch.Generator | None = None,
        chunk: int = 250,
    ) -> torch.Tensor:
        """-log p(x) by the importance-weighted bound with ``k`` samples: (B,) nats.

        log p(x) >= logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k,
        z_i ~ q(z|x); the bound tightens as k grows (k = 1 is the ELBO).
        ``x`` must already be prepared (binarized for a Bernoulli decoder).
        """
        y = y if self.label_emb is not None else None
        mu, logvar = self.encode(x, y)
        std = (0.5 * logvar).exp()
        B = x.shape[0]
        log_w = []
        for start in range(0, k, chunk):
            kk = min(chunk, k - start)
            eps = torch.randn(kk, *mu.shape, generator=generator, device=x.device)
            z = mu + std * eps  # (kk, B, D)
            log_q = (-0.5 * eps.pow(2) - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
            log_pz = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(-1)
            yk = y.repeat(kk) if y is not None else None
            out = self.decode(z.flatten(0, 1), yk)
            log_px = self.log_px(x.repeat(kk, *[1] * (x.dim() - 1)), out).view(kk, B)
            log_w.append(log_px + log_pz - log_q)
        return -(torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k))

    def evaluate(self, batches, *, k: int = 1000, seed: int = 0, progress=None) -> dict[str, Any]:
        """Test-set IWAE NLL in nats and bits/dim, with its standard error.

        ``batches`` yields dicts with "x" (and "y"); a Bernoulli model's test
        images are binarized once with a generator seeded by ``seed``.
        """
        g = torch.Generator(device=self.device).manual_seed(seed)
        nll = []
        for batch in batches:
            x = self._prepare(batch["x"].to(self.device), generator=g)
            y = batch.get("y")
            nll.append(
                self.iwae_nll(x, y.to(self.device) if y is not None else None, k=k, generator=g)
                .double()
                .cpu()
            )
            if progress is not None:
                progress(len(x))
        nll = torch.cat(nll)
        dims = math.prod(self.info.shape)
        sem = (nll.std() / math.sqrt(len(nll))).item() if len(nll) > 1 else float("nan")
        return {
            "iwae_nll": nll.mean().item(),
            "iwae_nll_sem": sem,
            "bits_per_dim": nll.mean().item() / (dims * math.log(2)),
            "k": k,
            "n": len(nll),
            "likelihood": self.likelihood,
            "binarized": self.likelihood == "bernoulli",
            "unit": "nats per image",
        }


def discretized_log_prob(
    x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor, kind: str
) -> torch.Tensor:
    """log P(x) of 8-bit pixels under a logistic or Gaussian discretized to 256 bins.

    ``x`` lies on the grid u / 127.5 - 1 (u = 0..255); each bin is 2/255 wide
    and the end bins take the tails (as in PixelCNN++, Salimans et al. 2017).
    """
    half = 1.0 / 255.0
    inv_s = torch.exp(-log_scale)
    centered = x - mean
    plus, minus, mid = (centered + half) * inv_s, (centered - half) * inv_s, centered * inv_s
    if kind == "logistic":
        log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus)
        log_sf_minus = -F.softplus(minus)  # log (1 - sigmoid(minus))
        delta = torch.sigmoid(plus) - torch.sigmoid(minus)
        log_pdf_mid = mid - log_scale - 2.0 * F.softplus(mid)
    elif kind == "gaussian":
        log_cdf_plus = torch.special.log_ndtr(plus)
        log_sf_minus = torch.special.log_ndtr(-minus)
        delta = torch.special.ndtr(plus) - torch.special.ndtr(minus)
        log_pdf_mid = -0.5 * mid.pow(2) - log_scale - 0.5 * math.log(2 * math.pi)
    else:
        raise ValueError(f"unknown likelihood {kind!r}")
    # where the bin mass underflows, use the density at the bin centre times its width
    inner = torch.where(delta > 1e-5, delta.clamp(min=1e-12).log(), log_pdf_mid - math.log(127.5))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_sf_minus, inner))
