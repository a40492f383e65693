"""`genlab train`: train a model family on a data set into a run directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG_TRAIN = """\
overrides:
  Any config value, as bare key=value arguments after the options, e.g.
    genlab train vae --data mnist --out runs/mnist model.latent_dim=32 train.lr=3e-4
  Unknown keys and wrong types are errors. `genlab info --family vae` lists every key,
  its default and the presets. Order: defaults < --preset < shorthands (--steps ...) < overrides.

resuming:
  --resume continues the run in --out from its latest checkpoint, exactly (same
  weights, optimizer, RNG and data order as if it had never stopped). A larger
  --steps extends a finished run: the cosine LR schedule is recomputed over the
  new total, so the LR rises back to where the longer schedule would be at the
  current step, then decays to the end.

examples:
  genlab train vae --out runs/vae                       # digits, default preset
  genlab train vae --data mnist --preset mnist --out runs/vae-mnist
  genlab train vae --data ./my_images --size 32 --out runs/mine model.conditional=true
  torchrun --nproc_per_node=2 -m genlab train vae --out runs/ddp   # same CLI, DDP
"""


def add_parser(sub) -> None:
    t = sub.add_parser(
        "train",
        help="train a model into a run directory",
        epilog=EPILOG_TRAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a model family on a data set.",
    )
    t.add_argument(
        "family",
        nargs="?",
        help="model family: vae, gan, diffusion (images); gpt, rnn (text)",
    )
    t.add_argument(
        "--data",
        help="named set (genlab data list) or a path: IDX folder, .npz, "
        "image folder (class subfolders = labels); for text a .txt file or a folder of "
        "them; default: the preset's set (gpt and rnn: tinyshakespeare; gpt --preset "
        "stories: tinystories-2mb), else digits for image families and the embedded grimms "
        "for text (the tiny presets)",
    )
    t.add_argument("--size", type=int, help="resize images to SIZE x SIZE (data.size)")
    t.add_argument("--crop", action="store_true", help="center-crop to a square first (data.crop)")
    t.add_argument("--out", required=True, help="run directory to create (or continue)")
    t.add_argument(
        "--preset", default="default", help="named preset of the family (default: %(default)s)"
    )
    t.add_argument("--steps", type=int, help="optimizer steps (train.steps)")
    t.add_argument(
        "--minutes",
        type=float,
        help="stop after this much training time; the LR "
        "schedule then follows elapsed time (train.minutes)",
    )
    t.add_argument("--seed", type=int, help="random seed (train.seed)")
    t.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (train.device)")
    t.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument(
        "--init-from",
        metavar="RUN",
        help="start from another run's weights (same family; its model.* settings and, for "
        "text, its tokenizer are kept): pretrain on one corpus, fine-tune on another. For gpt, "
        "RUN may also be a local transformers GPT-2 folder (config.json, model.safetensors, "
        "tokenizer files; nothing is downloaded)",
    )
    t.add_argument(
        "--until",
        type=int,
        metavar="STEP",
        help="end this session at STEP with a "
        "checkpoint, keeping the schedule of --steps; --resume continues (for "
        "time-limited jobs)",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)


def cmd_train(args, overrides: list[str]) -> int:
    from genlab.training.launch import train

    short = {
        "data.name": args.data,
        "data.size": args.size,
        "train.steps": args.steps,
        "train.minutes": args.minutes,
        "train.seed": args.seed,
        "train.device": args.device,
        "train.checkpoint_every": args.checkpoint_every,
    }
    if args.crop:
        short["data.crop"] = "true"
    items = [f"{k}={v}" for k, v in short.items() if v is not None] + overrides
    summary = train(
        args.family,
        args.out,
        preset=args.preset,
        overrides=items,
        resume=args.resume,
        progress=not args.quiet,
        until=args.until,
        init_from=args.init_from,
    )
    if not args.quiet:
        best = summary["best_val_loss"]
        print(
            f"genlab: trained to step {summary['step']} in {summary['elapsed_s']:.0f}s"
            + (f"; best validation loss {best:.4g}" if best != float("inf") else "")
            + f"\n  run:     {args.out}\n  samples: {Path(args.out) / 'samples'}\n"
            + (
                f"  next:    genlab sample {args.out} --prompt 'Once upon a time' --temperature 0.8"
                if _is_text_run(args.out)
                else f"  next:    genlab sample {args.out} -n 64 --out "
                f"{Path(args.out) / 'grid.png'}"
            ),
            file=sys.stderr,
        )
    return 0


def _is_text_run(run_dir) -> bool:
    from genlab.rundir import read_config

    return read_config(Path(run_dir))[1].kind == "text"
