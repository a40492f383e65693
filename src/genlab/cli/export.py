"""`genlab export`: a run in another library's format (a GPT run as a transformers folder)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from genlab.errors import ConfigError, RunError

FORMATS = {"transformers": "gpt"}  # format -> the family it takes


def add_parser(sub) -> None:
    e = sub.add_parser(
        "export",
        help="write a run in another library's format (transformers)",
        description="genlab export RUN --format transformers --out DIR: a GPT run as a folder "
        "that transformers' AutoModelForCausalLM.from_pretrained(DIR) and "
        "AutoTokenizer.from_pretrained(DIR) load, with the same logits, and a model card "
        "(README.md) giving the training data, steps and the run's figures with their protocol.",
    )
    e.add_argument("run", help="the run directory")
    e.add_argument("--format", required=True, choices=sorted(FORMATS), help="the target format")
    e.add_argument("--out", required=True, help="folder to create (must not exist, or be empty)")
    e.add_argument(
        "--weights",
        default="auto",
        help="auto (EMA if kept, else latest), ema, model or best",
    )
    e.set_defaults(func=cmd_export)


def cmd_export(args, overrides) -> int:
    import genlab
    from genlab.hf.gpt2 import write_gpt2
    from genlab.run import is_run

    run_dir, out = Path(args.run), Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} exists and is not an empty folder; give a new one")
    if not is_run(run_dir):
        raise RunError(f"{run_dir} is not a genlab run (no config.json naming a family)")
    run = genlab.load(run_dir, weights=args.weights)
    family = FORMATS[args.format]
    if run.config.family != family:
        raise ConfigError(
            f"{run_dir} is a {run.config.family} run; --format {args.format} takes {family} runs"
        )
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    files = write_gpt2(run, tmp)
    (tmp / "README.md").write_text(model_card(run, args.format), encoding="utf-8")
    if out.exists():
        out.rmdir()
    tmp.rename(out)  # the folder appears whole or not at all
    print(f"genlab: wrote {out} ({', '.join([*files, 'README.md'])})")
    print(
        f"  load it: AutoModelForCausalLM.from_pretrained({str(out)!r}), "
        f"AutoTokenizer.from_pretrained({str(out)!r})"
    )
    return 0


def model_card(run, fmt: str) -> str:
    """What a reader of the exported folder needs: what was trained on what, for how long,
    and how well, each figure with its protocol."""
    from genlab.fsutil import read_jsonl

    cfg, m = run.config, run.config.model
    params = sum(p.numel() for p in run.model.parameters())
    val = [r for r in read_jsonl(run.path / "metrics.jsonl") if "val_loss" in r]
    lines = [
        f"# {run.path.name}: a genlab GPT in {fmt} format",
        "",
        f"Trained with genlab {genlab_version()} (`genlab train gpt --preset {cfg.preset}`) on "
        f"`{cfg.data.name}` with a {cfg.data.tokenizer} tokenizer of "
        f"{run.model.tokenizer.vocab_size:,} ids; exported from {run.weights} weights at "
        f"step {run.step} of {cfg.train.steps}.",
        "",
        f"Model: {m.n_layer} layers, {m.n_head} heads, width {m.n_embd}, context "
        f"{m.block_size}, {params / 1e6:.2f}M parameters, GELU "
        f"{'tanh approximation' if m.activation == 'gelu_tanh' else 'exact'}.",
        "",
        "## Figures",
        "",
    ]
    figures = []
    if val:
        last = val[-1]
        figures.append(
            f"- validation loss {last['val_loss']:.4f} nats/token at step {last['step']} "
            f"({last.get('val_protocol', 'the validation split')}, "
            f"{last.get('val_tokens', '?')} tokens)"
        )
    ev = run.path / "eval" / "metrics.json"
    if ev.exists():
        rec = json.loads(ev.read_text())
        shown = {k: v for k, v in rec.items() if isinstance(v, (int, float)) and k != "step"}
        figures.append(
            "- `genlab eval` (`eval/metrics.json` of the run; its protocol there): "
            + ", ".join(f"{k} {v:.4g}" for k, v in list(shown.items())[:12])
        )
    lines += figures or ["- none recorded (the run has no validation or evaluation records)"]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        'model = AutoModelForCausalLM.from_pretrained("THIS_FOLDER")',
        'tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER")',
        "```",
        "",
        f"GPT-2 has learned positions: transformers generates at most {m.block_size} "
        "positions, prompt included (genlab's own sampler slides the window past them).",
        "",
    ]
    return "\n".join(lines)


def genlab_version() -> str:
    from genlab import __version__

    return __version__
