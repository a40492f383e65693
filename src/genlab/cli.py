"""genlab's command line: train | sample | eval | info | data | demo.

Bad input prints one line (``genlab: error: ...``) and exits with status 2;
a bug exits with status 1 and its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from genlab.errors import GenlabError

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

CONTROLS = [  # (flag, type, help): one name for each knob across all families
    ("temperature", float, "prior / softmax temperature (lower: safer, less diverse)"),
    ("truncation", float, "truncation of the latent draw (GAN)"),
    ("guidance", float, "classifier-free guidance scale (diffusion)"),
    ("sampler", str, "sampler (diffusion: dpm++2m, the default; ddim; ddpm)"),
    ("sampling_steps", int, "number of sampling steps (diffusion)"),
    ("prompt", str, "text to continue (text models)"),
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


def build_parser() -> argparse.ArgumentParser:
    from genlab import __version__

    p = argparse.ArgumentParser(
        prog="genlab",
        description="Train, sample and measure generative models.",
        epilog="Start with `genlab demo`; every command has --help.",
    )
    p.add_argument("--version", action="version", version=f"genlab {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    t = sub.add_parser(
        "train",
        help="train a model into a run directory",
        epilog=EPILOG_TRAIN,
        formatter_class=fmt,
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
        "them; default: digits (text families: tinyshakespeare)",
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
        "text, its tokenizer are kept): pretrain on one corpus, fine-tune on another",
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

    s = sub.add_parser(
        "sample",
        help="generate samples from a run",
        formatter_class=fmt,
        description="Generate samples. The extension of --out decides the format: "
        ".png a grid, .npz arrays (x: uint8 N,H,W,C; y: labels of a conditional "
        "model), a path ending in / one PNG per sample; for text, .txt (samples between "
        "rules of =) or .jsonl (one JSON object a sample, with the controls). Text without "
        "--out streams to the terminal.",
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
        "and --out",
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
        "--k", type=int, default=1000, help="nll: importance samples (default: %(default)s)"
    )
    e.add_argument("--nll-n", type=int, help="nll: the first N test images (default: all)")
    e.add_argument("--weights", default="auto", choices=["auto", "ema", "model", "best"])
    e.add_argument("--device", default="auto")
    e.add_argument("--seed", type=int, default=0, help="seed of sampling, subsets and noise")
    _add_controls(e)
    e.set_defaults(func=cmd_eval)

    i = sub.add_parser(
        "info",
        help="describe a run, or a family's config keys",
        description="genlab info RUN: config, progress, files, latest figures. "
        "genlab info --family vae: every config key, its default, presets, controls.",
    )
    i.add_argument("run", nargs="?")
    i.add_argument("--family", help="describe a model family instead of a run")
    i.set_defaults(func=cmd_info)

    d = sub.add_parser(
        "data",
        help="list or fetch named data sets",
        description="Named sets resolve in order: embedded, cache ($GENLAB_CACHE, "
        "default ~/.cache/genlab), mirror ($GENLAB_DATA_MIRROR: folder or http(s) "
        "URL), official URL; every file is checked by sha256.",
    )
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="list|fetch")
    dl = dsub.add_parser("list", help="show named sets, licences and where each is found")
    dl.set_defaults(func=cmd_data_list)
    df = dsub.add_parser("fetch", help="download and verify a named set into the cache")
    df.add_argument("name")
    df.set_defaults(func=cmd_data_fetch)

    c = sub.add_parser(
        "compare",
        help="one self-contained HTML report comparing runs",
        description="Write one HTML page, readable offline: a leaderboard under one protocol "
        "with the real-vs-real floor, sample grids, training curves, and each family's main "
        "knob swept (VAE: temperature) with 95%% intervals. Sweep points are cached in each "
        "run's eval/ folder, so a second compare is fast.",
    )
    c.add_argument("runs", nargs="+", help="run directories")
    c.add_argument("--out", default="report.html", help="the page (default: %(default)s)")
    c.add_argument(
        "--n", type=int, default=500, help="samples per sweep point (default: %(default)s)"
    )
    c.add_argument("--seed", type=int, default=0)
    _add_extractor(c)
    c.set_defaults(func=cmd_compare)

    m = sub.add_parser(
        "demo",
        help="train a conditional VAE and GAN on the embedded digits, sample, evaluate, "
        "compare them in an HTML report (about 4 minutes on 2 CPU cores)",
    )
    m.add_argument(
        "--out",
        default="runs/demo",
        help="folder for the two runs (vae/, gan/) and report.html (default: %(default)s)",
    )
    m.add_argument("--steps", type=int, help="training steps of both families (a quick look)")
    m.add_argument("--device", default="auto")
    m.set_defaults(func=cmd_demo)
    return p


def _split_overrides(extra: list[str], parser: argparse.ArgumentParser) -> list[str]:
    bad = [a for a in extra if a.startswith("-") or "=" not in a]
    if bad:
        parser.error(f"unrecognized argument {bad[0]!r} (config overrides look like key=value)")
    return extra


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
    from genlab.run import read_config

    return read_config(Path(run_dir))[1].kind == "text"


def _device(name: str) -> str:
    from genlab.training.distributed import pick_device

    return str(pick_device(name))


def cmd_sample(args, overrides: list[str]) -> int:
    import torch

    from genlab.models.layers import labels_for
    from genlab.run import load
    from genlab.sample import save_images

    if args.n is not None and args.n < 1:
        raise GenlabError("-n must be at least 1")
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
        if args.interpolate < 2:
            raise GenlabError("--interpolate needs K >= 2 steps")
        x = run.model.interpolate(n, args.interpolate, generator=g, **controls)
        nrow = args.interpolate
    else:
        if run.info.num_classes and getattr(run.config.model, "conditional", False):
            labels = labels_for(n, controls.get("label"), run.info.num_classes)
            controls["label"] = labels
        x = run.model.sample(n, generator=g, **controls)
        nrow = run.info.num_classes if labels and args.label is None else None
    path = save_images(x, args.out, labels=labels, nrow=nrow)
    print(f"genlab: wrote {len(x)} samples to {path}", file=sys.stderr)
    return 0


def _sample_text(args, run, controls: dict, g) -> int:
    """Text: stream each sample to the terminal, or write all of them to --out."""
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
    texts = run.model.sample(n, generator=g, **controls)
    meta = {"seed": args.seed, "run": str(args.run), "weights": run.weights}
    meta["controls"] = {k: v for k, v in controls.items() if k != "prompt"}
    path = save_texts(texts, args.out, prompt=prompt, meta=meta)
    print(f"genlab: wrote {n} samples to {path}", file=sys.stderr)
    return 0


def _add_extractor(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--extractor",
        default="classifier",
        choices=["classifier", "inception"],
        help="features for FID, KID, precision/recall, density/coverage: the domain "
        "classifier trained on the data set (fast; the default) or the standard FID Inception "
        "network (comparable with papers; about 5 images/s on a 2-core CPU, so the real "
        "split's features are cached after the first run) (default: %(default)s)",
    )
    p.add_argument(
        "--inception",
        metavar="PATH",
        help="with --extractor inception: the TorchScript file (default: $GENLAB_INCEPTION, "
        "else the cache, $GENLAB_DATA_MIRROR/inception/, or the official download; see "
        "genlab data fetch inception)",
    )


def cmd_eval(args, overrides: list[str]) -> int:
    from genlab.evaluate import evaluate
    from genlab.run import load

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
    )
    _print_text_table(r) if text else _print_table(r)
    print(f"recorded in {Path(args.run) / 'eval'}")
    return 0


def _eval_samples_file(args) -> int:
    from genlab.data import DataConfig
    from genlab.metrics.protocol import load_samples, score_samples
    from genlab.training.checkpoint import write_json

    if not (args.data and args.out):
        raise GenlabError("--samples needs --data (the real data set) and --out (a .json)")
    x, y = load_samples(args.samples)
    r = score_samples(
        x,
        y,
        DataConfig(name=args.data),
        seed=args.seed,
        extractor=args.extractor,
        inception=args.inception,
    )
    r["protocol"]["samples"] = str(args.samples)
    write_json(Path(args.out), r)
    _print_table(r)
    print(f"recorded in {args.out}")
    return 0


def _print_table(r: dict) -> None:
    print(f"{'metric':<18}{'value':>10}{'floor':>10}")
    floor = r.get("floor", {})
    from genlab.metrics.protocol import SAMPLE_METRICS

    for key in (*SAMPLE_METRICS, "iwae_nll", "bits_per_dim"):
        if key in r:
            f = floor.get(key)
            print(f"{key:<18}{r[key]:>10.4g}" + (f"{f:>10.4g}" if f is not None else ""))
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


TEXT_ROWS = (  # (key, what it says)
    ("val_loss", "validation loss, nats/token"),
    ("perplexity", "validation perplexity"),
    ("bits_per_char", "validation bits/character"),
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


def cmd_compare(args, overrides: list[str]) -> int:
    from genlab.report.html import build_report

    path = build_report(
        args.runs,
        args.out,
        n=args.n,
        seed=args.seed,
        extractor=args.extractor,
        inception=args.inception,
    )
    print(f"genlab: wrote {path}", file=sys.stderr)
    return 0


def cmd_info(args, overrides: list[str]) -> int:
    from genlab.config import field_names
    from genlab.registry import get, names
    from genlab.run import RunConfig, read_config

    if args.family:
        cls = get(args.family)
        cfg = RunConfig.new(args.family)
        print(
            f"family {cls.family}: {(cls.__doc__ or '').strip().splitlines()[0] if cls.__doc__ else ''}"
        )
        print("config keys (default preset values):")
        for key in field_names(cfg):
            if key.split(".")[0] in ("model", "data", "train"):
                obj = cfg
                for part in key.split("."):
                    obj = getattr(obj, part)
                print(f"  {key} = {obj}")
        print("presets: " + ", ".join(cls.presets))
        print(
            "sampling controls: "
            + ", ".join(
                f"--{k.replace('_', '-')} ({c.type.__name__}, default {c.default}): {c.help}"
                for k, c in cls.controls.items()
            )
        )
        return 0
    if not args.run:
        raise GenlabError(f"give a run directory, or --family NAME ({', '.join(names())})")
    run_dir = Path(args.run)
    cfg, info = read_config(run_dir)
    what = (
        f"{cfg.data.tokenizer} tokenizer, {info.vocab_size} ids"
        if info.kind == "text"
        else f"{tuple(info.shape)}, {info.num_classes} classes"
    )
    print(f"run {run_dir}: {cfg.family}, preset {cfg.preset}, data {cfg.data.name} {what}")
    metrics = run_dir / "metrics.jsonl"
    last, val = {}, {}
    if metrics.exists():
        for line in metrics.read_text().splitlines():
            rec = json.loads(line)
            (val if "val_loss" in rec else last).update(rec)
    print(
        f"trained: step {last.get('step', 0)} of {cfg.train.steps}"
        + (f", {last['elapsed_s']:.0f}s" if "elapsed_s" in last else "")
        + (f", {last['tokens']:,} tokens" if "tokens" in last else "")
        + (f"; last loss {last['loss']:.4g}" if "loss" in last else "")
        + (f"; last validation loss {val['val_loss']:.4g}" if "val_loss" in val else "")
    )
    files = [f.name for f in sorted(run_dir.iterdir())]
    print("files: " + ", ".join(files))
    ev = run_dir / "eval" / "metrics.json"
    if ev.exists():
        print("latest eval: " + json.dumps(json.loads(ev.read_text()), sort_keys=True)[:300])
    print("model: " + json.dumps(cfg.to_dict()["model"]))
    print("train: " + json.dumps(cfg.to_dict()["train"]))
    return 0


def cmd_data_list(args, overrides: list[str]) -> int:
    from genlab.data.fetch import list_sets

    print(f"{'name':<17}{'kind':<8}{'found':<10}description")
    for r in list_sets():
        where = f" ({r['path']})" if r.get("path") else ""
        print(
            f"{r['name']:<17}{r['kind']:<8}{r['found']:<10}{r['description']}\n"
            f"{'':<35}licence: {r['licence']}{where}"
        )
    return 0


def cmd_data_fetch(args, overrides: list[str]) -> int:
    from genlab.data.fetch import fetch

    path = fetch(args.name)
    print(f"genlab: {args.name} is ready in {path}", file=sys.stderr)
    return 0


def cmd_demo(args, overrides: list[str]) -> int:
    from genlab.demo import demo

    demo(Path(args.out), steps=args.steps, device=args.device)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = _split_overrides(extra, parser) if args.command == "train" else extra
    if args.command != "train" and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args, overrides)
    except GenlabError as e:
        print(f"genlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "genlab: interrupted (the latest checkpoint is intact; --resume continues)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
