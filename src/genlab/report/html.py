"""`genlab compare`: one self-contained HTML page comparing runs, readable offline.

A leaderboard measured under one protocol (same n, seed, extractor) with the
real-vs-real floor, a sample grid per run, training curves, and the quality-
diversity trade-off of each family's main knob (VAE: prior temperature),
every point with its 95% interval, and what people said of the runs in the studio
(report/judgements.py) where they said anything. Runs trained on sound also get players of
their generated and real clips beside the spectrograms (report/audio.py), and runs that draw
what a prompt says a prompt table, a grid of unseen test prompts and a guidance sweep
(report/prompts.py), still one file.
Sweep points are eval records cached per protocol in each run's eval/ folder, so a second
report is fast.

    build_report(["runs/a", "runs/b"], "report.html", n=500)
"""

from __future__ import annotations

import base64
import html
import io
import math
import time
from pathlib import Path
from typing import NamedTuple

from PIL import Image

from genlab.evaluate import cached_evaluate_samples
from genlab.metrics.protocol import SAMPLE_METRICS
from genlab.outputs.audio import flip_frequency
from genlab.outputs.images import make_grid, to_uint8
from genlab.report.audio import CSS as AUDIO_CSS
from genlab.report.audio import audio_section
from genlab.report.judgements import human_section
from genlab.report.plots import line_plot, measured_at, read_curves
from genlab.report.prompts import prompt_section
from genlab.report.text import text_section
from genlab.run import load
from genlab.version import __version__

COLUMNS = SAMPLE_METRICS  # the leaderboard shows every sample metric, in one order
CSS = """body{font-family:sans-serif;margin:24px;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}.floor{color:#888}
.grid{display:inline-block;margin:0 16px 16px 0;vertical-align:top}.small{font-size:12px;
color:#555}svg{margin:0 12px 12px 0}pre{white-space:pre-wrap;background:#f7f7f7;padding:8px;
font-size:13px;max-width:900px}""" + AUDIO_CSS


def _png_data_uri(img) -> str:
    buf = io.BytesIO()
    Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _binomial(p: float, n: int) -> tuple[float, float]:
    """95% normal interval of a share measured on n points."""
    half = 1.96 * math.sqrt(max(p * (1 - p), 0.0) / max(n, 1))
    return max(0.0, p - half), min(1.0, p + half)


def _sweeps(run, n: int, seed: int, progress: bool, **how) -> list[tuple[str, list, list]]:
    """(knob, settings, eval records) for every knob the family sweeps."""
    return [
        (
            knob,
            list(values),
            [
                cached_evaluate_samples(
                    run, n=n, seed=seed, controls={knob: v}, progress=progress, **how
                )
                for v in values
            ],
        )
        for knob, values in run.model.sweeps()
    ]


