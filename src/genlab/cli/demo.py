"""`genlab demo`: train, sample, evaluate and compare the demo runs (see genlab.demo)."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    m = sub.add_parser(
        "demo",
        help="train a conditional VAE, GAN and diffusion model on the embedded 8x8 digits and "
        "a small character-level language model, sample, evaluate, compare them in an HTML "
        "report (about 2 to 3 minutes on 2 CPU cores)",
        description="Train a conditional VAE, GAN and diffusion model on the embedded 8x8 "
        "digits and a character-level LSTM on Tiny Shakespeare (where it can be fetched; "
        "else on the embedded Grimms' Fairy Tales); sample, evaluate each beside the "
        "real-vs-real floor (text: beside real held-out text, with the share of a sample's "
        "words the training text uses), and write one HTML report. About 2 to 3 minutes "
        "on 2 CPU cores.",
    )
    m.add_argument(
        "--out",
        default="runs/demo",
        help="folder for the runs (vae/, gan/, diffusion/ and the text run) and report.html "
        "(default: %(default)s)",
    )
    m.add_argument("--steps", type=int, help="training steps of every run (a quick look)")
    m.add_argument("--device", default="auto")
    m.set_defaults(func=cmd_demo)


def cmd_demo(args, overrides: list[str]) -> int:
    from genlab.demo import demo

    demo(Path(args.out), steps=args.steps, device=args.device)
    return 0
