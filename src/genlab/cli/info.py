"""`genlab info`: describe a run, or a model family's config keys, presets and controls."""

from __future__ import annotations

import json
from pathlib import Path

from genlab.errors import GenlabError


def add_parser(sub) -> None:
    i = sub.add_parser(
        "info",
        help="describe a run, or a family's config keys",
        description="genlab info RUN: config, progress, files, latest figures. "
        "genlab info --family vae: every config key, its default, presets, controls.",
    )
    i.add_argument("run", nargs="?")
    i.add_argument("--family", help="describe a model family instead of a run")
    i.set_defaults(func=cmd_info)


# the figures `genlab info` shows of the latest record (all are in the file)
HEADLINE = (
    "fid",
    "precision",
    "recall",
    "class_consistency",
    "copy_share",
    "iwae_nll",
    "bits_per_char",
    "distinct_2",
    "novelty_4",
    "known_words",
)


def _describe_eval(run_dir: Path, rec: dict) -> str:
    """The latest record's main figures, which weights and step they measured, and whether
    those are still the run's weights."""
    from genlab.rundir import current_sha256

    p = rec.get("protocol", {})
    if "likelihood" in p and "weights" not in p:
        p = p["likelihood"]
    figures = ", ".join(f"{k} {rec[k]:.4g}" for k in HEADLINE if isinstance(rec.get(k), float))
    weights, step = p.get("weights"), p.get("step")
    at = f"{weights} weights at step {step}" if step is not None else f"{weights} weights"
    sha = p.get("weights_sha256")
    if not sha:
        state = "which weights is unknown (recorded by an older genlab): run genlab eval again"
    elif sha == current_sha256(run_dir, weights):
        state = "current"
    else:
        state = "STALE: the run has trained on since; run genlab eval again"
    return f"{figures} ({at}; {state})"


def cmd_info(args, overrides: list[str]) -> int:
    from genlab.config import field_names
    from genlab.fsutil import read_json, read_jsonl
    from genlab.registry import get, names
    from genlab.rundir import RunConfig, read_config

    if args.family:
        cls = get(args.family)
        cfg = RunConfig.new(args.family)
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"family {cls.family}: {summary}")
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
    if info.kind == "text":
        what = f"{cfg.data.tokenizer} tokenizer, {info.vocab_size} ids"
    elif get(cfg.family).takes_prompt:
        context = getattr(cfg.model, "text_context", "?")
        what = (
            f"{tuple(info.shape)}, captioned: draws what a prompt says (a {cfg.data.tokenizer} "
            f"tokenizer of its captions, {info.vocab_size} ids; prompts up to {context} tokens)"
        )
    else:
        what = f"{tuple(info.shape)}, {info.num_classes} classes"
    print(f"run {run_dir}: {cfg.family}, preset {cfg.preset}, data {cfg.data.name} {what}")
    last, val = {}, {}
    for rec in read_jsonl(run_dir / "metrics.jsonl"):
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
        print("latest eval: " + _describe_eval(run_dir, read_json(ev)))
        older = len(list((run_dir / "eval").glob("*.json"))) - 1
        if older > 0:
            print(f"  ({older} more record(s) in {run_dir / 'eval'}: other protocols, or history)")
    print("model: " + json.dumps(cfg.to_dict()["model"]))
    print("train: " + json.dumps(cfg.to_dict()["train"]))
    return 0
