"""`genlab eval`: score a run (or an .npz of samples) and print the figures as a table."""

from __future__ import annotations

from pathlib import Path

from genlab.cli.common import _add_controls, _add_extractor, _controls, _device, check_counts
from genlab.errors import GenlabError


def add_parser(sub) -> None:
    e = sub.add_parser(
        "eval",
        help="measure a run on its test split",
        description="Score a run: generated samples against the test split with the domain "
        "classifier's features (or the FID Inception network: --extractor inception), each "
        "figure beside the real-vs-real floor and with its "
        "protocol; optionally the family's likelihood (VAE: IWAE NLL). Writes one record per "
        "protocol under RUN/eval/ and the latest as RUN/eval/metrics.json.",
    )
    e.add_argument("run", nargs="?", help="run directory")
    e.add_argument(
        "--samples",
        help="score samples made by any tool instead of a run: an .npz "
        "with x (uint8 N,H,W,C) and optionally y (requested labels); needs --data "
        "and --out. For a sound data set, x holds spectrogram images (heard through "
        "Griffin-Lim) or audio holds waveforms (float N,samples at the data set's rate, or "
        "at sample_rate if the file holds one)",
    )
    e.add_argument("--data", help="with --samples: the real data set (name or path)")
    e.add_argument("--out", help="with --samples: where to write the JSON record")
    e.add_argument(
        "--metrics",
        help="samples (images: FID, KID, precision, recall, density, coverage, IS, class "
        "consistency, MS-SSIM among samples, copy share, each beside the real-vs-real floor; "
        "text: distinct-1/2/3, self-BLEU, repetition, n-gram novelty and the longest span "
        "copied from the training text, beside real held-out text) and/or nll (the family's "
        "likelihood; text: validation perplexity and bits per character), comma-separated "
        "(default: samples for images, samples,nll for text)",
    )
    e.add_argument(
        "--n",
        type=int,
        help="generated samples (default: 1000 images, 100 texts); a run that takes prompts: "
        "the test captions prompted, a seeded subset (default: all)",
    )
    e.add_argument(
        "--per-prompt",
        type=int,
        default=1,
        help="a run that takes prompts: images generated for each test caption, with seeds "
        "seed, seed+1, ... (2 or more also measure diversity) (default: %(default)s)",
    )
    e.add_argument(
        "--guidance-sweep",
        metavar="G1,G2,...",
        help="a run that takes prompts: instead of one evaluation, sweep the guidance over "
        "these values and print clip score, retrieval top-5 and diversity at each (--n "
        "captions, default 200; --per-prompt, default 2)",
    )
    _add_extractor(e)
    e.add_argument(
        "--gl-iters",
        type=int,
        default=32,
        help="sound: Griffin-Lim iterations that turn generated spectrograms into the "
        "waveforms measured (default: %(default)s)",
    )
    e.add_argument(
        "--k", type=int, default=1000, help="nll: importance samples (default: %(default)s)"
    )
    e.add_argument("--nll-n", type=int, help="nll: the first N test images (default: all)")
    e.add_argument("--weights", default="auto", choices=["auto", "ema", "model", "best"])
    e.add_argument("--device", default="auto")
    e.add_argument("--seed", type=int, default=0, help="seed of sampling, subsets and noise")
    _add_controls(e)
    e.set_defaults(func=cmd_eval)


def cmd_eval(args, overrides: list[str]) -> int:
    from genlab.evaluate import evaluate
    from genlab.run import load

    check_counts(
        args,
        n=(1, 10_000_000),
        k=(1, 1_000_000),
        nll_n=(1, None),
        seed=(0, 2**63 - 1),
        gl_iters=(0, 1000),
        per_prompt=(1, 1000),
    )
    if args.samples:
        return _eval_samples_file(args)
    if not args.run:
        raise GenlabError("give a run directory, or --samples F.npz --data D --out M.json")
    run = load(args.run, weights=args.weights, device=_device(args.device))
    if getattr(run.model, "takes_prompt", False):
        return _eval_prompts(run, args)
    if args.guidance_sweep:
        raise GenlabError("--guidance-sweep is for runs that take prompts (txt2img)")
    text = run.model.data_kind == "text"
    metrics = args.metrics or ("samples,nll" if text else "samples")
    r = evaluate(
        run,
        metrics=[m for m in metrics.split(",") if m],
        n=args.n or (100 if text else 1000),
        k=args.k,
        nll_n=args.nll_n,
        seed=args.seed,
        controls=_controls(args),
        extractor=args.extractor,
        inception=args.inception,
        gl_iters=args.gl_iters,
    )
    _print_text_table(r) if text else _print_table(r)
    print(f"recorded in {Path(args.run) / 'eval'}")
    return 0


