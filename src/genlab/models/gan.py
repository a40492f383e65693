"""Generative adversarial network (Goodfellow et al. 2014) with the practice that makes it train.

A DCGAN-style convolutional generator and discriminator (Radford et al. 2016) that
adapt to 8x8..64x64 images with 1 or 3 channels, or the classic MLP pair; three
losses (non-saturating, hinge, Wasserstein with gradient penalty and n_critic);
spectral normalization (Miyato et al. 2018) and the R1 penalty (Mescheder et al.
2018) as options; a projection discriminator for class labels (Miyato and Koyama
2018); two time-scale learning rates (Heusel et al. 2017); DiffAugment for small
data sets (Zhao et al. 2020); an EMA copy of the generator (the trainer's EMA) for
sampling; the truncation trick at sampling (Brock et al. 2019).

    gan = GAN(GANConfig(conditional=True), DataInfo.images((1, 8, 8), list("0123456789")))
    out = gan.train_step({"x": x, "y": y, "step": 0}, stepper)   # D update(s), then G
    imgs = gan.sample(64, truncation=1.0, label=3)               # (64, 1, 8, 8) in [-1, 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from genlab.config import check_range
from genlab.models.base import LABEL, TINY_IMAGE_TRAIN, Control, DataInfo, LatentImageModel, fusable
from genlab.models.layers import group_norm, level_widths, resolution_levels
from genlab.registry import register

Loss = Literal["ns", "hinge", "wgan-gp"]


@dataclass
class GANConfig:
    arch: Literal["dcgan", "mlp"] = "dcgan"
    latent_dim: int = 64
    width: int = 64  # channels at full resolution, doubled at each halving (G and D)
    max_width: int = 256
    loss: Loss = "ns"  # non-saturating | hinge | wgan-gp
    n_critic: int = 1  # discriminator updates per generator update (wgan-gp: 5)
    gp_weight: float = 10.0  # wgan-gp: weight of the gradient penalty
    r1_gamma: float = 0.0  # R1 penalty on real images (0: off)
    spectral_norm: bool = False  # on every discriminator layer
    conditional: bool = False  # projection discriminator and label-conditioned generator
    d_lr_ratio: float = 2.0  # two time-scale update rule: D's lr = ratio x train.lr
    beta1: float = 0.0  # Adam betas chosen for GANs (both networks)
    beta2: float = 0.99
    diffaug: str = "translation,cutout"  # DiffAugment policy ("" turns it off)
    g_norm: Literal["batch", "group", "none"] = "group"  # the generator's normalization

    def __post_init__(self):
        if self.latent_dim < 1 or self.width < 1 or self.n_critic < 1:
            raise ValueError("latent_dim, width and n_critic must be >= 1")
        if self.r1_gamma < 0 or self.gp_weight < 0 or self.d_lr_ratio <= 0:
            raise ValueError("r1_gamma and gp_weight must be >= 0, d_lr_ratio > 0")
        check_range("model", self, max_width=(1, None), d_lr_ratio=(None, 1000))
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("model.beta1 and model.beta2 must be in [0, 1)")
        unknown = {p for p in self.diffaug.split(",") if p} - set(AUGMENTS)
        if unknown:
            raise ValueError(
                f"unknown diffaug policy {sorted(unknown)[0]!r}; use {', '.join(AUGMENTS)}"
            )


# -- DiffAugment: the same differentiable augmentation for real and generated images ----


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio * size pixels (at least 1), zero padding."""
    n, _, h, w = x.shape
    s = max(1, round(h * ratio))
    dy, dx = torch.randint(-s, s + 1, (2, n, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy).clamp(-1, h)  # (N, H, 1)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + dx).clamp(-1, w)  # (N, 1, W)
    padded = F.pad(x, (1, 1, 1, 1))  # index -1 and h land on the zero border
    idx = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[idx, rows + 1, cols + 1].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ratio * size per image (clipped at the border), at a random place."""
    n, _, h, w = x.shape
    ch, cw = max(1, round(h * ratio)), max(1, round(w * ratio))
    cy = torch.randint(0, h + 1 - ch % 2, (n, 1, 1), device=x.device) - ch // 2  # top row
    cx = torch.randint(0, w + 1 - cw % 2, (n, 1, 1), device=x.device) - cw // 2  # left column
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (ys >= cy) & (ys < cy + ch) & (xs >= cx) & (xs < cx + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def _color(x: torch.Tensor) -> torch.Tensor:
    """Random brightness, saturation (colour images) and contrast; images in [-1, 1]."""
    n = x.shape[0]
    x = x + (torch.rand(n, 1, 1, 1, device=x.device) - 0.5)
    if x.shape[1] > 1:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device) + 0.5) + mean


AUGMENTS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    for name in (p for p in policy.split(",") if p):
        x = AUGMENTS[name](x)
    return x


# -- the two networks -------------------------------------------------------------------


def truncated_normal(
    n: int, dim: int, threshold: float | None, generator=None, device=None
) -> torch.Tensor:
    """z ~ N(0, I), each entry redrawn until |z_i| <= threshold (None: no truncation)."""
    z = torch.randn(n, dim, generator=generator, device=device)
    if threshold is None:
        return z
    for _ in range(1000):
        bad = z.abs() > threshold
        if not bad.any():
            return z
        z[bad] = torch.randn(int(bad.sum()), generator=generator, device=device)
    return z.clamp(-threshold, threshold)  # not reached for thresholds >= 0.01


class Generator(nn.Module):
    """z (and a label embedding) -> image in [-1, 1]. DCGAN: a linear map to the smallest
    resolution, then (nearest x2, conv3x3, GroupNorm, ReLU) per level, conv3x3, tanh."""

    def __init__(self, cfg: GANConfig, shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        c, h, _ = shape
        self.shape = shape
        self.label_emb = nn.Embedding(num_classes, cfg.latent_dim) if num_classes else None
        z_in = cfg.latent_dim * (2 if num_classes else 1)
        if cfg.arch == "mlp":
            self.net = nn.Sequential(
                nn.Linear(z_in, 256),
                nn.LeakyReLU(0.2),
                nn.Linear(256, 512),
                nn.LeakyReLU(0.2),
                nn.Linear(512, c * h * h),
            )
            return
        sizes = resolution_levels(h)
        widths = level_widths(cfg.width, cfg.max_width, len(sizes))
        self.bottom = (widths[-1], sizes[-1], sizes[-1])
        norm = {"batch": nn.BatchNorm2d, "group": group_norm, "none": lambda c: nn.Identity()}
        norm = norm[cfg.g_norm]
        layers: list[nn.Module] = [
            nn.Linear(z_in, widths[-1] * sizes[-1] ** 2),
            nn.Unflatten(1, self.bottom),
            norm(widths[-1]),
            nn.ReLU(),
        ]
        for i in reversed(range(len(sizes) - 1)):
            layers += [
                nn.Upsample(scale_factor=2.0, mode="nearest"),
                nn.Conv2d(widths[i + 1], widths[i], 3, padding=1),
                norm(widths[i]),
                nn.ReLU(),
            ]
        layers.append(nn.Conv2d(widths[0], c, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_emb is not None:
            z = torch.cat([z, self.label_emb(y)], dim=1)
        return torch.tanh(self.net(z).view(-1, *self.shape))


class Discriminator(nn.Module):
    """image (and label) -> one logit. DCGAN: conv3x3 then (LeakyReLU, stride-2 conv) per
    level, no normalization (spectral norm as an option); a projection term
    <embed(y), features> for labels (Miyato and Koyama 2018)."""

    def __init__(self, cfg: GANConfig, shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        c, h, _ = shape
        sn = spectral_norm if cfg.spectral_norm else (lambda m: m)
        if cfg.arch == "mlp":
            feat = 256
            self.body = nn.Sequential(
                nn.Flatten(),
                sn(nn.Linear(c * h * h, 512)),
                nn.LeakyReLU(0.2),
                sn(nn.Linear(512, feat)),
                nn.LeakyReLU(0.2),
            )
        else:
            sizes = resolution_levels(h)
            widths = level_widths(cfg.width, cfg.max_width, len(sizes))
            layers: list[nn.Module] = [sn(nn.Conv2d(c, widths[0], 3, padding=1))]
            for i in range(len(sizes) - 1):
                layers += [
                    nn.LeakyReLU(0.2),
                    sn(nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1)),
                ]
            feat = widths[-1]
            layers += [nn.LeakyReLU(0.2), nn.Flatten(), sn(nn.Linear(feat * sizes[-1] ** 2, feat))]
            layers.append(nn.LeakyReLU(0.2))
            self.body = nn.Sequential(*layers)
        self.head = sn(nn.Linear(feat, 1))
        self.embed = sn(nn.Embedding(num_classes, feat)) if num_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.body(x)  # (B, feat)
        out = self.head(h).squeeze(1)  # (B,)
        if self.embed is not None:
            out = out + (self.embed(y) * h).sum(1)
        return out


# -- the family -------------------------------------------------------------------------


@register
class GAN(LatentImageModel):
    """DCGAN-style GAN: non-saturating, hinge or WGAN-GP loss; conditional; truncation."""

    family = "gan"
    config_class = GANConfig
    # bf16 on an AMX CPU: more steps/s at equal FID (digits, benchmarks/cpu_bf16.py)
    cpu_bf16 = True
    owns_step = True
    selects_best = False  # a GAN's validation loss says nothing about its samples
    progress_keys = ("d_real", "d_fake", "diversity")
    # mode-collapse alarm: generated images this much less varied than real ones
    COLLAPSE_BELOW = 0.5
    ALARM_AFTER = 200
    sweep = ("truncation", (0.25, 0.5, 1.0, 1.5, 2.0, None))
    controls = {
        "truncation": Control(
            float,
            None,
            "redraw latent entries beyond this many std (smaller: typical, less varied); "
            "default: no truncation",
            0.01,
            10.0,
        ),
        "label": LABEL,
    }
    presets = {
        # 8x8 digits, sized for two CPU cores
        "default": {
            "train.steps": 3000,
            "train.batch_size": 64,
            "train.lr": 2e-4,
            "train.warmup_steps": 0,
            "train.min_lr_ratio": 1.0,
            "train.grad_clip": 0.0,
            "train.ema_decay": 0.999,
            "train.sample_every": 500,
            "train.eval_every": 1000,
            "train.checkpoint_every": 1000,
        },
        "tiny": {
            "train.steps": 20,
            "train.batch_size": 32,
            "model.width": 8,
            "model.latent_dim": 8,
            "train.warmup_steps": 0,
            "train.grad_clip": 0.0,
            **TINY_IMAGE_TRAIN,
        },
        # MNIST-sized images
        "mnist": {
            "train.steps": 30000,
            "train.batch_size": 64,
            "train.lr": 2e-4,
            "train.warmup_steps": 0,
            "train.min_lr_ratio": 1.0,
            "train.grad_clip": 0.0,
            "model.width": 64,
            "model.latent_dim": 128,
            "train.eval_every": 5000,
            "train.sample_every": 2000,
            "train.checkpoint_every": 2000,
        },
    }

    # spoken digits (FSDD) as 64x64 spectrograms: 20 minutes on two CPU cores, the family
    # that did best there (README, Sound): the default recipe, a narrow network for steps
    presets["fsdd"] = {
        **presets["default"],
        "data.name": "fsdd",
        "model.conditional": True,
        "model.width": 16,
        "train.batch_size": 32,
        "train.steps": 100000,
        "train.minutes": 20,
    }

    def __init__(self, config: GANConfig, info: DataInfo):
        super().__init__(config, info, name="the GAN")
        k = info.num_classes if config.conditional else 0
        self.generator = Generator(config, info.shape, k)
        self.discriminator = Discriminator(config, info.shape, k)

    # -- losses ------------------------------------------------------------------------
    def _d(self, x: torch.Tensor, y) -> torch.Tensor:
        return self.discriminator(diff_augment(x, self.config.diffaug), y)

    def _d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        kind = self.config.loss
        if kind == "ns":
            return F.softplus(-real).mean() + F.softplus(fake).mean()
        if kind == "hinge":
            return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        return fake.mean() - real.mean()  # wgan-gp (penalty added by the caller)

    def _g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake).mean() if self.config.loss == "ns" else -fake.mean()

    def _gradient_penalty(self, x: torch.Tensor, fake: torch.Tensor, y) -> torch.Tensor:
        """WGAN-GP (Gulrajani et al. 2017): (||grad D(x_hat)|| - 1)^2 on random mixes."""
        eps = torch.rand(len(x), 1, 1, 1, device=x.device)
        mix = (eps * x + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self._d(mix, y).sum(), mix, create_graph=True)
        return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()

    def _r1(self, x: torch.Tensor, y) -> torch.Tensor:
        """R1 (Mescheder et al. 2018): gamma/2 * E ||grad D(x)||^2 on real images."""
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self._d(x, y).sum(), x, create_graph=True)
        return 0.5 * self.config.r1_gamma * grad.flatten(1).pow(2).sum(1).mean()

    def _z(self, n: int, device) -> torch.Tensor:
        return torch.randn(n, self.config.latent_dim, device=device)

    def loss(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Both losses on one batch, without updates (validation, tests): D's loss on real
        and generated images, plus G's loss; gradients reach both networks."""
        x, y = batch["x"], self._labels_of(batch)
        fake = self.generator(self._z(len(x), x.device), y)
        d_real, d_fake = self._d(x, y), self._d(fake, y)
        d_loss, g_loss = self._d_loss(d_real, d_fake), self._g_loss(d_fake)
        return {
            "loss": d_loss + g_loss,
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "d_real": d_real.detach().mean(),
            "d_fake": d_fake.detach().mean(),
        }

    def train_step(self, batch: dict[str, Any], stepper) -> dict[str, torch.Tensor]:
        """n_critic discriminator updates (fresh z each, the same real batch), then one
        generator update with the discriminator frozen. Returns monitors for the log:
        D(x) and D(G(z)) (logits), both losses, both gradient norms, and ``diversity``,
        the mean pairwise distance of the generated batch over that of the real batch
        (about 1 when healthy; the mode-collapse alarm fires below COLLAPSE_BELOW)."""
        cfg = self.config
        x, y = batch["x"], self._labels_of(batch)
        for _ in range(cfg.n_critic):
            with torch.no_grad():
                fake = self.generator(self._z(len(x), x.device), y)
            d_real, d_fake = self._d(x, y), self._d(fake, y)
            d_loss = self._d_loss(d_real, d_fake)
            total = d_loss
            if cfg.loss == "wgan-gp":
                total = total + cfg.gp_weight * self._gradient_penalty(x, fake, y)
            if cfg.r1_gamma > 0:
                total = total + self._r1(x, y)
            d_norm = stepper.step("d", total)

        self.discriminator.requires_grad_(False)
        try:
            fake = self.generator(self._z(len(x), x.device), y)
            g_loss = self._g_loss(self._d(fake, y))
            g_norm = stepper.step("g", g_loss)
        finally:
            self.discriminator.requires_grad_(True)
        return {
            "loss": d_loss.detach() + g_loss.detach(),
            "diversity": _spread(fake.detach()) / _spread(x).clamp_min(1e-8),
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "d_real": d_real.detach().mean(),
            "d_fake": d_fake.detach().mean(),
            "grad_norm_d": d_norm.detach(),
            "grad_norm_g": g_norm.detach(),
        }

    def optimizers(self, train: Any) -> dict[str, torch.optim.Optimizer]:
        """Adam for each network with GAN betas; D's lr is d_lr_ratio x G's (TTUR)."""
        betas = (self.config.beta1, self.config.beta2)
        g, d = list(self.generator.parameters()), list(self.discriminator.parameters())
        return {  # G first: the logged "lr" is the first optimizer's
            "g": torch.optim.Adam(g, lr=train.lr, betas=betas, fused=fusable(g)),
            "d": torch.optim.Adam(
                d, lr=train.lr * self.config.d_lr_ratio, betas=betas, fused=fusable(d)
            ),
        }

    def alarm(self, record: dict[str, float]) -> str | None:
        """Mode collapse: a batch of generated images far less varied than a real batch
        (not judged in the first ALARM_AFTER steps, while G leaves its initialisation)."""
        div = record.get("diversity")
        if record.get("step", 0) < self.ALARM_AFTER:
            return None
        if div is not None and div < self.COLLAPSE_BELOW:
            return (
                f"mode collapse suspected: generated images are {div:.2f}x as varied as real "
                "ones (mean pairwise distance); try model.diffaug, model.loss=hinge, "
                "model.spectral_norm=true or a lower train.lr"
            )
        return None

    # -- sampling ----------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        truncation: float | None = None,
        label: int | list[int] | None = None,
    ) -> torch.Tensor:
        return self.from_latents(self.latents(n, generator=generator, truncation=truncation), label)

    def latents(
        self, n: int, *, generator: torch.Generator | None = None, truncation: float | None = None
    ) -> torch.Tensor:
        """The latent draws ``sample`` maps to images (N, latent_dim)."""
        return truncated_normal(n, self.config.latent_dim, truncation, generator, self.device)

    def _images(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.generator(z, y)


def _spread(x: torch.Tensor) -> torch.Tensor:
    """Mean pairwise L2 distance between the images of a batch (B, C, H, W)."""
    flat = x.flatten(1).float()
    n = len(flat)
    return torch.cdist(flat, flat).sum() / max(n * (n - 1), 1)


__all__ = ["GAN", "GANConfig", "diff_augment", "truncated_normal"]
