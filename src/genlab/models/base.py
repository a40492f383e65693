"""The model protocol: what every family gives the trainer, sampler and CLI.

A family is one ``GenerativeModel`` subclass with a config dataclass beside
it. It owns its loss and its sampling; the trainer owns everything around
them. Kept small on purpose:

    model = VAE(VAEConfig(latent_dim=16), DataInfo.images((1, 8, 8), classes))
    losses = model.loss({"x": x, "y": y, "step": 0})   # {"loss": ..., "kl": ...}
    x = model.sample(16, temperature=0.8)               # (16, 1, 8, 8) in [-1, 1]
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from genlab.data import DataInfo  # noqa: F401  (re-exported: models are built from it)
from genlab.errors import ConfigError
from genlab.models.layers import label_tensor, slerp


@dataclass(frozen=True)
class Control:
    """One creativity knob a family takes at sampling time (type, range, default).

    The CLI turns each into a flag (``temperature`` -> ``--temperature``), the
    report sweeps them and the web UI draws them; a control a family does not
    declare is an error, never silently ignored.
    """

    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    many: bool = False  # accepts a list (e.g. one label per sample)

    def check(self, name: str, value: Any) -> Any:
        values = value if self.many and isinstance(value, (list, tuple)) else [value]
        out = []
        for v in values:
            if v is None:
                out.append(None)
                continue
            try:
                v = self.type(v)
            except (TypeError, ValueError, OverflowError):
                raise ConfigError(f"{name}={value!r}: expected {self.type.__name__}") from None
            if isinstance(v, float) and not math.isfinite(v):  # NaN passes every comparison
                raise ConfigError(f"{name}={v} is not a finite number")
            if self.low is not None and v < self.low or self.high is not None and v > self.high:
                if self.high is None:
                    raise ConfigError(f"{name}={v}: must be at least {self.low}")
                if self.low is None:
                    raise ConfigError(f"{name}={v}: must be at most {self.high}")
                raise ConfigError(f"{name}={v} is outside [{self.low}, {self.high}]")
            if self.choices is not None and v not in self.choices:
                raise ConfigError(f"{name}={v!r} is not one of {', '.join(map(str, self.choices))}")
            out.append(v)
        return out if self.many and isinstance(value, (list, tuple)) else out[0]


def cpu_has_bf16_units() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX tiles): there bf16
    matmuls run faster than float32; elsewhere bf16 is emulated, and slower."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe and probe())


def fusable(params) -> bool:
    """Whether PyTorch's fused Adam/AdamW kernel can update ``params``: floating-point
    tensors on a CPU or a CUDA device. One kernel for every tensor instead of a dozen ops
    per tensor, so the optimizer's share of a small model's training step shrinks."""
    params = list(params)
    return bool(params) and all(
        p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params
    )


class GenerativeModel(nn.Module):
    """Base class of every family. Subclasses set the class attributes and
    implement ``loss`` and ``sample``; ``train_step`` only for ordered updates."""

    family: ClassVar[str]
    config_class: ClassVar[type]
    data_kind: ClassVar[str] = "images"
    # the data set a run uses when neither its preset nor the user names one: embedded, so
    # that every family trains with no network (text families: Grimms' tales)
    default_data: ClassVar[str] = "digits"
    controls: ClassVar[dict[str, Control]] = {}
    # dotted overrides by name: "default" (what `genlab train FAMILY` uses) and "tiny"
    # (a seconds-long run the registry-wide tests train, resume and sample) at least
    presets: ClassVar[dict[str, dict[str, Any]]] = {"default": {}}
    has_latent: ClassVar[bool] = False
    # A family that draws what a text prompt says (txt2img): it trains on captioned images,
    # keeps a tokenizer of the captions, and declares "prompt" (and "negative_prompt")
    # among its controls; the CLI, the evaluation, the report and the studio read this
    # flag, never the family's name. (A text family's "prompt" is the text it continues.)
    takes_prompt: ClassVar[bool] = False
    # the main creativity knob and the settings the report sweeps (at least 4)
    sweep: ClassVar[tuple[str, tuple] | None] = None
    # more knobs the report sweeps, one plot each (diffusion: guidance beside steps)
    extra_sweeps: ClassVar[tuple[tuple[str, tuple], ...]] = ()
    # A family whose update has an order (GAN: D then G) sets this to True and
    # defines train_step(batch, stepper); the trainer then calls it instead of
    # back-propagating loss(batch)["loss"] itself.
    owns_step: ClassVar[bool] = False
    # Whether the lowest validation loss picks best.safetensors (a GAN's does not).
    selects_best: ClassVar[bool] = True
    # what the progress bar shows of each logged record
    progress_keys: ClassVar[tuple[str, ...]] = ("loss",)
    # Whether train.precision=auto trains in bf16 on a CPU with bf16 matrix units (AMX):
    # set where benchmarks/cpu_bf16.py measured it faster at equal quality
    cpu_bf16: ClassVar[bool] = False

    def __init__(self, config: Any, info: DataInfo):
        super().__init__()
        self.config = config
        self.info = info

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        # DDP hooks forward(), so the training loss goes through it.
        return self.loss(batch)

    def loss(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Losses for one batch ({"loss": scalar, ...scalars worth logging})."""
        raise NotImplementedError

    def train_step(self, batch: dict[str, Any], stepper: Any) -> dict[str, torch.Tensor]:
        raise NotImplementedError(f"{self.family} does not own its training step")

    def sample(self, n: int, *, generator: torch.Generator | None = None, **controls: Any):
        """``n`` samples: images in [-1, 1] (N, C, H, W), or for text a list of strings."""
        raise NotImplementedError

    def optimizers(self, train: Any) -> dict[str, torch.optim.Optimizer]:
        """AdamW on every parameter; no weight decay on biases and norms."""
        decay = [p for p in self.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in self.parameters() if p.requires_grad and p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": train.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        return {
            "main": torch.optim.AdamW(
                groups, lr=train.lr, betas=tuple(train.betas), fused=fusable(self.parameters())
            )
        }

    def compile_for_training(self) -> bool:
        """train.compile: a family may compile just the part of its training step where the
        time goes (and return True); by default (False) the trainer compiles the whole
        ``loss``."""
        return False

    def alarm(self, record: dict[str, float]) -> str | None:
        """A warning about training going wrong, judged from one logged record (averages
        over the last train.log_every steps); None when all is well. The trainer prints
        it when it starts and writes it into metrics.jsonl as "alarm"."""
        return None

    def sweeps(self) -> list[tuple[str, tuple]]:
        """Every (knob, settings) the report sweeps for this model: ``sweep`` first."""
        return [s for s in (self.sweep, *self.extra_sweeps) if s]

    def evaluate(self, batches: Any, **options: Any) -> dict[str, Any]:
        """The family's own likelihood figures on held-out data ({} if it has none)."""
        return {}

    def prompt_as_read(self, prompt: str) -> str:
        """A family that ``takes_prompt``: ``prompt`` as its text encoder reads it (cut to
        its context when longer); the prompt itself for any other."""
        return prompt

    @classmethod
    def check_controls(cls, controls: dict[str, Any]) -> dict[str, Any]:
        """Defaults filled in; an unknown or out-of-range control raises ConfigError."""
        unknown = sorted(k for k, v in controls.items() if k not in cls.controls)
        if unknown:
            takes = ", ".join(f"--{k.replace('_', '-')}" for k in cls.controls) or "no controls"
            raise ConfigError(
                f"the {cls.family} family does not take --{unknown[0].replace('_', '-')}; "
                f"it takes {takes}"
            )
        out = {k: c.default for k, c in cls.controls.items()}
        out.update({k: cls.controls[k].check(k, v) for k, v in controls.items() if v is not None})
        return out

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


