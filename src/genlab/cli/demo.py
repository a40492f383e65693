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
        "--prompts",
        action="store_true",
        help="instead: from words to pictures. A text-to-image diffusion model learns the "
        "emoji set (Google's and Twitter's drawings with their names; fetched, checked image "
        "by image), draws test prompts it never saw (a known emoji in a style, or a skin "
        "tone, not seen for it) beside the real images, scores them beside the real images "
        "and shuffled prompts, and writes a report (--out default runs/demo-prompts)",
    )
    m.add_argument(
        "--minutes",
        type=float,
        help="--audio and --prompts: training time in minutes (default: 20 for --audio, "
        "as the README's figures, the whole demo about 2 minutes more; 3 for --prompts, a "
        "first look, where the README's figures take 40)",
    )
    m.add_argument("--device", default="auto")
    m.set_defaults(func=cmd_demo)


def cmd_demo(args, overrides: list[str]) -> int:
    from genlab.errors import GenlabError

    if args.audio and args.prompts:
        raise GenlabError("give --audio or --prompts, not both: they are two demos")
    if args.minutes is not None and not (args.audio or args.prompts):
        raise GenlabError("--minutes is for --audio and --prompts; the main demo counts steps")
    if args.minutes is not None and not 0.1 <= args.minutes <= 24 * 60:
        raise GenlabError(f"--minutes must be between 0.1 and 1,440, not {args.minutes:g}")
    if args.audio:
        from genlab.demo_audio import demo_audio

        out = "runs/demo-audio" if args.out == "runs/demo" else args.out
        demo_audio(Path(out), minutes=args.minutes or 20.0, device=args.device)
        return 0
    if args.prompts:
        from genlab.demo_prompts import demo_prompts

        out = "runs/demo-prompts" if args.out == "runs/demo" else args.out
        demo_prompts(Path(out), minutes=args.minutes or 3.0, device=args.device)
        return 0
    from genlab.demo import demo

    demo(Path(args.out), steps=args.steps, device=args.device)
    return 0
