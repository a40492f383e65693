"""`genlab sample`: generate images (a grid, .npz or a folder), text, or sound (WAV files) from
a run; `--say TEXT` speaks a text with a digit-conditioned audio run."""

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
        "--out streams to the terminal. A run trained on sound makes spectrograms that "
        "Griffin-Lim turns into sound (--gl-iters): a path ending in / gets one 16-bit WAV "
        "per sample, .wav one sample, .npz arrays (audio: float32 N,samples; sample_rate; x: "
        "the uint8 spectrograms; y: labels), .png a spectrogram grid (low frequencies at the "
        "bottom); --say TEXT --out NAME.wav speaks TEXT, one generated clip per character "
        "(a class of the run), silence trimmed, 0.15 s between. Samples are drawn 250 at a "
        "time (text: 50) and written as they come, so a folder/, an .npz or a text file takes "
        "any -n; a .png grid takes at most 10,000. A txt2img run draws what --prompt says "
        "(-n images of it), or each line of --prompts FILE (-n images a line, one grid row "
        "each); every PNG it writes carries its provenance (run, weights, seed, controls, "
        "prompt) in its text chunks.",
        epilog="examples:\n  genlab sample runs/vae -n 64 --out grid.png "
        "--temperature 0.8\n  genlab sample runs/cvae -n 100 --out s.npz --label 3\n"
        "  genlab sample runs/vae --interpolate 10 -n 8 --out interp.png\n"
        '  genlab sample runs/gpt --prompt "Once upon a time" --temperature 0.8 --top-p 0.9\n'
        '  genlab sample runs/gpt --prompt "Once upon a time" -n 5 --out stories.jsonl '
        "--max-new-tokens 300 --repetition-penalty 1.2\n"
        "  genlab sample runs/fsdd -n 10 --label 7 --out sevens/      # sevens/000000.wav, ...\n"
        "  genlab sample runs/fsdd -n 1 --label 3 --out three.wav --gl-iters 100\n"
        "  genlab sample runs/fsdd -n 40 --out digits.png             # spectrograms\n"
        "  genlab sample runs/fsdd --say 2026 --out 2026.wav\n"
        '  genlab sample runs/t2i --prompt "red apple, twitter style" -n 16 --guidance 4 '
        "--out apples.png\n"
        "  genlab sample runs/t2i --prompts prompts.txt -n 8 --out rows.png   # a row a prompt\n"
        '  genlab sample runs/t2i --prompt "santa claus" --negative-prompt "google style" '
        "-n 8 --out santas/",
    )
    s.add_argument("run", help="run directory")
    s.add_argument(
        "-n", type=int, help="number of samples (default: 64 images; 1 text, or 5 with --out)"
    )
    s.add_argument(
        "--out",
        help="images: a .png grid, .npz or folder/; text: .txt or .jsonl (without --out, text "
        "streams to the terminal); sound: folder/ (WAVs), .wav (one sample), .npz or .png",
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
    s.add_argument(
        "--say",
        metavar="TEXT",
        help="sound runs conditioned on characters (digits): speak TEXT, one generated clip "
        "per character, into the one --out NAME.wav",
    )
    s.add_argument(
        "--gl-iters",
        type=int,
        metavar="N",
        help="sound runs: Griffin-Lim iterations rebuilding the phase, 0 to 1000 (more: "
        "cleaner and slower; default: 32)",
    )
    s.add_argument(
        "--prompts",
        metavar="FILE",
        help="txt2img runs: a text file of prompts, one a line (blank lines skipped); -n "
        "images of each (default 8), one grid row a prompt",
    )
    _add_controls(s)
    s.set_defaults(func=cmd_sample)


BATCH = 250  # images drawn at once: memory stays bounded whatever -n is
TEXT_BATCH = 50


def cmd_sample(args, overrides: list[str]) -> int:
    import torch

    from genlab.outputs.audio import GL_ITERS_MAX
    from genlab.outputs.images import check_image_output, save_image_batches
    from genlab.run import load

    check_counts(
        args, n=(1, None), seed=(0, 2**63 - 1), interpolate=(2, 1000), gl_iters=(0, GL_ITERS_MAX)
    )
    if args.out is not None and args.n is None and Path(args.out).suffix in (".txt", ".jsonl"):
        args.n = 5
    if args.say is not None:
        _check_say_args(args)
    run = load(args.run, weights=args.weights, device=_device(args.device))
    audio = getattr(run.info, "audio", None)
    if not audio:
        for flag, given in (("--gl-iters", args.gl_iters), ("--say", args.say)):
            if given is not None:
                raise GenlabError(
                    f"{flag} is for runs trained on sound; {args.run} makes "
                    f"{'text' if run.model.data_kind == 'text' else 'images'}"
                )
    if args.say is not None:
        return _say(args, run)
    given = _controls(args)
    rows = _prompt_rows(args, run, given)
    controls = run.model.check_controls(given)
    g = torch.Generator(device=run.model.device).manual_seed(args.seed)
    if run.model.data_kind == "text":
        return _sample_text(args, run, controls, g)
    if audio:
        return _sample_audio(args, run, controls, g)
    if args.out is None:
        raise GenlabError("--out is needed for images: a .png grid, an .npz, or a folder/")
    n = args.n or (8 if args.prompts else 64)
    if rows is not None:  # a row of n images a prompt
        controls["prompt"] = [p for p in rows for _ in range(n)]
        n = len(controls["prompt"])
    batches, count, nrow = _batches_to_write(args, run, n, g, controls, check_image_output)
    if rows is not None:
        nrow = args.n or 8
    meta = _provenance(args, run, controls, count) if run.model.takes_prompt else None
    path = save_image_batches(batches, args.out, count, nrow=nrow, meta=meta)
    print(f"genlab: wrote {count} samples to {path}", file=sys.stderr)
    return 0


def _prompt_rows(args, run, given: dict) -> list[str] | None:
    """The prompts of --prompts FILE (None without it), after the checks that a run that
    takes no prompt refuses --prompt and --prompts in one line, and one that does needs
    one of them."""
    takes = run.model.takes_prompt
    family = run.config.family
    if not takes and run.model.data_kind != "text":
        for flag, v in (("--prompts", args.prompts), ("--prompt", given.get("prompt"))):
            if v is not None:
                cond = getattr(run.config.model, "conditional", False)
                draws = "one of its classes (choose with --label)" if cond else "no condition"
                raise GenlabError(
                    f"{flag}: {args.run} is a {family} run that draws {draws}; prompts are "
                    "for runs of a family that takes them (txt2img)"
                )
    if not takes:
        if args.prompts is not None:
            raise GenlabError(
                f"--prompts is for txt2img runs; {args.run} is a {family} text run: give "
                "the text to continue with --prompt"
            )
        return None
    if args.prompts is not None and given.get("prompt") is not None:
        raise GenlabError("give --prompt or --prompts FILE, not both")
    if args.prompts is None:
        if given.get("prompt") is None:
            raise GenlabError(
                f"{args.run} draws what a prompt says: give --prompt TEXT (e.g. "
                '--prompt "red apple, twitter style") or --prompts FILE'
            )
        return None
    return _read_prompts(args.prompts)


def _read_prompts(path: str) -> list[str]:
    """The prompts of a file, one a line; blank lines are skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GenlabError(f"--prompts {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GenlabError(f"--prompts {path}: cannot be read as UTF-8 text ({e})") from None
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise GenlabError(f"--prompts {path} holds no prompt (one a line)")
    if len(prompts) > 1000:
        raise GenlabError(f"--prompts {path} holds {len(prompts):,} prompts; at most 1,000")
    return prompts


def _provenance(args, run, controls: dict, n: int):
    """``meta(i)``: what PNG i of a folder carries (its own prompt); ``meta(None)``: the
    grid's (every prompt, in order). A default guidance is written as its value."""
    controls = dict(controls)
    if controls.get("guidance") is None and hasattr(run.model, "default_guidance"):
        controls["guidance"] = run.model.default_guidance
    run_name = str(args.run)

    def meta(i: int | None) -> dict:
        c = dict(controls)
        for key in ("prompt", "negative_prompt"):
            v = c.get(key)
            if isinstance(v, list):
                c[key] = v[i % len(v)] if i is not None else list(dict.fromkeys(v))
        how = {"seed": args.seed, "mode": "sample", "n": n, "controls": c}
        if i is not None:
            how["index"] = i
        return run.provenance(run_name, **how)

    return meta


def _batches_to_write(args, run, n: int, g, controls: dict, check_output):
    """(batches, count, nrow) for --out, images or sound: ``n`` samples (a conditional run's
    labels in turn, a column a class unless --label is given), or with --interpolate ``n``
    interpolations; ``check_output`` accepts --out for that many before anything is drawn."""
    if args.interpolate:
        return _interpolations(args, run, n, g, controls, check_output)
    check_output(args.out, n)  # before any sampling
    labels = _labels(run, args, controls)
    nrow = run.info.num_classes if labels and args.label is None else None
    return _image_batches(run, n, g, controls, labels), n, nrow


def _interpolations(args, run, n: int, g, controls: dict, check_output):
    """(batches, count, nrow) of ``n`` latent interpolations of --interpolate steps each,
    after ``check_output`` (images' or sound's) has accepted --out for that many."""
    from genlab.outputs.images import GRID_MAX

    if not run.model.has_latent:
        raise GenlabError(f"the {run.config.family} family has no latent space to interpolate")
    if n * args.interpolate > GRID_MAX:
        raise GenlabError(
            f"-n {n} x --interpolate {args.interpolate} is more than {GRID_MAX:,} samples; "
            "lower either"
        )
    check_output(args.out, n * args.interpolate)
    x = run.model.interpolate(n, args.interpolate, generator=g, **controls)
    return iter([(x, None)]), len(x), args.interpolate


def _labels(run, args, controls: dict) -> list[int] | None:
    """The labels conditional samples take in turn: --label's, else every class."""
    if not (run.info.num_classes and getattr(run.config.model, "conditional", False)):
        return None
    labels = controls.get("label") or list(range(run.info.num_classes))
    return labels if isinstance(labels, list) else [labels]


def _sample_audio(args, run, controls: dict, g) -> int:
    """Sound: spectrogram images turned into WAVs (or arrays, or a spectrogram grid)."""
    from genlab.data.spectrogram import Spectrogram
    from genlab.outputs.audio import GL_ITERS, check_audio_output, save_audio_batches

    if args.out is None:
        raise GenlabError(
            "--out is needed for sound: a folder/ (one WAV per sample), a .wav (one sample), "
            "an .npz (arrays) or a .png (spectrograms); or --say TEXT --out NAME.wav"
        )
    spec = Spectrogram.from_dict(run.info.audio)
    n = args.n or (1 if Path(args.out).suffix.lower() == ".wav" else 64)
    batches, count, nrow = _batches_to_write(args, run, n, g, controls, check_audio_output)
    iters = GL_ITERS if args.gl_iters is None else args.gl_iters
    path = save_audio_batches(
        batches, args.out, count, spec, gl_iters=iters, seed=args.seed, nrow=nrow
    )
    what = "spectrogram" if path.suffix.lower() == ".png" else "clip"
    what += "" if count == 1 else "s"
    print(
        f"genlab: wrote {count} {what} ({spec.samples / spec.sample_rate:.3g} s at "
        f"{spec.sample_rate:,} Hz) to {path}",
        file=sys.stderr,
    )
    return 0


def _check_say_args(args) -> None:
    """--say's companions, refused in one line before the run is loaded."""
    out = args.out or ""
    if not out.lower().endswith(".wav"):
        raise GenlabError(
            f"--say writes one WAV: give --out NAME.wav{f', not {out}' if out else ''}"
        )
    for flag, given in (("-n", args.n), ("--interpolate", args.interpolate),
                        ("--label", args.label)):
        if given is not None:
            raise GenlabError(f"--say draws one clip per character of its text: drop {flag}")


def _say(args, run) -> int:
    from genlab.outputs.audio import GL_ITERS, write_wav
    from genlab.speech import GAP, sample_rate, say

    iters = GL_ITERS if args.gl_iters is None else args.gl_iters
    wave = say(run, args.say, seed=args.seed, gl_iters=iters, controls=_controls(args))
    rate = sample_rate(run)
    path = write_wav(args.out, wave, rate)
    print(
        f"genlab: said {args.say!r} in {len(wave) / rate:.2f} s (one clip a character, "
        f"{GAP} s between) to {path}",
        file=sys.stderr,
    )
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
    from genlab.outputs.text import TEXT_RULE, save_texts

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