def _eval_prompts(run, args) -> int:
    """A run that takes prompts: the prompt protocol, or a guidance sweep, printed."""
    from genlab.evaluate import cached_guidance_sweep, evaluate

    if args.metrics and args.metrics != "samples":
        raise GenlabError("a run that takes prompts is evaluated on --metrics samples only")
    if args.guidance_sweep:
        values = _floats(args.guidance_sweep)
        sweep = cached_guidance_sweep(
            run,
            values,
            n=args.n or 200,
            per_prompt=max(args.per_prompt, 2),
            seed=args.seed,
            controls=_controls(args),
        )
        _print_sweep_table(sweep)
    else:
        r = evaluate(
            run,
            metrics=["samples"],
            n=args.n,
            seed=args.seed,
            controls=_controls(args),
            per_prompt=args.per_prompt,
        )
        _print_prompt_table(r)
    print(f"recorded in {Path(args.run) / 'eval'}")
    return 0


def _floats(text: str) -> list[float]:
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise GenlabError(f"--guidance-sweep takes numbers like 1,2,4,8, not {text!r}") from None
    if not values:
        raise GenlabError("--guidance-sweep needs at least one value, e.g. 1,2,4,8")
    return values


def _eval_samples_file(args) -> int:
    from genlab.data import DataConfig, load_data
    from genlab.metrics.protocol import score_samples
    from genlab.metrics.sample_files import load_samples, load_waves
    from genlab.training.checkpoint import write_json

    if not (args.data and args.out):
        raise GenlabError("--samples needs --data (the real data set) and --out (a .json)")
    waves = _holds(args.samples, "audio")
    if not waves:
        x, y = load_samples(args.samples)  # a bad file is refused before any data loads
    data = DataConfig(name=args.data)
    splits = load_data(data, "train"), load_data(data, "test")
    if waves:
        if splits[1].audio is None:
            raise GenlabError(
                f"{args.samples} holds waveforms (audio) but {args.data} is not a sound data "
                "set; give --data a folder of .wav files or fsdd"
            )
        x, y = load_waves(args.samples, splits[1].audio)
    r = score_samples(
        x,
        y,
        data,
        seed=args.seed,
        extractor=args.extractor,
        inception=args.inception,
        splits=splits,
        griffin_lim_iters=None if waves else args.gl_iters,
    )
    r["protocol"]["samples"] = str(args.samples)
    write_json(Path(args.out), r)
    _print_table(r)
    print(f"recorded in {args.out}")
    return 0


