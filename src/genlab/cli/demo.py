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
    m.add_argument(
        "--audio",
        action="store_true",
        help="instead: the demo you can hear. A digit-conditioned model learns the Free Spoken "
        "Digit Dataset (fetched, checked recording by recording), writes one clip per digit "
        "and says a number, is measured beside real clips and beside real clips through "
        "Griffin-Lim, and a report plays them (--out default runs/demo-audio)",
    )
    m.add_argument(
        "--minutes",
        type=float,
        default=20.0,
        help="--audio: training time in minutes (default: %(default)s, as the README's "
        "figures; the whole demo takes about 2 minutes more)",
    )
    m.add_argument("--device", default="auto")
    m.set_defaults(func=cmd_demo)


def cmd_demo(args, overrides: list[str]) -> int:
    if args.audio:
        from genlab.cli.common import check_counts
        from genlab.demo_audio import demo_audio

        check_counts(args, minutes=(0.1, 24 * 60))
        out = "runs/demo-audio" if args.out == "runs/demo" else args.out
        demo_audio(Path(out), minutes=args.minutes, device=args.device)
        return 0
    from genlab.demo import demo

    demo(Path(args.out), steps=args.steps, device=args.device)
    return 0
