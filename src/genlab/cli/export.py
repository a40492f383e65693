"""`genlab export`: a run in another library's format: a GPT run as a transformers folder,
a diffusion run as a diffusers pipeline folder. Each gets a model card (README.md)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from genlab.errors import ConfigError, RunError

FORMATS = {"transformers": "gpt", "diffusers": "diffusion"}  # format -> the family it takes
DESCRIPTION = """\
Write a run in the format another library reads, with a model card (README.md) giving
the training data, the steps, and the run's figures with their protocol.

  genlab export runs/gpt --format transformers --out gpt-hf
      a GPT run: AutoModelForCausalLM.from_pretrained(DIR) and
      AutoTokenizer.from_pretrained(DIR) load it, with the same logits and greedy text

  genlab export runs/diff --format diffusers --out diff-hf
      a diffusion run as a DDIM pipeline: DiffusionPipeline.from_pretrained(DIR), or
      UNet2DModel.from_pretrained(DIR, subfolder="unet") (the same U-Net output) and
      DDIMScheduler.from_pretrained(DIR, subfolder="scheduler") (the run's noise schedule
      and prediction type); DDIM with the same noise and steps gives genlab's images
      whenever the steps divide the timesteps

Writing needs nothing beyond genlab; loading needs the library: pip install 'genlab[hf]'.
U-Nets with channel counts that are not multiples of 32 cannot be written (diffusers'
UNet2DModel has one group count for all its norms).
"""


def add_parser(sub) -> None:
    e = sub.add_parser(
        "export",
        help="write a run in another library's format (transformers, diffusers)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("run", help="the run directory")
    e.add_argument("--format", required=True, choices=sorted(FORMATS), help="the target format")
    e.add_argument("--out", required=True, help="folder to create (must not exist, or be empty)")
    e.add_argument(
        "--weights",
        default="auto",
        help="auto (EMA if kept, else latest), ema, model or best",
    )
    e.set_defaults(func=cmd_export)


def cmd_export(args, overrides) -> int:
    import genlab
    from genlab.rundir import is_run

    run_dir, out = Path(args.run), Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} exists and is not an empty folder; give a new one")
    if not is_run(run_dir):
        raise RunError(f"{run_dir} is not a genlab run (no config.json naming a family)")
    run = genlab.load(run_dir, weights=args.weights)
    family = FORMATS[args.format]
    if run.config.family != family:
        raise ConfigError(
            f"{run_dir} is a {run.config.family} run; --format {args.format} takes {family} runs"
        )
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if args.format == "transformers":
            from genlab.hf.gpt2 import write_gpt2

            files = write_gpt2(run, tmp)
        else:
            from genlab.hf.unet2d import write_unet2d

            files = write_unet2d(run, tmp)
        (tmp / "README.md").write_text(model_card(run, args.format), encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    tmp.rename(out)  # the folder appears whole or not at all
    print(f"genlab: wrote {out} ({', '.join([*files, 'README.md'])})")
    if args.format == "transformers":
        print(
            f"  load it: AutoModelForCausalLM.from_pretrained({str(out)!r}), "
            f"AutoTokenizer.from_pretrained({str(out)!r})"
        )
    else:
        print(
            f"  load it: DiffusionPipeline.from_pretrained({str(out)!r}), or "
            f"UNet2DModel.from_pretrained({str(out)!r}, subfolder='unet') and "
            f"DDIMScheduler.from_pretrained({str(out)!r}, subfolder='scheduler'); "
            "README.md there shows the sampling loop"
        )
    return 0


def model_card(run, fmt: str) -> str:
    """What a reader of the exported folder needs: what was trained on what, for how long,
    and how well, each figure with its protocol; and how to load and sample it."""
    cfg = run.config
    params = sum(p.numel() for p in run.model.parameters())
    data = f"`{cfg.data.name}`"
    if cfg.family == "gpt":
        data += f" with a {cfg.data.tokenizer} tokenizer of {run.model.tokenizer.vocab_size:,} ids"
    lines = [
        f"# {run.path.name}: a genlab {cfg.family.upper() if cfg.family == 'gpt' else cfg.family} "
        f"model in {fmt} format",
        "",
        f"Trained with genlab {genlab_version()} (`genlab train {cfg.family} --preset "
        f"{cfg.preset}`) on {data}; exported from {run.weights} weights at step {run.step} of "
        f"{cfg.train.steps}.",
        "",
        "Model: "
        + (_gpt_model(run) if cfg.family == "gpt" else _diffusion_model(run))
        + f", {params / 1e6:.2f}M parameters.",
        "",
        "## Figures",
        "",
        *_figures(run),
        "",
        "## Use",
        "",
        *(_gpt_use(run) if cfg.family == "gpt" else _diffusion_use(run)),
        "",
    ]
    return "\n".join(lines)


def _figures(run) -> list[str]:
    """The last validation record and the latest `genlab eval` record, with their protocols."""
    from genlab.fsutil import read_jsonl

    val = [r for r in read_jsonl(run.path / "metrics.jsonl") if "val_loss" in r]
    figures = []
    if val:
        last = val[-1]
        unit = " nats/token" if "val_tokens" in last else ""
        protocol = last.get("val_protocol", "the validation split")
        count = last.get("val_tokens", last.get("val_examples", "?"))
        figures.append(
            f"- validation loss {last['val_loss']:.4f}{unit} at step {last['step']} "
            f"({protocol}, {count} {'tokens' if 'val_tokens' in last else 'examples'})"
        )
    ev = run.path / "eval" / "metrics.json"
    if ev.exists():
        rec = json.loads(ev.read_text())
        shown = {
            k: v
            for k, v in rec.items()
            if isinstance(v, (int, float)) and k not in ("step", "time")
        }
        figures.append(
            "- `genlab eval`: " + ", ".join(f"{k} {v:.4g}" for k, v in list(shown.items())[:12])
        )
        floor = rec.get("floor")
        if isinstance(floor, dict) and "fid" in floor:
            figures.append(
                f"  - floor (real training images of the same number, scored the same way): "
                f"fid {floor['fid']:.4g}"
                + (f", precision {floor['precision']:.4g}" if "precision" in floor else "")
                + (f", recall {floor['recall']:.4g}" if "recall" in floor else "")
            )
        figures.append(f"  - protocol: {_protocol(rec.get('protocol', {}))}")
    return figures or ["- none recorded (the run has no validation or evaluation records)"]


def _protocol(p: dict) -> str:
    """One line of an evaluation record's protocol (the whole of it is in the run's
    eval/metrics.json)."""
    parts = []
    if isinstance(p.get("extractor"), dict):
        parts.append(f"features of the {p['extractor'].get('name')} network")
    if "n_generated" in p:
        parts.append(
            f"{p['n_generated']} generated against {p.get('n_real', '?')} real images of the "
            f"{p.get('real_split', '?')} split"
        )
    if p.get("controls"):
        set_ = {k: v for k, v in p["controls"].items() if v is not None}
        parts.append("controls " + ", ".join(f"{k}={v}" for k, v in set_.items()))
    if "seed" in p:
        parts.append(f"seed {p['seed']}")
    if "weights" in p:
        parts.append(f"{p['weights']} weights at step {p.get('step', '?')}")
    return "; ".join(parts) or "see the run's eval/metrics.json"


def _gpt_model(run) -> str:
    m = run.config.model
    return (
        f"{m.n_layer} layers, {m.n_head} heads, width {m.n_embd}, context {m.block_size}, GELU "
        f"{'tanh approximation' if m.activation == 'gelu_tanh' else 'exact'}"
    )


def _gpt_use(run) -> list[str]:
    return [
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        'model = AutoModelForCausalLM.from_pretrained("THIS_FOLDER")',
        'tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER")',
        "```",
        "",
        f"GPT-2 has learned positions: transformers generates at most "
        f"{run.config.model.block_size} positions, prompt included (genlab's own sampler "
        "slides the window past them).",
    ]


def _diffusion_model(run) -> str:
    m, info = run.config.model, run.model.info
    c, h, w = info.shape
    cond = (
        f"conditional on {info.num_classes} classes (label {info.num_classes} is the null "
        "label of classifier-free guidance)"
        if m.conditional
        else "unconditional"
    )
    return (
        f"a U-Net on {c}x{h}x{w} images in [-1, 1] (width {m.width}, {m.blocks} residual "
        f"block(s) per level, attention at {m.attention_res}x{m.attention_res} and below), "
        f"{cond}; a {m.schedule} noise schedule of {m.timesteps} timesteps, predicting "
        f"{m.prediction}"
    )


def _diffusion_use(run) -> list[str]:
    m, info = run.config.model, run.model.info
    c, h, w = info.shape
    common = [
        "genlab's DDIM clips x0 to [-1, 1] and re-derives eps from the clipped x0: "
        "`use_clipped_model_output=True` does the same in diffusers. Its steps trail from "
        f't={m.timesteps - 1} (`timestep_spacing="trailing"`), so with the same starting '
        "noise and a number of steps that divides the timesteps, this gives genlab's "
        "`--sampler ddim` images.",
    ]
    if not m.conditional:
        return [
            "```python",
            "import torch",
            "from diffusers import DiffusionPipeline",
            'pipe = DiffusionPipeline.from_pretrained("THIS_FOLDER")      # a DDIMPipeline',
            "images = pipe(batch_size=16, num_inference_steps=50, eta=0.0,",
            '              use_clipped_model_output=True, output_type="np").images',
            "```",
            "",
            *common,
        ]
    return [
        "A conditional U-Net takes `class_labels`, which `DDIMPipeline` does not pass; sample "
        "with the model and the scheduler, guidance as genlab does it:",
        "",
        "```python",
        "import torch",
        "from diffusers import DDIMScheduler, UNet2DModel",
        'unet = UNet2DModel.from_pretrained("THIS_FOLDER", subfolder="unet").eval()',
        'scheduler = DDIMScheduler.from_pretrained("THIS_FOLDER", subfolder="scheduler")',
        f"labels = torch.arange(16) % {info.num_classes}",
        f"null = torch.full_like(labels, {info.num_classes})   # the unconditional label",
        "guidance = 2.0                         # genlab's default",
        f"x = torch.randn(16, {c}, {h}, {w})",
        "scheduler.set_timesteps(50)",
        "with torch.no_grad():",
        "    for t in scheduler.timesteps:",
        "        out = unet(torch.cat([x, x]), t, class_labels=torch.cat([labels, null])).sample",
        "        cond, uncond = out.chunk(2)",
        "        out = uncond + guidance * (cond - uncond)",
        "        x = scheduler.step(out, t, x, eta=0.0, use_clipped_model_output=True).prev_sample",
        "images = (x.clamp(-1, 1) + 1) / 2      # in [0, 1]",
        "```",
        "",
        *common,
    ]


def genlab_version() -> str:
    from genlab.version import __version__

    return __version__
