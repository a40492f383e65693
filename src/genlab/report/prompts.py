"""The part of `genlab compare` for runs that draw what a prompt says (txt2img).

    section = prompt_section([("t2i", run)], n=500, seed=0)   # an HTML fragment

For each such run: the prompt table (metrics/prompt_protocol.py: CLIP score, retrieval,
FID in the judge's features, style and tone accuracy, copies and the other vendor's
drawing, for all test prompts and each part of the test split, every figure beside the
floor of the real test images and the shuffled prompts); a grid of test prompts the model
never saw, each row the real test image then generations with three seeds; and the
guidance sweep, alignment (CLIP score, retrieval top-5) and diversity against guidance,
each point with its 95% interval. Every figure is an eval record cached in RUN/eval/.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
from PIL import Image

from genlab.data import load_data
from genlab.outputs.images import make_grid, to_uint8
from genlab.report.plots import line_plot, measured_at

FIGURES = (
    ("clip_score", "CLIP score", "{:.1f}"),
    ("top1", "top-1", "{:.1%}"),
    ("top5", "top-5", "{:.1%}"),
    ("fid", "FID (judge)", "{:.3g}"),
    ("style_acc", "style", "{:.1%}"),
    ("tone_acc", "tone", "{:.1%}"),
    ("copy_share", "copies", "{:.1%}"),
    ("other_vendor", "other vendor's", "{:.1%}"),
)
GROUPS = {
    "all": "all test prompts",
    "a": "part a: a known emoji in a style not seen for it",
    "b": "part b: a known emoji in a skin tone not seen on it",
}
GRID_ROWS, GRID_SEEDS = 8, 3
SWEEP_PROMPTS = 100  # prompts a guidance point measures (each twice, for diversity)


def _cell(fmt: str, v) -> str:
    return "" if v is None else fmt.format(v)


def _table(rec: dict) -> str:
    head = "".join(f"<th>{title}</th>" for _, title, _ in FIGURES)
    rows = []
    for group, kinds in rec["table"].items():
        about = GROUPS.get(group, f"part {group}")
        for kind in ("generated", "floor", "shuffled"):
            fig = kinds[kind]
            cells = "".join(f"<td>{_cell(fmt, fig.get(k))}</td>" for k, _, fmt in FIGURES)
            cls = "" if kind == "generated" else ' class="floor"'
            label = {
                "generated": f"{html.escape(about)} ({fig.get('n_prompts')} prompts)",
                "floor": "floor: the real test images",
                "shuffled": "shuffled prompts",
            }[kind]
            rows.append(f'<tr{cls}><td class="l">{label}</td>{cells}</tr>')
    return f'<table><tr><th class="l">prompts</th>{head}</tr>{"".join(rows)}</table>'


def _data_uri(img: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def grid_prompts(test, rows: int = GRID_ROWS) -> list[int]:
    """Indices of ``rows`` test images with distinct captions, taken in turn from each
    part of the test split (where the set names parts), so that every part shows."""
    parts = (test.attributes or {}).get("part") or [""] * len(test.captions)
    by_part: dict[str, list[int]] = {}
    seen: set[str] = set()
    for i, (c, p) in enumerate(zip(test.captions, parts)):
        if c not in seen:
            seen.add(c)
            by_part.setdefault(p, []).append(i)
    queues = list(by_part.values())
    out: list[int] = []
    while len(out) < rows and any(queues):
        for q in queues:
            if q and len(out) < rows:
                out.append(q.pop(0))
    return out


def prompt_grid(run, seed: int = 0, rows: int = GRID_ROWS) -> tuple[np.ndarray, list[str]]:
    """(grid, prompts): a row per test prompt, the real test image first, then generations
    with seeds seed, seed + 1, ... (the model's default controls)."""
    test = load_data(run.config.data, "test", progress=False)
    idx = grid_prompts(test, rows)
    prompts = [test.captions[i] for i in idx]
    gens = [
        to_uint8(run.sample(len(prompts), seed=seed + k, prompt=prompts)) for k in range(GRID_SEEDS)
    ]
    real = to_uint8(test.x[idx].float() / 127.5 - 1)
    cells = np.stack([real, *gens], axis=1).reshape(-1, *real.shape[1:])  # row-major
    return make_grid(cells, nrow=1 + GRID_SEEDS), prompts


def _sweep_plots(name: str, sweep: dict) -> str:
    """Alignment and diversity against guidance, for all prompts, with intervals."""
    xs = [p["guidance"] for p in sweep["points"]]

    def series(key: str, scale: float = 1.0):
        ys = [(p["all"].get(key) or 0.0) * scale for p in sweep["points"]]
        cis = [p["all"].get(f"{key}_ci") or [None, None] for p in sweep["points"]]
        lo = [c[0] * scale if c[0] is not None else y for c, y in zip(cis, ys)]
        hi = [c[1] * scale if c[1] is not None else y for c, y in zip(cis, ys)]
        return (xs, ys), (lo, hi)

    clip, clip_ci = series("clip_score")
    top5, top5_ci = series("top5", 100.0)
    div, div_ci = series("diversity")
    floor = sweep.get("floor", {}).get("all", {})
    note = (
        f'<p class="small">The real test images score CLIP {floor.get("clip_score", 0):.1f}, '
        f"top-5 {floor.get('top5', 0):.1%}; real images of different prompts differ by "
        f"{sweep.get('diversity_reference', 0):.3f} (cosine distance).</p>"
    )
    return (
        line_plot(
            {"CLIP score": clip, "retrieval top-5 (%)": top5},
            title=f"{name}: alignment vs guidance",
            xlabel="guidance",
            ylabel="alignment",
            errors={"CLIP score": clip_ci, "retrieval top-5 (%)": top5_ci},
        )
        + line_plot(
            {"diversity": div},
            title=f"{name}: diversity vs guidance",
            xlabel="guidance",
            ylabel="cosine distance within a prompt",
            errors={"diversity": div_ci},
        )
        + note
    )


def _one_run(name: str, run, n: int, seed: int, progress: bool) -> str:
    from genlab.evaluate import cached_evaluate_prompts, cached_guidance_sweep

    rec = cached_evaluate_prompts(run, seed=seed, progress=progress)
    grid, prompts = prompt_grid(run, seed)
    listing = "".join(f"<li>{html.escape(p)}</li>" for p in prompts)
    values = [v for knob, vs in run.model.sweeps() if knob == "guidance" for v in vs]
    sweep_html = ""
    if values:
        sweep = cached_guidance_sweep(
            run, values, n=min(n, SWEEP_PROMPTS), per_prompt=2, seed=seed, progress=progress
        )
        sweep_html = _sweep_plots(name, sweep)
    p = rec["protocol"]
    return f"""<h3>{html.escape(name)}</h3>
<p class="small">{run.config.family}, {measured_at(rec)}; {p.get("n_prompts")} test prompts
of {html.escape(str(p.get("data")))}, judged by a contrastive image-text model and style and
tone classifiers trained on the real training images only; retrieval {html.escape(
        str(p.get("retrieval")))}; intervals {html.escape(str(p.get("intervals")))}.</p>
{_table(rec)}
<h4>Test prompts it never saw: the real image, then three seeds</h4>
<div class="grid"><img src="{_data_uri(grid)}" alt="prompt grid"></div>
<ol class="small">{listing}</ol>
<h4>Guidance</h4>{sweep_html}
"""


def prompt_section(runs: list[tuple[str, object]], *, n: int, seed: int, progress: bool) -> str:
    """The HTML of every prompt run: table, prompt grid and guidance sweep."""
    parts = [_one_run(name, run, n, seed, progress) for name, run in runs]
    return "<h2>Text to image</h2>" + "".join(parts)


__all__ = ["grid_prompts", "prompt_grid", "prompt_section"]
