"""A genlab diffusion run as a `diffusers` pipeline folder: the U-Net as ``UNet2DModel``,
the noise schedule and prediction type as a ``DDIMScheduler`` config.

    files = write_unet2d(run, out)      # run = genlab.load(...), a diffusion run

    out/model_index.json                          DiffusionPipeline.from_pretrained(out)
    out/unet/config.json                          UNet2DModel.from_pretrained(out, subfolder="unet")
    out/unet/diffusion_pytorch_model.safetensors
    out/scheduler/scheduler_config.json           DDIMScheduler.from_pretrained(out, subfolder=...)

genlab's U-Net was built to diffusers' block for block: pre-norm residual blocks whose
timestep embedding scales and shifts the second norm ("scale_shift"), self-attention with
32-wide heads at the coarse levels, stride-2 convolutions down, nearest x2 and a
convolution up, the same skip connections, sinusoidal timesteps (cos first), and a class
embedding added to the timestep's (label ``num_classes`` is the null label that
classifier-free guidance uses). Three things need care:

- genlab's fused ``qkv`` projection is diffusers' ``to_q``, ``to_k``, ``to_v``, in thirds;
- diffusers' U-Net has one group count for every GroupNorm, genlab takes gcd(C, 32) per
  norm: these agree when every channel count is a multiple of 32 (model.width and
  model.max_width multiples of 32, as the defaults are), and other runs are refused;
- the middle attention of a "scale_shift" U-Net has a GroupNorm only when
  ``attn_norm_num_groups`` says so.

The scheduler is DDIM with genlab's defaults for its DDIM sampler: the steps trail from
T-1 (``timestep_spacing="trailing"``), x0 is clipped to [-1, 1], and the last step lands
on the clean image (``set_alpha_to_one``). genlab also re-derives eps from the clipped x0,
which diffusers does with ``use_clipped_model_output=True``.

Nothing here imports diffusers: the folder is json and safetensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from genlab.errors import ConfigError

DIFFUSERS_FORMAT = "0.30.0"  # the diffusers release whose folder layout this writes
PREDICTION = {"eps": "epsilon", "v": "v_prediction", "x0": "sample"}
BETA_SCHEDULE = {"cosine": "squaredcos_cap_v2", "linear": "linear"}
RESBLOCK = {
    "norm1": "norm1",
    "conv1": "conv1",
    "norm2": "norm2",
    "conv2": "conv2",
    "emb": "time_emb_proj",
    "skip": "conv_shortcut",
}


def _check(net) -> None:
    """Refuse a U-Net that diffusers' UNet2DModel cannot express exactly."""
    from torch import nn

    from genlab.models.diffusion.unet import Attention

    if getattr(net, "patch", 1) != 1:
        raise ConfigError(
            f"this run's U-Net sees {net.patch}x{net.patch} pixel blocks as one position "
            "(model.patch), which diffusers' UNet2DModel cannot express; export takes runs "
            "with model.patch=1"
        )
    groups = {m.num_groups for m in net.modules() if isinstance(m, nn.GroupNorm)}
    heads = {m.qkv.in_features // m.heads for m in net.modules() if isinstance(m, Attention)}
    if groups != {32} or heads != {32}:
        raise ConfigError(
            "diffusers' UNet2DModel has one group count for every norm and one head width: "
            "this run's U-Net has channel counts that are not multiples of 32 "
            f"(model.width={net.width}); export takes runs with model.width and "
            "model.max_width multiples of 32, as the defaults are"
        )


def unet2d_config(run) -> dict:
    """The UNet2DModel config.json of ``run``'s U-Net."""
    from genlab.models.layers import resolution_levels

    cfg, info = run.config.model, run.model.info
    c, size, _ = info.shape
    levels = resolution_levels(size)
    widths = [min(cfg.width * 2**i, cfg.max_width) for i in range(len(levels))]
    attn = [res <= cfg.attention_res for res in levels]
    return {
        "_class_name": "UNet2DModel",
        "_diffusers_version": DIFFUSERS_FORMAT,
        "sample_size": size,
        "in_channels": c,
        "out_channels": c,
        "center_input_sample": False,
        "time_embedding_type": "positional",
        "freq_shift": 0,
        "flip_sin_to_cos": True,
        "down_block_types": ["AttnDownBlock2D" if a else "DownBlock2D" for a in attn],
        "up_block_types": ["AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)],
        "block_out_channels": widths,
        "layers_per_block": cfg.blocks,
        "mid_block_scale_factor": 1,
        "downsample_padding": 1,
        "downsample_type": "conv",
        "upsample_type": "conv",
        "dropout": cfg.dropout,
        "act_fn": "silu",
        "attention_head_dim": 32,
        "norm_num_groups": 32,
        "attn_norm_num_groups": 32,
        "norm_eps": 1e-5,
        "resnet_time_scale_shift": "scale_shift",
        "add_attention": True,
        "class_embed_type": None,
        # the null label (classifier-free guidance) is the last row
        "num_class_embeds": info.num_classes + 1 if cfg.conditional else None,
        "num_train_timesteps": None,
    }


def scheduler_config(run) -> dict:
    """A DDIMScheduler config with ``run``'s noise schedule and prediction type."""
    cfg = run.config.model
    T = cfg.timesteps
    out = {
        "_class_name": "DDIMScheduler",
        "_diffusers_version": DIFFUSERS_FORMAT,
        "num_train_timesteps": T,
        "beta_schedule": BETA_SCHEDULE[cfg.schedule],
        "prediction_type": PREDICTION[cfg.prediction],
        "clip_sample": True,
        "clip_sample_range": 1.0,
        "set_alpha_to_one": True,
        "steps_offset": 0,
        "timestep_spacing": "trailing",
        "thresholding": False,
        "rescale_betas_zero_snr": False,
    }
    if cfg.schedule == "linear":  # Ho et al.'s 1e-4..0.02 at T=1000, scaled as genlab scales
        out.update(beta_start=1e-4 * 1000 / T, beta_end=0.02 * 1000 / T)
    return out


def unet2d_state(net) -> dict[str, torch.Tensor]:
    """genlab's U-Net weights under UNet2DModel's names (walks both layouts in order)."""
    from genlab.models.diffusion.unet import Attention
    from genlab.models.layers import Downsample, ResBlock, Upsample

    out: dict[str, torch.Tensor] = {}

    def put(theirs: str, module) -> None:
        for name, p in module.state_dict().items():
            out[f"{theirs}.{name}"] = p.detach().float().cpu().clone()

    def resblock(theirs: str, m: ResBlock) -> None:
        for ours, name in RESBLOCK.items():
            part = getattr(m, ours)
            if isinstance(part, torch.nn.Module) and list(part.parameters()):
                put(f"{theirs}.{name}", part)

    def attention(theirs: str, m: Attention) -> None:
        put(f"{theirs}.group_norm", m.norm)
        for i, name in enumerate(("to_q", "to_k", "to_v")):
            rows = slice(i * m.qkv.out_features // 3, (i + 1) * m.qkv.out_features // 3)
            out[f"{theirs}.{name}.weight"] = m.qkv.weight.detach()[rows].float().clone()
            out[f"{theirs}.{name}.bias"] = m.qkv.bias.detach()[rows].float().clone()
        put(f"{theirs}.to_out.0", m.out)

    def path(prefix: str, levels, resize: type, resizers: str) -> None:
        """The down (or up) path: each level's blocks, then its Downsample (Upsample)."""
        block, k = 0, 0
        for parts in levels:
            if isinstance(parts[0], resize):
                put(f"{prefix}.{block}.{resizers}.0", parts[0])
                block, k = block + 1, 0
                continue
            for m in parts:  # a residual block, and its attention at the coarse levels
                if isinstance(m, ResBlock):
                    resblock(f"{prefix}.{block}.resnets.{k}", m)
                elif isinstance(m, Attention):
                    attention(f"{prefix}.{block}.attentions.{k}", m)
            k += 1

    put("time_embedding.linear_1", net.time_mlp[0])
    put("time_embedding.linear_2", net.time_mlp[2])
    if net.label_emb is not None:
        put("class_embedding", net.label_emb)
    put("conv_in", net.conv_in)
    path("down_blocks", net.down, Downsample, "downsamplers")
    resblock("mid_block.resnets.0", net.mid[0])
    attention("mid_block.attentions.0", net.mid[1])
    resblock("mid_block.resnets.1", net.mid[2])
    path("up_blocks", net.up, Upsample, "upsamplers")
    put("conv_norm_out", net.norm_out)
    put("conv_out", net.conv_out)
    n_ours = sum(p.numel() for p in net.parameters())
    n_theirs = sum(t.numel() for t in out.values())
    assert n_ours == n_theirs, f"mapped {n_theirs} of {n_ours} U-Net parameters"
    return out


def write_unet2d(run, out: Path) -> list[str]:
    """Write ``run`` (a loaded genlab diffusion run) into folder ``out`` as a diffusers
    DDIM pipeline. Returns the file names, relative to ``out``."""
    from genlab.fsutil import save_tensors, write_bytes_atomic

    net = run.model.net
    _check(net)

    def dump(path: Path, data: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, (json.dumps(data, indent=2) + "\n").encode())

    out = Path(out)
    (out / "unet").mkdir(parents=True, exist_ok=True)
    save_tensors(
        out / "unet" / "diffusion_pytorch_model.safetensors",
        unet2d_state(net),
        metadata={"format": "pt"},
    )
    dump(out / "unet" / "config.json", unet2d_config(run))
    dump(out / "scheduler" / "scheduler_config.json", scheduler_config(run))
    dump(
        out / "model_index.json",
        {
            "_class_name": "DDIMPipeline",
            "_diffusers_version": DIFFUSERS_FORMAT,
            "scheduler": ["diffusers", "DDIMScheduler"],
            "unet": ["diffusers", "UNet2DModel"],
        },
    )
    return [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "scheduler/scheduler_config.json",
    ]
