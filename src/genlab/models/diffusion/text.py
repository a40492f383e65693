"""Text to image: the diffusion family conditioned on a prompt (Rombach et al. 2022's
recipe at a small scale), with classifier-free guidance and negative prompts.

    model = TextDiffusion(TextDiffusionConfig(), DataInfo.images((3, 32, 32), vocab_size=1024))
    model.tokenizer = tokenizer                      # the run's, trained on its captions
    losses = model.loss({"x": x, "text": ids})       # ids (B, L): caption tokens, -1 padding
    imgs = model.sample(4, prompt="red apple, twitter style", guidance=4.0,
                        negative_prompt="google style")

The prompt's tokens go through a small transformer (text_encoder.py), trained with the
U-Net from scratch; the U-Net (unet.py) reads them by cross-attention at the levels of
``cross_attention_res`` and smaller, and adds their summary to its timestep embedding.
Training replaces a share ``caption_dropout`` of the captions by the empty prompt, so one
network is both conditional and unconditional; sampling mixes the two predictions,
out = uncond + guidance * (cond - uncond), where ``uncond`` is the empty prompt, or the
negative prompt when one is given (what the image should move away from).

A prompt longer than the encoder's context (``text_context`` tokens) is cut to fit, with
a warning that says how much was dropped (as diffusers does for CLIP's 77 tokens); an
empty prompt is refused: the empty prompt is the unconditional model, which guidance
already uses.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import torch

from genlab.config import check_range
from genlab.errors import ConfigError
from genlab.models.base import TINY_IMAGE_TRAIN, Control, DataInfo
from genlab.models.diffusion.model import Diffusion, DiffusionConfig
from genlab.models.diffusion.sampler import ddim_invert
from genlab.models.diffusion.text_encoder import PAD, TextEncoder
from genlab.registry import register

DEFAULT_TEXT_GUIDANCE = 4.0


@dataclass
class TextDiffusionConfig(DiffusionConfig):
    text_width: int = 128  # the text encoder's width (its token states' size)
    text_layers: int = 2  # its transformer blocks
    text_heads: int = 4
    text_context: int = 32  # the most prompt tokens it reads; longer prompts are cut
    caption_dropout: float = 0.1  # share of training captions replaced by the empty prompt
    cross_attention_res: int = 16  # cross-attention at levels of this size and smaller

    def __post_init__(self):
        super().__post_init__()
        if self.conditional:
            raise ValueError("txt2img draws from prompts, not class labels: leave conditional off")
        if not 0.0 <= self.caption_dropout < 1.0:
            raise ValueError("caption_dropout must be in [0, 1)")
        check_range(
            "model",
            self,
            text_width=(8, 4096),
            text_layers=(1, 48),
            text_heads=(1, 64),
            text_context=(1, 1024),
            cross_attention_res=(1, None),
        )


def _prompts(name: str, value, n: int) -> list[str] | None:
    """``value`` (one prompt, or one a sample) as ``n`` prompts; None when not given."""
    if value is None:
        return None
    given = list(value) if isinstance(value, (list, tuple)) else [value]
    if not given:
        raise ConfigError(f"--{name.replace('_', '-')}: give at least one prompt")
    for p in given:
        if not isinstance(p, str):
            raise ConfigError(f"--{name.replace('_', '-')} takes text, not {type(p).__name__}")
        if name == "prompt" and not p.strip():
            raise ConfigError(
                "an empty prompt: say what to draw, e.g. --prompt \"red apple, twitter style\""
            )
    return [given[i % len(given)] for i in range(n)]


PROMPT = Control(
    str, None, "what to draw, in words (one for all samples, or one a sample)", many=True
)
NEGATIVE = Control(
    str,
    None,
    "what the image should not be: guidance steers away from it instead of from the "
    "empty prompt",
    many=True,
)
TEXT_PRESET = {
    "data.name": "emoji",
    "data.tokenizer": "bpe",
    "data.vocab_size": 1024,
}


@register
class TextDiffusion(Diffusion):
    """A U-Net denoiser drawing what a prompt says: text encoder, cross-attention, CFG."""

    family = "txt2img"
    config_class = TextDiffusionConfig
    takes_prompt = True
    default_data = "emoji"
    default_guidance = DEFAULT_TEXT_GUIDANCE
    extra_sweeps = (("guidance", (1.0, 2.0, 4.0, 6.0, 8.0)),)
    controls = {
        "sampler": Diffusion.controls["sampler"],
        "sampling_steps": Diffusion.controls["sampling_steps"],
        "guidance": Control(
            float,
            None,
            "classifier-free guidance scale: 1 the plain conditional model, higher follows "
            f"the prompt more closely and varies less (default {DEFAULT_TEXT_GUIDANCE})",
            0.0,
            50.0,
        ),
        "prompt": PROMPT,
        "negative_prompt": NEGATIVE,
    }
    presets = {
        # emoji at 32x32 on two CPU cores for 40 minutes (the learning rate's schedule
        # follows the clock; train.steps is only a cap): the README's figures
        "default": {
            **TEXT_PRESET,
            "data.size": 32,
            "model.patch": 2,  # the U-Net runs at 16x16 (benchmarks/txt2img_cpu.py)
            "model.width": 32,
            "model.max_width": 128,
            "model.blocks": 1,
            "model.attention_res": 8,
            "model.cross_attention_res": 16,
            "train.steps": 20000,
            "train.minutes": 40,
            "train.batch_size": 64,
            "train.lr": 1e-3,
            "train.warmup_steps": 300,
            "train.ema_decay": 0.999,
            "train.sample_every": 1000,
            "train.eval_every": 1000,
            "train.checkpoint_every": 1000,
            "train.grid_size": 32,
        },
        # emoji at 64x64 on a GPU
        "gpu": {
            **TEXT_PRESET,
            "data.size": 64,
            "model.width": 64,
            "model.max_width": 256,
            "model.blocks": 2,
            "model.attention_res": 16,
            "model.cross_attention_res": 32,
            "model.text_width": 256,
            "model.text_layers": 4,
            "train.steps": 30000,
            "train.batch_size": 128,
            "train.lr": 5e-4,
            "train.warmup_steps": 1000,
            "train.ema_decay": 0.9995,
            "train.sample_every": 5000,
            "train.eval_every": 5000,
            "train.checkpoint_every": 2000,
        },
        "tiny": {
            "data.name": "shapes",
            "data.tokenizer": "bpe",
            "data.vocab_size": 300,
            "train.steps": 20,
            "train.batch_size": 16,
            "model.width": 8,
            "model.blocks": 1,
            "model.timesteps": 50,
            "model.text_width": 16,
            "model.text_layers": 1,
            "model.text_heads": 2,
            "model.text_context": 16,
            "train.warmup_steps": 0,
            **TINY_IMAGE_TRAIN,
        },
    }

    def __init__(self, config: TextDiffusionConfig, info: DataInfo):
        if info.vocab_size < 1:
            raise ConfigError(
                "txt2img is built from captioned images: the data must give captions "
                "(and the run a tokenizer of them)"
            )
        super().__init__(config, info)
        self.text = TextEncoder(
            info.vocab_size,
            width=config.text_width,
            layers=config.text_layers,
            heads=config.text_heads,
            context=config.text_context,
            dropout=config.dropout,
        )
        self.tokenizer = None  # the run's: set by training and by genlab.load
        self.preview_prompts: list[str] = []  # what the training grids draw (training sets it)

    def unet(self, channels: int, size: int, **extra: Any):
        cfg = self.config
        return super().unet(
            channels,
            size,
            context_dim=cfg.text_width,
            cross_attention_res=cfg.cross_attention_res,
            **extra,
        )

    @property
    def guided(self) -> bool:
        return True  # by the prompt

    # -- prompts -------------------------------------------------------------------
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """(B, text_context) token ids of ``prompts``, -1 after each; a prompt longer than
        the context is cut to fit, with a warning."""
        if self.tokenizer is None:
            raise ConfigError("this txt2img model has no tokenizer: load it with genlab.load")
        ctx, ids, cut = self.config.text_context, [], []
        for p in prompts:
            t = self.tokenizer.encode(p)
            if len(t) > ctx:
                cut.append((p, len(t)))
                t = t[:ctx]
            ids.append(t)
        if cut:
            p, k = cut[0]
            print(
                f"genlab: warning: the prompt {p[:60]!r} is {k} tokens; this model reads "
                f"{ctx}, so the rest was dropped"
                + (f" (and {len(cut) - 1} more prompts cut)" if len(cut) > 1 else ""),
                file=sys.stderr,
            )
        return self.text.pad(ids).to(self.device)

    def prompt_as_read(self, prompt: str) -> str:
        """``prompt`` as the text encoder reads it: whole, or its first ``text_context``
        tokens decoded when it is longer (what OpenAI's image API calls the revised
        prompt); no warning here, encode_prompts gives that."""
        if self.tokenizer is None:
            raise ConfigError("this txt2img model has no tokenizer: load it with genlab.load")
        ids = self.tokenizer.encode(prompt)
        ctx = self.config.text_context
        return prompt if len(ids) <= ctx else self.tokenizer.decode(ids[:ctx])

    def context(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        states, mask = self.text(ids)
        return {"context": states, "context_mask": mask}

    def condition(self, batch: dict[str, Any], n: int) -> dict[str, torch.Tensor]:
        """The captions' token states, a share ``caption_dropout`` of them replaced by the
        empty prompt while training."""
        if "text" not in batch:
            raise ConfigError("txt2img trains on captioned images: the batch has no captions")
        ids = batch["text"]
        if self.training and self.config.caption_dropout > 0:
            drop = torch.rand(n, device=ids.device) < self.config.caption_dropout
            ids = torch.where(drop[:, None], torch.full_like(ids, PAD), ids)
        return self.context(ids)

    def prompt_condition(self, n: int, prompt, negative_prompt) -> tuple[dict, dict]:
        """(cond, null) for ``n`` samples: the prompts' states, and the negative prompts'
        (or the empty prompt's), encoded together so that both have one length."""
        prompts = _prompts("prompt", prompt, n)
        if prompts is None:
            prompts = _prompts("prompt", self.preview_prompts or None, n)
        if prompts is None:
            raise ConfigError(
                "txt2img draws what a prompt says: give one, e.g. "
                "--prompt \"red apple, twitter style\""
            )
        negatives = _prompts("negative_prompt", negative_prompt, n) or [""] * n
        both = self.context(self.encode_prompts(prompts + negatives))
        cond = {k: v[:n] for k, v in both.items()}
        null = {k: v[n:] for k, v in both.items()}
        return cond, null

    # -- sampling ------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        sampler: str = "dpm++2m",
        sampling_steps: int = 20,
        guidance: float | None = None,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        progress=None,
        preview=None,
    ) -> torch.Tensor:
        """``n`` images in [-1, 1] of ``prompt`` (one for all, or one a sample); the
        training grids' prompts when none is given to a model in training."""
        self._check(sampling_steps, guidance)
        cond, null = self.prompt_condition(n, prompt, negative_prompt)
        return self.draw(
            n, cond, null, guidance, generator, sampler, sampling_steps, progress, preview
        )

    @torch.no_grad()
    def invert(
        self,
        x0: torch.Tensor,
        *,
        sampling_steps: int = 50,
        guidance: float | None = None,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
    ) -> torch.Tensor:
        """The noise that DDIM (eta 0) with these settings maps back to ``x0``."""
        self._check(sampling_steps, guidance)
        g = self.default_guidance if guidance is None else guidance
        cond, null = self.prompt_condition(len(x0), prompt, negative_prompt)
        denoise = self.denoiser(cond, null, g)
        return ddim_invert(denoise, self.schedule, x0.to(self.device), steps=sampling_steps)


__all__ = ["TextDiffusion", "TextDiffusionConfig"]
