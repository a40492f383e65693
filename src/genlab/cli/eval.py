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
    e.add_argument("--n", type=int, help="generated samples (default: 1000 images, 100 texts)")
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
    )
    if args.samples:
        return _eval_samples_file(args)
    if not args.run:
        raise GenlabError("give a run directory, or --samples F.npz --data D --out M.json")
    run = load(args.run, weights=args.weights, device=_device(args.device))
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