# the "label" control of every image family
LABEL = Control(int, None, "class of each sample (conditional models)", 0, None, many=True)
# how the image families' "tiny" presets (a pipeline check) evaluate, sample, save and log
TINY_IMAGE_TRAIN = {
    "train.eval_every": 10,
    "train.sample_every": 10,
    "train.checkpoint_every": 10,
    "train.log_every": 1,
    "train.grid_size": 16,
}


class ImageModel(GenerativeModel):
    """Base of the image families (vae, gan, diffusion), whose configs have
    ``conditional``: the images and labels they can be built for, and the labels of the
    images they draw (the ``label`` control)."""

    def __init__(self, config: Any, info: DataInfo, *, name: str, any_channels: bool = False):
        """A ConfigError unless ``info`` is square images of 8x8 to 64x64 (with 1 or 3
        channels unless ``any_channels``), labelled if the model is conditional; ``name`` is
        what the message calls the model ("the GAN")."""
        super().__init__(config, info)
        c, h, w = info.shape
        if h != w or not 8 <= h <= 64 or not any_channels and c not in (1, 3):
            takes = "" if any_channels else " with 1 or 3 channels"
            got = f"{h}x{w}" if any_channels else f"{c}x{h}x{w}"
            raise ConfigError(
                f"{name} takes square images from 8x8 to 64x64{takes}, got {got}; "
                "resize with data.size=N"
            )
        if config.conditional and info.num_classes == 0:
            raise ConfigError("model.conditional=true needs labelled data (class subfolders or y)")

    def _labels_of(self, batch: dict[str, Any]) -> torch.Tensor | None:
        """The batch's labels for a conditional model; None for an unconditional one."""
        return batch.get("y") if self.config.conditional else None

    def _labels(self, n: int, label) -> torch.Tensor | None:
        """The ``label`` control as the labels of ``n`` samples (see ``label_tensor``)."""
        k = self.info.num_classes
        return label_tensor(n, label, k, self.config.conditional, self.family, self.device)


