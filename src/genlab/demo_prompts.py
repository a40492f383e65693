"""`genlab demo --prompts`: a demo you can look at, from words to pictures. Train the
txt2img family on the emoji set (fetched through the usual chain: cache, mirror, the
official files, every image checked), draw the test prompts it never saw (a known emoji
in a style not seen for it; in a skin tone not seen on it), real beside generated, score
them beside the real images and shuffled prompts, and write a report.

    python -m genlab demo --prompts                  # trains for 3 minutes (--minutes)
    python -m genlab demo --prompts --minutes 40     # the README's figures

    runs/demo-prompts/txt2img/samples/test-prompts.png   a row a prompt: real, then 3 seeds
    runs/demo-prompts/report.html                        the table, the grid, the guidance sweep
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from genlab.evaluate import evaluate
from genlab.outputs.images import pil_image
from genlab.report.html import build_report
from genlab.report.prompts import prompt_grid
from genlab.run import load
from genlab.training.launch import train

FAMILY = "txt2img"
COLUMNS = (
    ("clip_score", "CLIP", "{:>7.1f}"),
    ("top5", "top-5", "{:>8.1%}"),
    ("style_acc", "style", "{:>8.1%}"),
    ("tone_acc", "tone", "{:>8.1%}"),
    ("fid", "FID", "{:>8.3g}"),
    ("copy_share", "copies", "{:>8.1%}"),
)


def table(rec: dict) -> str:
    """The prompt table as text: for all test prompts and each part, the generations, the
    real test images (the floor) and the shuffled prompts."""
    head = f"  {'':<40}" + "".join(f"{t:>8}" for _, t, _ in COLUMNS)
    lines = [head]
    names = {"all": "all test prompts", "a": "(a) unseen style", "b": "(b) unseen tone"}
    for group, kinds in rec["table"].items():
        for kind in ("generated", "floor", "shuffled"):
            fig = kinds[kind]
            label = {"generated": names.get(group, group), "floor": "  real (floor)",
                     "shuffled": "  shuffled prompts"}[kind]
            if kind == "generated":
                label += f" ({fig.get('n_prompts')})"
            cells = "".join(
                (fmt.format(fig[k]) if fig.get(k) is not None else f"{'-':>8}")
                for k, _, fmt in COLUMNS
            )
            lines.append(f"  {label:<40}{cells}")
    return "\n".join(lines)


def demo_prompts(out: Path, minutes: float = 3.0, device: str = "auto") -> Path:
    from genlab.demo import _fresh

    t0 = time.perf_counter()
    out = _fresh(out)
    tell = lambda msg: print(f"genlab demo: {msg}", file=sys.stderr)  # noqa: E731
    run_dir = out / FAMILY
    tell(f"training {FAMILY} on emoji (google and twitter, captioned) for {minutes:g} "
         f"minutes -> {run_dir}")
    train(FAMILY, run_dir, overrides=[f"train.minutes={minutes}", f"train.device={device}"])
    run = load(run_dir, device="cpu")
    tell("drawing test prompts it never saw, beside the real images")
    grid, prompts = prompt_grid(run, seed=0)
    grid_path = run_dir / "samples" / "test-prompts.png"
    pil_image(grid).save(grid_path)
    tell("scoring every test prompt (the judges train once on the training images, then "
         "are cached)")
    rec = evaluate(run, metrics=("samples",), seed=0)
    report = build_report([run_dir], out / "report.html", n=200)
    print(
        f"\ngenlab demo --prompts finished in {time.perf_counter() - t0:.0f}s.\n"
        f"  test prompts, real then 3 seeds: {grid_path}\n"
        f"    " + "\n    ".join(prompts) + "\n"
        f"  the report:                      {report}\n\n"
        + table(rec)
        + f"\n\nnext: genlab sample {run_dir} --prompt \"red apple, twitter style\" -n 16 "
        f"--out apples.png\n      genlab serve {out}   (type a prompt, watch it form)\n"
    )
    return out


__all__ = ["demo_prompts", "table"]
