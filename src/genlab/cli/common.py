"""What several commands share: the sampling controls (sample, eval), the feature
extractor options (eval, compare) and the device choice."""

from __future__ import annotations

import argparse

CONTROLS = [  # (flag, type, help): one name for each knob across all families
    ("temperature", float, "prior / softmax temperature (lower: safer, less diverse)"),
    ("truncation", float, "truncation of the latent draw (GAN)"),
    ("guidance", float, "classifier-free guidance scale (diffusion)"),
    ("sampler", str, "sampler (diffusion: dpm++2m, the default; ddim; ddpm)"),
    ("sampling_steps", int, "number of sampling steps (diffusion)"),
    ("prompt", str, "text models: the text to continue; txt2img: what to draw"),
    (
        "negative_prompt",
        str,
        "what the image should not be: guidance steers away from it (txt2img)",
    ),
    ("max_new_tokens", int, "tokens to generate (text models)"),
    ("top_k", int, "keep the k most likely tokens (text models)"),
    ("top_p", float, "nucleus sampling mass (text models)"),
    ("min_p", float, "drop tokens below min_p x the top probability (text models)"),
    (
        "repetition_penalty",
        float,
        "divide the logits of tokens already in the text by this (text models; 1.0 = off)",
    ),
    ("no_repeat_ngram", int, "never repeat an n-gram of this many tokens (text models)"),
]


def _labels(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--label takes integers like 3 or 0,1,2, not {text!r}"
        ) from None


def _add_controls(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--label",
        type=_labels,
        help="class label(s) for conditional models, e.g. "
        "3 or 0,1,2 (default: cycle through the classes)",
    )
    for name, typ, hlp in CONTROLS:
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=typ, help=hlp)
    p.add_argument(
        "--stop",
        action="append",
        metavar="TEXT",
        help="end a text sample where TEXT appears, e.g. --stop $'\\n\\n' (repeatable)",
    )


def _controls(args) -> dict:
    """The sampling controls given on the command line (None: not given)."""
    c = {name: getattr(args, name) for name, _, _ in CONTROLS}
    c["label"], c["stop"] = args.label, args.stop
    return {k: v for k, v in c.items() if v is not None}


def _add_extractor(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--extractor",
        default="classifier",
        choices=["classifier", "inception"],
        help="features for FID, KID, precision/recall, density/coverage: the domain "
        "classifier trained on the data set (fast; the default) or the standard FID Inception "
        "network (comparable with papers; about 4 images/s on a 2-core CPU, so the real "
        "split's features are cached after the first run) (default: %(default)s)",
    )
    p.add_argument(
        "--inception",
        metavar="PATH",
        help="with --extractor inception: the TorchScript file (default: $GENLAB_INCEPTION, "
        "else the cache, $GENLAB_DATA_MIRROR/inception/, or the official download; see "
        "genlab data fetch inception)",
    )


def _device(name: str) -> str:
    from genlab.training.distributed import pick_device

    return str(pick_device(name))


def check_counts(args, **limits: tuple[int, int | None]) -> None:
    """One line (exit status 2) for a count flag outside [low, high]: argparse takes any
    int. ``limits``: argument name -> (low, high or None)."""
    from genlab.errors import GenlabError

    for name, (low, high) in limits.items():
        v = getattr(args, name, None)
        if v is None:
            continue
        if v < low or (high is not None and v > high):
            flag = "-n" if name == "n" else f"--{name.replace('_', '-')}"
            want = f"at least {low:,}" if high is None else f"between {low:,} and {high:,}"
            raise GenlabError(f"{flag} must be {want}, not {v}")