def _holds(path, name: str) -> bool:
    """Whether the .npz at ``path`` holds an array ``name`` (False when unreadable)."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            return name in z.files
    except (OSError, ValueError):
        return False


def _print_table(r: dict) -> None:
    floor, ceiling = r.get("floor", {}), r.get("ceiling")
    print(f"{'metric':<18}{'value':>10}{'floor':>10}" + (f"{'ceiling':>10}" if ceiling else ""))
    from genlab.metrics.protocol import SAMPLE_METRICS

    cell = lambda v: f"{v:>10.4g}" if v is not None else f"{'':>10}"  # noqa: E731
    for key in (*SAMPLE_METRICS, "iwae_nll", "bits_per_dim"):
        if key in r:
            f = floor.get(key)
            row = f"{key:<18}{r[key]:>10.4g}" + (cell(f) if f is not None or ceiling else "")
            print(row + (cell(ceiling.get(key)) if ceiling else ""))
    if "fid_ci" in r:
        lo, hi = r["fid_ci"]
        ex = r["protocol"]["extractor"]
        about = (
            f"test accuracy {ex['test_accuracy']:.2%}"
            if "test_accuracy" in ex
            else ("standard weights" if ex.get("standard") else "NON-standard weights")
            + f", sha256 {ex['weights_sha256'][:12]}"
        )
        print(
            f"FID 95% interval [{lo:.4g}, {hi:.4g}]; floor: a train subset of the same n vs "
            f"the test split; extractor: {ex['name']} ({about})"
        )
    sound = r.get("protocol", {}).get("audio")
    if sound:
        iters = sound["griffin_lim_iters"]
        acc = sound.get("ceiling_test_accuracy")
        clf = r["protocol"].get("class_probabilities") or {}
        print(
            (
                f"sound: samples heard through Griffin-Lim ({iters} iterations)"
                if iters is not None
                else "sound: waveforms"
            )
            + "; ceiling: the floor's training clips through the transform and Griffin-Lim "
            f"({sound['ceiling_griffin_lim_iters']} iterations)"
            + (
                f"; classifier test accuracy {clf['test_accuracy']:.2%}, through Griffin-Lim "
                f"{acc:.2%}"
                if acc is not None and "test_accuracy" in clf
                else ""
            )
        )


TEXT_ROWS = (  # (key, what it says)
    ("val_loss", "validation loss, nats/token"),
    ("perplexity", "validation perplexity"),
    ("bits_per_char", "validation bits/character"),
    ("known_words", "known words (share in training text)"),
    ("distinct_1", "distinct-1 (unique words)"),
    ("distinct_2", "distinct-2 (higher: more varied)"),
    ("distinct_3", "distinct-3"),
    ("self_bleu", "self-BLEU-4 (higher: samples alike)"),
    ("repetition_rate", "repeated 4-grams within a sample"),
    ("novelty_3", "new word 3-grams vs training text"),
    ("novelty_4", "new word 4-grams vs training text"),
    ("copied_span_max", "longest copied span, words (max)"),
    ("copied_span_mean", "longest copied span, words (mean)"),
)


def _print_text_table(r: dict) -> None:
    ref = r.get("reference", {})
    print(f"{'metric':<40}{'value':>10}{'real text':>11}")
    for key, what in TEXT_ROWS:
        if key in r:
            f = ref.get(key)
            print(f"{what:<40}{r[key]:>10.4g}" + (f"{f:>11.4g}" if f is not None else ""))
    p = r["protocol"]
    if "n_generated" in p:
        print(
            f"{p['n_generated']} samples (seed {p['seed']}, about {r['mean_words']:.0f} words "
            f"each) vs {p['n_generated']} pieces of real validation text of the same lengths; "
            f"first sample:\n  {r['samples_preview'][0][:300]!r}"
        )


SWEEP_COLUMNS = (("clip_score", False), ("top5", True), ("diversity", False))
PROMPT_COLUMNS = (  # (key, heading, as a share)
    ("clip_score", "CLIP", False),
    ("top1", "top-1", True),
    ("top5", "top-5", True),
    ("fid", "FID(judge)", False),
    ("style_acc", "style", True),
    ("tone_acc", "tone", True),
    ("copy_share", "copies", True),
    ("other_vendor", "other-vendor", True),
)


def _figure(v, share: bool, width: int) -> str:
    if v is None:
        return f"{'-':>{width}}"
    return f"{v:>{width}.1%}" if share else f"{v:>{width}.4g}"


def _print_prompt_table(r: dict) -> None:
    """Rows all / part a / part b, each as generated, floor (the real test images) and
    shuffled (the generations against permuted prompts); the judges on the last lines."""
    widths = [max(8, len(h) + 1) for _, h, _ in PROMPT_COLUMNS]
    print(
        f"{'prompts':<10}{'':<11}"
        + "".join(f"{h:>{w}}" for (_, h, _), w in zip(PROMPT_COLUMNS, widths))
    )
    for group, kinds in r["table"].items():
        for k, (kind, figures) in enumerate(kinds.items()):
            name = ("all" if group == "all" else f"part {group}") if k == 0 else ""
            cells = (
                _figure(figures.get(key), share, w)
                for (key, _, share), w in zip(PROMPT_COLUMNS, widths)
            )
            print(f"{name:<10}{kind:<11}" + "".join(cells))
    p = r["protocol"]
    gen = r["table"]["all"]["generated"]
    lo, hi = gen.get("clip_score_ci") or (None, None)
    div = gen.get("diversity")
    print(
        f"{p['n_prompts']} test captions x {p['per_prompt']} (seed {p['seed']})"
        + (f"; CLIP score 95% interval [{lo:.4g}, {hi:.4g}]" if lo is not None else "")
        + (
            f"; diversity {div:.3g} (real images of different captions {r['diversity_reference']:.3g})"
            if div is not None
            else ""
        )
        + "; intervals of every figure in the record"
    )
    j = p["judge"]
    t = (j.get("test_retrieval") or {}).get("all") or {}
    about = [
        f"judge {j['weights_sha256'][:12]} (real test pairs: top-1 {t.get('top1', 0):.1%}, top-5 {t.get('top5', 0):.1%})"
    ]
    for name in ("style", "tone"):
        c = p.get(f"{name}_classifier")
        if c:
            about.append(f"{name} classifier {c['test_accuracy']:.1%} on real test")
    print("; ".join(about) + "; copies: pixel-space nearest training image")


def _with_interval(figures: dict, key: str, share: bool) -> str:
    """``figures[key]`` and its 95% interval, 22 characters wide ("-" when not measured)."""
    v, ci = figures.get(key), figures.get(f"{key}_ci")
    if v is None or ci is None:
        return f"{'-':>22}"
    fmt = (lambda x: f"{x:.1%}") if share else (lambda x: f"{x:.3g}")
    return f"{fmt(v)} [{fmt(ci[0])}, {fmt(ci[1])}]".rjust(22)


def _print_sweep_table(sweep: dict) -> None:
    """One row per guidance value: clip score, retrieval top-5 and diversity with their
    95% intervals (all prompts), then the floor and the shuffled prompts."""
    print(f"{'guidance':<10}{'CLIP [95%]':>22}{'top-5 [95%]':>22}{'diversity [95%]':>22}")
    rows = [(f"{p['guidance']:g}", p["all"]) for p in sweep["points"]]
    rows += [("floor", sweep["floor"]["all"]), ("shuffled", sweep["shuffled"][0]["all"])]
    for name, f in rows:
        cells = [_with_interval(f, k, share) for k, share in SWEEP_COLUMNS]
        print(f"{name:<10}" + "".join(cells))
    p = sweep["protocol"]
    print(
        f"{p['n_prompts']} test captions x {p['per_prompt']} (seed {p['seed']}); floor: the real "
        f"test images; shuffled: guidance {sweep['values'][0]:g} against permuted prompts; "
        f"diversity of real images of different captions {sweep['diversity_reference']:.3g}"
    )
