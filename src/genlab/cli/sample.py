"""`genlab sample`: generate images (a grid, .npz or a folder) or text from a run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genlab.cli.common import _add_controls, _controls, _device, check_counts
from genlab.errors import GenlabError


def add_parser(sub) -> None:
    s = sub.add_parser(
        "sample",
        help="generate samples from a run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generate samples. The extension of --out decides the format: "
        ".png a grid, .npz arrays (x: uint8 N,H,W,C; y: labels of a conditional "
        "model), a path ending in / one PNG per sample; for text, .txt (samples between "
        "rules of =) or .jsonl (one JSON object a sample, with the controls). Text without "
        "--out streams to the terminal. Samples are drawn 250 at a time (text: 50) and "
        "written as they come, so a folder/, an .npz or a text file takes any -n; a .png "
        "grid takes at most 10,000.",
        epilog="examples:\n  genlab sample runs/vae -n 64 --out grid.png "
        "--temperature 0.8\n  genlab sample runs/cvae -n 100 --out s.npz --label 3\n"
        "  genlab sample runs/vae --interpolate 10 -n 8 --out interp.png\n"
        '  genlab sample runs/gpt --prompt "Once upon a time" --temperature 0.8 --top-p 0.9\n'
        '  genlab sample runs/gpt --prompt "Once upon a time" -n 5 --out stories.jsonl '
        "--max-new-tokens 300 --repetition-penalty 1.2",
    )
    s.add_argument("run", help="run directory")
    s.add_argument(
        "-n", type=int, help="number of samples (default: 64 images; 1 text, or 5 with --out)"
    )
    s.add_argument(
        "--out",
        help="images: a .png grid, .npz or folder/; text: .txt or .jsonl (without --out, text "
        "streams to the terminal)",
    )
    s.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    s.add_argument(
        "--weights",
        default="auto",
        choices=["auto", "ema", "model", "best"],
        help="which weights: auto = EMA if kept, else latest (default)",
    )
    s.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    s.add_argument(
        "--interpolate",
        type=int,
        metavar="K",
        help="write -n latent interpolations of K steps each (latent families)",
    )
    _add_controls(s)
    s.set_defaults(func=cmd_sample)


BATCH = 250  # images drawn at once: memory stays bounded whatever -n is
TEXT_BATCH = 50


def cmd_sample(args, overrides: list[str]) -> int:
    import torch

    from genlab.run import load
    from genlab.sample import GRID_MAX, check_image_output, save_image_batches

    check_counts(args, n=(1, None), seed=(0, 2**63 - 1), interpolate=(2, 1000))
    if args.out is not None and args.n is None and Path(args.out).suffix in (".txt", ".jsonl"):
        args.n = 5
    run = load(args.run, weights=args.weights, device=_device(args.device))
    controls = run.model.check_controls(_controls(args))
    g = torch.Generator(device=run.model.device).manual_seed(args.seed)
    if run.model.data_kind == "text":
        return _sample_text(args, run, controls, g)
    if args.out is None:
        raise GenlabError("--out is needed for images: a .png grid, an .npz, or a folder/")
    n = args.n or 64
    labels = None
    if args.interpolate:
        if not run.model.has_latent:
            raise GenlabError(f"the {run.config.family} family has no latent space to interpolate")
        if n * args.interpolate > GRID_MAX:
            raise GenlabError(
                f"-n {n} x --interpolate {args.interpolate} is more than {GRID_MAX:,} images; "
                "lower either"
            )
        check_image_output(args.out, n * args.interpolate)
        x = run.model.interpolate(n, args.interpolate, generator=g, **controls)
        batches, count, nrow = iter([(x, None)]), len(x), args.interpolate
    else:
        check_image_output(args.out, n)  # before any sampling
        conditional = run.info.num_classes and getattr(run.config.model, "conditional", False)
        if conditional:
            labels = controls.get("label") or list(range(run.info.num_classes))
            labels = labels if isinstance(labels, list) else [labels]
        batches, count = _image_batches(run, n, g, controls, labels), n
        nrow = run.info.num_classes if labels and args.label is None else None
    path = save_image_batches(batches, args.out, count, nrow=nrow)
    print(f"genlab: wrote {count} samples to {path}", file=sys.stderr)
    return 0


def _image_batches(run, n: int, g, controls: dict, labels: list[int] | None):
    """(images, labels) of ``n`` samples, BATCH at a time; ``labels`` (conditional models)
    are taken in turn, sample i asking for labels[i % len(labels)]."""
    from tqdm.auto import tqdm

    with tqdm(total=n, desc="sampling", unit="img", file=sys.stderr, delay=2.0) as bar:
        for start in range(0, n, BATCH):
            size = min(BATCH, n - start)
            c = dict(controls)
            y = None
            if labels is not None:
                y = [labels[i % len(labels)] for i in range(start, start + size)]
                c["label"] = y
            yield run.model.sample(size, generator=g, **c), y
            bar.update(size)


def _sample_text(args, run, controls: dict, g) -> int:
    """Text: stream each sample to the terminal, or write them to --out as they come."""
    from genlab.sample import TEXT_RULE, save_texts

    if args.interpolate:
        raise GenlabError(f"the {run.config.family} family has no latent space to interpolate")
    n, prompt = args.n or 1, controls["prompt"]
    run.model.encode_prompt(prompt)  # a prompt it cannot encode fails before anything is shown
    if args.out is None:  # stream: the prompt, then each piece as it is drawn
        for i in range(n):
            if i:
                print(f"\n{TEXT_RULE}")
            print(prompt, end="", flush=True)
            run.model.sample(
                1,
                generator=g,
                on_text=lambda _, piece: print(piece, end="", flush=True),
                **controls,
            )
            print(flush=True)
        return 0

    def texts():  # TEXT_BATCH at a time, each written as soon as it is drawn
        for start in range(0, n, TEXT_BATCH):
            yield from run.model.sample(min(TEXT_BATCH, n - start), generator=g, **controls)

    meta = {"seed": args.seed, "run": str(args.run), "weights": run.weights}
    meta["controls"] = {k: v for k, v in controls.items() if k != "prompt"}
    path = save_texts(texts(), args.out, prompt=prompt, meta=meta)
    print(f"genlab: wrote {n} samples to {path}", file=sys.stderr)
    return 0