def _cell(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else ("" if v is None else html.escape(str(v)))


class _Measured(NamedTuple):
    """One image run as the page shows it."""

    name: str
    run: object
    main: dict  # the leaderboard's record: the main knob at its default setting
    sweeps: list  # (knob, settings, eval records) of every knob swept here
    skipped: bool  # its family's knobs are not swept on this page
    grid: str  # a data: URI of its sample grid
    curves: tuple  # (training, validation) losses, each (steps, losses)


def _measure(name: str, run, n: int, seed: int, progress: bool, skip: bool, how) -> _Measured:
    """``run``'s sweeps (none when ``skip``), its leaderboard record, sample grid and curves."""
    swept = [] if skip else _sweeps(run, n, seed, progress, **how)
    if swept:  # the leaderboard shows the main knob at its default setting
        knob, values, records = swept[0]
        default = run.model.controls[knob].default
        main = records[values.index(default)] if default in values else records[0]
    else:
        main = cached_evaluate_samples(run, n=n, seed=seed, progress=progress, **how)
    grid = _sample_grid(run, seed)
    return _Measured(name, run, main, swept, skip, grid, read_curves(run.path))


def _sample_grid(run, seed: int) -> str:
    """A data: URI of eight rows of ``run``'s samples."""
    # conditional models draw the classes in turn: one column per class
    k = run.info.num_classes
    cols = k if getattr(run.config.model, "conditional", False) and 2 <= k <= 16 else 8
    x = to_uint8(run.sample(cols * 8, seed=seed))
    if getattr(run.info, "audio", None):  # spectrograms: low frequencies at the bottom
        x = flip_frequency(x)
    return _png_data_uri(make_grid(x, cols))


def _leaderboard(measured: list[_Measured]) -> str:
    """The table of every run's figures, lowest FID first, each run over its floor row."""
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    best_first = sorted(measured, key=lambda m: m.main.get("fid", math.inf))
    body = "".join(_leaderboard_rows(m.name, m.run, m.main) for m in best_first)
    return f'<table><tr><th class="l">run</th>{head}</tr>{body}</table>'


def _leaderboard_rows(name: str, run, rec: dict) -> str:
    """The run's row, its floor's row and, for sound, its ceiling's row."""
    lo, hi = rec.get("fid_ci", (None, None))
    cells = "".join(f"<td>{_cell(rec.get(c))}</td>" for c in COLUMNS)
    floor = "".join(f"<td>{_cell(rec['floor'].get(c))}</td>" for c in COLUMNS)
    rows = (
        f'<tr><td class="l">{html.escape(name)}<br><span class="small">'
        f"{run.config.family}, {measured_at(rec)}, FID 95% [{_cell(lo)}, {_cell(hi)}]</span>"
        "</td>"
        f'{cells}</tr><tr class="floor"><td class="l">floor (real train subset)'
        f"</td>{floor}</tr>"
    )
    if rec.get("ceiling"):  # sound: the same real clips through the transform and back
        ceiling = "".join(f"<td>{_cell(rec['ceiling'].get(c))}</td>" for c in COLUMNS)
        rows += (
            '<tr class="floor"><td class="l">ceiling (those clips through Griffin-Lim)'
            f"</td>{ceiling}</tr>"
        )
    return rows


def _sweep_plots(name: str, knob: str, values: list, records: list, extractor: str) -> list:
    """FID, then precision and recall, against the settings of ``knob``; and a line on the
    setting of None where the knob has one."""
    # a setting of None (e.g. no truncation) has no place on the axis: said in a line below
    off = next((r for v, r in zip(values, records) if v is None), None)
    values, records = map(list, zip(*[(v, r) for v, r in zip(values, records) if v is not None]))
    also = (
        f'<p class="small">{html.escape(name)} with {knob} off (its default): FID '
        f"{off['fid']:.3g}, precision {off['precision']:.2f}, recall {off['recall']:.2f}.</p>"
        if off
        else ""
    )
    fid = line_plot(
        {"FID": (values, [r["fid"] for r in records])},
        title=f"{name}: FID vs {knob}",
        xlabel=knob,
        ylabel=f"FID ({extractor} features)",
        errors={"FID": ([r["fid_ci"][0] for r in records], [r["fid_ci"][1] for r in records])},
    )
    prec = [r["precision"] for r in records]
    rec_ = [r["recall"] for r in records]
    ng = [r["protocol"]["n_generated"] for r in records]
    nr = [r["protocol"]["n_real"] for r in records]
    shares = line_plot(
        {"precision (quality)": (values, prec), "recall (diversity)": (values, rec_)},
        title=f"{name}: quality and diversity vs {knob}",
        xlabel=knob,
        ylabel="share",
        errors={
            "precision (quality)": tuple(zip(*map(_binomial, prec, ng))),
            "recall (diversity)": tuple(zip(*map(_binomial, rec_, nr))),
        },
    )
    return [fid, shares, also]


def _quality_and_diversity(measured: list[_Measured], extractor: str) -> str:
    """Every run's sweep plots, then which runs this page did not sweep."""
    plots = [
        plot
        for m in measured
        for knob, values, records in m.sweeps
        for plot in _sweep_plots(m.name, knob, values, records, extractor)
    ]
    skipped = [m.name for m in measured if m.skipped]
    if skipped:
        plots.append(
            f'<p class="small">Not swept on this page, to keep it quick: '
            f"{html.escape(', '.join(skipped))}. <code>genlab compare RUN</code> sweeps "
            "every knob of its family.</p>"
        )
    return "".join(plots)


def _protocol_note(protocol: dict | None, seed: int, measured: list[_Measured]) -> str:
    """What the image figures were measured under, what the floor is, and which runs' FID
    cannot be told from the floor's."""
    ex = protocol["extractor"] if protocol else {}
    about = (
        f"test accuracy {ex['test_accuracy']:.2%}, "
        if "test_accuracy" in ex
        else ("the standard weights, " if ex.get("standard") else "NON-standard weights, ")
    )
    below = [
        m.name for m in measured if m.main.get("fid_ci", [0, math.inf])[0] <= m.main["floor"]["fid"]
    ]
    note = (
        f"The FID interval of {html.escape(', '.join(below))} reaches the floor: at this n its "
        "FID cannot be told from real images'; compare precision and recall, or raise --n."
        if below
        else ""
    )
    n_generated = protocol and protocol["n_generated"]
    real = f"{protocol and protocol['real_split']} split ({protocol and protocol['n_real']} images)"
    data = html.escape(str(protocol and protocol["data"]))
    return f"""<p class="small">Images: protocol: {n_generated} generated samples per point \
(seed {seed}) against
the {real} of
{data}; features from the {html.escape(str(ex.get("name")))}
({about}weights sha256 {str(ex.get("weights_sha256"))[:16]}…).
Each floor row scores a seeded subset of the real training images of the same n the same way:
a model cannot be expected to beat it. Intervals: FID by bootstrap; precision and recall binomial.
{note}</p>"""


def _images_part(measured: list[_Measured], seed: int, extractor: str, audio_html: str) -> str:
    """The page's sections on the image (and sound) runs: protocol, leaderboard, sample
    grids, the sound players, the sweeps and the training curves."""
    protocol = None
    for m in measured:  # the first run's protocol: all were measured under one
        protocol = protocol or m.main["protocol"]
    grids = "".join(
        f'<div class="grid"><img src="{m.grid}" alt="{html.escape(m.name)}"><br>'
        f"{html.escape(m.name)}</div>"
        for m in measured
    )
    train_curves = {m.name: m.curves[0] for m in measured}
    val_curves = {m.name: m.curves[1] for m in measured}
    curves = line_plot(train_curves, title="training loss", xlabel="step", ylabel="loss")
    curves += line_plot(val_curves, title="validation loss", xlabel="step", ylabel="loss")
    return f"""{_protocol_note(protocol, seed, measured)}
<h2>Leaderboard</h2>{_leaderboard(measured)}
<h2>Samples</h2>{grids}
{audio_html}
<h2>Quality and diversity</h2>{_quality_and_diversity(measured, extractor)}
<h2>Training</h2>{curves}
"""


def build_report(
    run_dirs: list[str | Path],
    out: str | Path,
    *,
    n: int = 500,
    seed: int = 0,
    extractor: str = "classifier",
    inception: str | None = None,
    progress: bool = True,
    skip_sweeps: tuple[str, ...] = (),
    text_n: int = 100,
) -> Path:
    """Write the comparison page for ``run_dirs`` to ``out`` and return its path.
    ``extractor``: "classifier" (default) or "inception" (see genlab.metrics.protocol).
    ``skip_sweeps``: families whose knobs are not swept here (the page says how to get
    them); their leaderboard row uses the default settings. Text runs get their own
    section (report/text.py), with at most ``text_n`` samples a point."""
    loaded = [load(d) for d in run_dirs]
    named = list(zip([Path(d).name for d in run_dirs], loaded))
    texts = [(name, run) for name, run in named if run.model.data_kind == "text"]
    prompted = [(name, run) for name, run in named if run.model.takes_prompt]
    images = [
        (name, run)
        for name, run in named
        if run.model.data_kind != "text" and not run.model.takes_prompt
    ]
    prompt_html = (
        prompt_section(prompted, n=n, seed=seed, progress=progress) if prompted else ""
    )
    text_html = text_section(texts, n=min(n, text_n), seed=seed, progress=progress) if texts else ""
    audio_html = audio_section([(name, run) for name, run in named], seed=seed)  # "" if none
    human_html = human_section(run_dirs)  # "" unless people judged some run in the studio
    how = {"extractor": extractor, "inception": inception}
    measured = [
        _measure(name, run, n, seed, progress, run.config.family in skip_sweeps, how)
        for name, run in images
    ]
    images_html = _images_part(measured, seed, extractor, audio_html) if images else ""
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>genlab report</title>
<style>{CSS}</style></head><body>
<h1>genlab report</h1>
<p class="small">{len(loaded)} run(s); written {time.strftime("%Y-%m-%d %H:%M")} by genlab {
        __version__
    }.</p>
{images_html}{prompt_html}{text_html}{human_html}
</body></html>
"""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out
