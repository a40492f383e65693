"""Denoising diffusion (Ho et al. 2020) with classifier-free guidance (Ho & Salimans 2022).

The family ties three parts together and owns none of their math: the U-Net (unet.py)
predicts eps, v or x0; the schedule (schedule.py) turns that into targets, weights and
estimates; the samplers (sampler.py) walk from noise to images.

    model = Diffusion(DiffusionConfig(conditional=True), DataInfo.images((1, 8, 8), classes))
    losses = model.loss({"x": x, "y": y})                   # x in [-1, 1]
    imgs = model.sample(16, sampler="ddim", sampling_steps=50, guidance=3.0, label=3)

Training drops the label with probability ``label_dropout`` (the null label), so one
network is both conditional and unconditional; sampling mixes the two predictions,
out = uncond + guidance * (cond - uncond): guidance 1 is the plain conditional model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from genlab.config import check_range
from genlab.errors import ConfigError
from genlab.models.base import LABEL, TINY_IMAGE_TRAIN, Control, DataInfo, ImageModel
from genlab.models.diffusion.sampler import SAMPLERS, ddim_invert
from genlab.models.diffusion.sampler import sample as run_sampler
from genlab.models.diffusion.schedule import NoiseSchedule
from genlab.models.diffusion.unet import UNet
from genlab.registry import register

DEFAULT_GUIDANCE = 2.0


@dataclass
class DiffusionConfig:
    width: int = 32  # U-Net channels at full resolution; doubled at each halving
    max_width: int = 256
    blocks: int = 2  # residual blocks per resolution level
    attention_res: int = 16  # self-attention at levels of this size and smaller
    patch: int = 1  # >1: the U-Net sees patch x patch pixel blocks as one position
    dropout: float = 0.0
    schedule: Literal["linear", "cosine"] = "cosine"
    timesteps: int = 1000
    prediction: Literal["eps", "v", "x0"] = "v"
    weighting: Literal["uniform", "min_snr"] = "min_snr"
    snr_gamma: float = 5.0  # min-SNR's clip
    conditional: bool = False  # class labels (with classifier-free guidance)
    label_dropout: float = 0.1  # share of training labels replaced by the null label

    def __post_init__(self):
        if self.width < 1 or self.blocks < 1 or self.timesteps < 2:
            raise ValueError("width and blocks must be >= 1, timesteps >= 2")
        if not 0.0 <= self.label_dropout < 1.0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError("label_dropout and dropout must be in [0, 1)")
        check_range(
            "model",
            self,
            max_width=(1, None),
            patch=(1, 8),
            attention_res=(1, None),
            timesteps=(2, 100_000),
            snr_gamma=(1e-3, None),
        )


@register
class Diffusion(ImageModel):
    """A U-Net denoiser trained on one noise schedule, sampled by DDPM, DDIM or DPM++."""

    family = "diffusion"
    config_class = DiffusionConfig
    default_guidance = DEFAULT_GUIDANCE
    # bf16 on an AMX CPU: more steps/s at equal loss (digits, benchmarks/cpu_bf16.py)
    cpu_bf16 = True
    sweep = ("sampling_steps", (5, 10, 20, 50, 100))
    # the report sweeps these as well (one plot each), beside ``sweep``
    extra_sweeps = (("guidance", (1.0, 1.5, 2.0, 3.0, 5.0)),)
    controls = {
        "sampler": Control(
            str,
            "dpm++2m",
            "dpm++2m (second order, the fastest), ddim (deterministic) or ddpm (ancestral)",
            choices=SAMPLERS,
        ),
        "sampling_steps": Control(
            int, 20, "network evaluations per sample (fewer: faster, rougher)", 1, 100_000
        ),
        "guidance": Control(
            float,
            None,
            "classifier-free guidance scale: 1 plain conditional, higher follows the label "
            f"more closely and varies less (conditional models; default {DEFAULT_GUIDANCE})",
            0.0,
            50.0,
        ),
        "label": LABEL,
    }
    presets = {
        # 8x8 digits, sized for two CPU cores
        "default": {
            "train.steps": 1200,
            "model.blocks": 1,
            "train.batch_size": 128,
            "train.lr": 1e-3,
            "train.warmup_steps": 200,
            "train.ema_decay": 0.999,
            "train.sample_every": 600,
            "train.eval_every": 600,
            "train.checkpoint_every": 600,
        },
        "tiny": {
            "train.steps": 20,
            "train.batch_size": 16,
            "model.width": 8,
            "model.blocks": 1,
            "model.timesteps": 50,
            "train.warmup_steps": 0,
            **TINY_IMAGE_TRAIN,
        },
        # MNIST-sized images (a GPU run)
        "mnist": {
            "train.steps": 20000,
            "train.batch_size": 128,
            "train.lr": 5e-4,
            "train.warmup_steps": 500,
            "train.ema_decay": 0.9995,
            "model.width": 64,
            "model.attention_res": 14,
            "train.eval_every": 5000,
            "train.sample_every": 5000,
            "train.checkpoint_every": 2000,
        },
    }

    def __init__(self, config: DiffusionConfig, info: DataInfo):
        super().__init__(config, info, name="the diffusion U-Net")
        c, h, _ = info.shape
        self.schedule = NoiseSchedule(config.schedule, config.timesteps)
        self.net = self.unet(c, h)

    def unet(self, channels: int, size: int, **extra: Any) -> UNet:
        """The denoising network for images of ``channels`` x ``size`` x ``size``."""
        cfg = self.config
        return UNet(
            channels,
            size,
            width=cfg.width,
            max_width=cfg.max_width,
            blocks=cfg.blocks,
            attention_res=cfg.attention_res,
            num_classes=self.info.num_classes if cfg.conditional else 0,
            dropout=cfg.dropout,
            patch=cfg.patch,
            **extra,
        )

    @property
    def guided(self) -> bool:
        """Whether classifier-free guidance has something to steer by (labels here)."""
        return self.config.conditional

    def sweeps(self) -> list[tuple[str, tuple]]:
        # guidance steers labels: an unconditional model has nothing to sweep there; and
        # no sampler can take more steps than the model has timesteps
        out = []
        for knob, values in super().sweeps():
            if knob == "sampling_steps":
                values = tuple(v for v in values if v <= self.config.timesteps)
                if self.config.timesteps not in values and len(values) < 4:
                    values = (*values, self.config.timesteps)
            if knob != "guidance" or self.guided:
                out.append((knob, values))
        return out

    # -- training ----------------------------------------------------------------------
    def loss(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        x0 = batch["x"]
        n, cfg = len(x0), self.config
        # validation is deterministic (same t and noise every time), so losses compare
        g = None
        if not self.training:
            g = torch.Generator(device=x0.device).manual_seed(0)
        t = torch.randint(0, cfg.timesteps, (n,), device=x0.device, generator=g)
        eps = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=g)
        cond = self.condition(batch, n)
        compiled = self.__dict__.get("_compiled_net")
        training = compiled is not None and self.training and torch.is_grad_enabled()
        net = compiled if training else self.net
        out = net(self.schedule.add_noise(x0, eps, t), t, **cond)
        target = self.schedule.target(x0, eps, t, cfg.prediction)
        err = F.mse_loss(out.float(), target.float(), reduction="none").flatten(1).mean(1)
        w = self.schedule.loss_weight(t, cfg.prediction, cfg.weighting, cfg.snr_gamma)
        loss = (w.to(err.dtype) * err).mean()
        return {"loss": loss, "mse": err.mean().detach()}

    def condition(self, batch: dict[str, Any], n: int) -> dict[str, torch.Tensor]:
        """What the U-Net is conditioned on for a training batch (its keyword arguments):
        the labels, a share ``label_dropout`` of them replaced by the null label while
        training; nothing for an unconditional model."""
        y = self._labels_of(batch)
        if y is None:
            return {}
        if self.training and self.config.label_dropout > 0:
            drop = torch.rand(n, device=y.device) < self.config.label_dropout
            y = torch.where(drop, torch.full_like(y, self.info.num_classes), y)
        return {"y": y}

    def compile_for_training(self) -> bool:
        """The U-Net alone, at the training batch's one shape (the trainer drops the last
        short batch): what remains of the loss (timesteps, noise, label dropout, schedule
        lookups) is cheap elementwise work. Validation and sampling stay eager: they run
        other batch sizes, each of which would compile again."""
        # kept out of the module's children, so that state_dict keys do not change
        self.__dict__["_compiled_net"] = torch.compile(self.net, dynamic=False)
        return True

    # -- sampling ----------------------------------------------------------------------
    def denoiser(self, cond: dict, null: dict | None, guidance: float):
        """``(x_t, t) -> (x0_hat, eps_hat)`` with guidance applied to the network output:
        ``cond`` the U-Net's conditioning keywords, ``null`` the same for the unguided
        branch (None: no guidance, one evaluation a step)."""
        guided = null is not None and guidance != 1.0

        def denoise(x: torch.Tensor, t: torch.Tensor):
            if guided:
                both = {k: torch.cat([cond[k], null[k]]) for k in cond}
                out_c, out_u = self.net(torch.cat([x, x]), torch.cat([t, t]), **both).chunk(2)
                out = out_u + guidance * (out_c - out_u)
            else:
                out = self.net(x, t, **cond)
            return self.schedule.split(out.float(), x, t, self.config.prediction)

        return denoise

    def label_condition(self, n: int, label) -> tuple[dict, dict | None]:
        """(cond, null) for ``n`` samples of ``label``: the labels and the null label, or
        nothing for an unconditional model."""
        y = self._labels(n, label)
        if y is None:
            return {}, None
        return {"y": y}, {"y": torch.full_like(y, self.info.num_classes)}

    def _check(self, sampling_steps: int, guidance: float | None = None) -> None:
        if guidance is not None and not self.guided:
            raise ConfigError(
                "--guidance steers a conditional model; this one is not (train with "
                "model.conditional=true)"
            )
        if sampling_steps > self.config.timesteps:
            raise ConfigError(
                f"--sampling-steps {sampling_steps} is more than this model's "
                f"{self.config.timesteps} timesteps"
            )

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        sampler: str = "dpm++2m",
        sampling_steps: int = 20,
        guidance: float | None = None,
        label: int | list[int] | None = None,
        progress=None,
        preview=None,
    ) -> torch.Tensor:
        """``n`` images in [-1, 1]; ``progress(i)`` after each step and ``preview(i, x0_hat)``
        with each step's predicted clean image (see ``sampler.sample``)."""
        self._check(sampling_steps, guidance)
        cond, null = self.label_condition(n, label)
        return self.draw(
            n, cond, null, guidance, generator, sampler, sampling_steps, progress, preview
        )

    def draw(
        self, n, cond, null, guidance, generator, sampler, sampling_steps, progress, preview
    ) -> torch.Tensor:
        """``n`` images from noise with the U-Net conditioned on ``cond`` (guided against
        ``null``), by ``sampler`` in ``sampling_steps``."""
        x = torch.randn(n, *self.info.shape, generator=generator, device=self.device)
        g = self.default_guidance if guidance is None else guidance
        x = run_sampler(
            self.denoiser(cond, null, g),
            self.schedule,
            x,
            sampler=sampler,
            steps=sampling_steps,
            generator=generator,
            progress=progress,
            preview=preview,
        )
        return x.clamp(-1, 1)

    @torch.no_grad()
    def invert(
        self,
        x0: torch.Tensor,
        *,
        sampling_steps: int = 50,
        guidance: float | None = None,
        label: int | list[int] | None = None,
    ) -> torch.Tensor:
        """The noise that DDIM (eta 0) with these settings maps back to ``x0``."""
        self._check(sampling_steps, guidance)
        g = self.default_guidance if guidance is None else guidance
        denoise = self.denoiser(*self.label_condition(len(x0), label), g)
        return ddim_invert(denoise, self.schedule, x0.to(self.device), steps=sampling_steps)


__all__ = ["Diffusion", "DiffusionConfig"]