class LatentImageModel(ImageModel):
    """An image family that maps latent draws to images (vae, gan). It gives
    ``latents(n, generator=, **knobs)`` (the draws ``sample`` starts from) and
    ``_images(z, y)``; mapping latents to images and interpolating between them are the
    same for each, written here."""

    has_latent = True

    def latents(self, n: int, *, generator: torch.Generator | None = None, **knobs: Any):
        """The latent draws (N, D) that ``sample`` maps to images."""
        raise NotImplementedError

    def _images(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Images (N, C, H, W) in [-1, 1] from latents ``z`` (N, D) and labels ``y`` (N,)."""
        raise NotImplementedError

    @torch.no_grad()
    def from_latents(self, z: torch.Tensor, label: int | list[int] | None = None) -> torch.Tensor:
        """Images (N, C, H, W) in [-1, 1] from latents ``z``."""
        return self._images(z, self._labels(len(z), label))

    @torch.no_grad()
    def interpolate(
        self,
        rows: int,
        steps: int,
        *,
        generator: torch.Generator | None = None,
        label: int | list[int] | None = None,
        **knobs: Any,
    ) -> torch.Tensor:
        """``rows`` spherical interpolations between two latent draws (``latents`` with
        ``knobs``: temperature, truncation), ``steps`` images each: (rows * steps, C, H, W),
        row-major, one label a row."""
        z0, z1 = (self.latents(rows, generator=generator, **knobs) for _ in "ab")
        t = torch.linspace(0, 1, steps, device=self.device)
        z = torch.stack([slerp(z0, z1, ti) for ti in t], dim=1).flatten(0, 1)
        labels = self._labels(rows, label)
        y = labels.repeat_interleave(steps) if labels is not None else None
        return self._images(z, y)


def config_with_defaults(cls: type, **kw: Any) -> Any:
    """A family config with keyword overrides, rejecting unknown names."""
    names = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(kw) - names)
    if bad:
        raise ConfigError(f"{cls.__name__} has no field {bad[0]!r}")
    return cls(**kw)
