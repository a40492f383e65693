"""Plots as inline SVG: no plotting library, nothing to fetch, readable offline.

svg = line_plot({"run a": ([1, 2, 3], [3.0, 2.0, 1.5])}, title="loss", xlabel="step")
svg = line_plot({"fid": (xs, ys)}, errors={"fid": (lows, highs)}, xlabel="temperature")
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import NamedTuple

from genlab.fsutil import read_jsonl

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * step:
            step *= m
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"  # 1,500 steps, not 1.5e+03


class _Axes(NamedTuple):
    """Where the data range [x0, x1] x [y0, y1] (y0, y1 as plotted: log10 with ``log_y``)
    lies in the picture: the plot area's left and top edges, width and height."""

    x0: float
    x1: float
    y0: float
    y1: float
    log_y: bool
    left: int
    top: int
    plot_w: int
    plot_h: int

    def x_px(self, x: float) -> float:
        """The picture's x of a data x."""
        return self.left + (x - self.x0) / (self.x1 - self.x0) * self.plot_w

    def tick_y_px(self, t: float) -> float:
        """The picture's y of a value on the plotted scale (a tick: log10 with ``log_y``)."""
        return self.top + (1 - (t - self.y0) / (self.y1 - self.y0)) * self.plot_h

    def y_px(self, y: float) -> float:
        """The picture's y of a data y."""
        return self.tick_y_px(math.log10(y) if self.log_y else y)


def line_plot(
    series: dict[str, tuple[list[float], list[float]]],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    errors: dict | None = None,
    width: int = 460,
    height: int = 260,
    log_y: bool = False,
) -> str:
    """An SVG line chart: one polyline (with point markers) per series; ``errors`` maps a
    series name to (lows, highs) drawn as vertical bars (confidence intervals)."""
    errors = errors or {}
    ranges = _data_range(series, errors, log_y)
    if ranges is None:
        return f'<p class="empty">{html.escape(title)}: no data yet</p>'
    left, right, top, bottom = 56, 12, 28, 40
    pw, ph = width - left - right, height - top - bottom
    ax = _Axes(*ranges, log_y, left, top, pw, ph)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-weight="bold">'
        f"{html.escape(title)}</text>",
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
        *_axis_labels(ax, xlabel, ylabel, height),
    ]
    for i, (name, (xs, ys)) in enumerate(series.items()):
        out += _series_marks(ax, i, name, xs, ys, errors.get(name))
    out.append("</svg>")
    return "\n".join(out)


def _data_range(series: dict, errors: dict, log_y: bool) -> tuple | None:
    """(x0, x1, y0, y1) holding every finite point and error bar, y as plotted (log10 with
    ``log_y``) with a margin of 5%; a range of one value is widened by 1 each way. None when
    there is nothing to draw."""
    pts = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys) if _finite(y, log_y)]
    pts += [
        (x, v)
        for name, (lo, hi) in errors.items()
        for x, a, b in zip(series[name][0], lo, hi)
        for v in (a, b)
        if _finite(v, log_y)
    ]
    if not pts:
        return None
    fy = (lambda v: math.log10(v)) if log_y else (lambda v: v)  # noqa: E731
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(fy(p[1]) for p in pts), max(fy(p[1]) for p in pts)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    pad = (y1 - y0) * 0.05
    return x0, x1, y0 - pad, y1 + pad


def _axis_labels(ax: _Axes, xlabel: str, ylabel: str, height: int) -> list[str]:
    """The ticks of both axes (with the y grid lines) and the axis titles."""
    below = ax.top + ax.plot_h + 14
    out = [
        f'<text x="{ax.x_px(t):.1f}" y="{below}" text-anchor="middle">{_fmt(t)}</text>'
        for t in _ticks(ax.x0, ax.x1)
    ]
    for t in _ticks(ax.y0, ax.y1, 4):
        y = ax.tick_y_px(t)
        label = _fmt(10**t) if ax.log_y else _fmt(t)
        out.append(
            f'<line x1="{ax.left}" x2="{ax.left + ax.plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#eee"/><text x="{ax.left - 4}" y="{y + 4:.1f}" text-anchor="end">'
            f"{label}</text>"
        )
    middle = ax.top + ax.plot_h / 2
    out.append(
        f'<text x="{ax.left + ax.plot_w / 2}" y="{height - 6}" text-anchor="middle">'
        f"{html.escape(xlabel)}</text>"
    )
    out.append(
        f'<text x="12" y="{middle}" text-anchor="middle" '
        f'transform="rotate(-90 12 {middle})">{html.escape(ylabel)}</text>'
    )
    return out


def _series_marks(ax: _Axes, i: int, name: str, xs, ys, errors) -> list[str]:
    """Series ``i``: its line, its points (up to 40), its error bars (``errors``: (lows,
    highs) or None) and its name in the legend, all in its colour."""
    c = COLOURS[i % len(COLOURS)]
    out = []
    xy = [(ax.x_px(x), ax.y_px(y)) for x, y in zip(xs, ys) if _finite(y, ax.log_y)]
    if len(xy) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        out.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="1.5"/>')
    if len(xy) <= 40:
        out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{c}"/>' for x, y in xy]
    if errors is not None:
        for x, lo, hi in zip(xs, *errors):
            if _finite(lo, ax.log_y) and _finite(hi, ax.log_y):
                out.append(
                    f'<line x1="{ax.x_px(x):.1f}" x2="{ax.x_px(x):.1f}" y1="{ax.y_px(lo):.1f}" '
                    f'y2="{ax.y_px(hi):.1f}" stroke="{c}" stroke-width="1"/>'
                )
    out.append(
        f'<text x="{ax.left + 6}" y="{ax.top + 14 + 13 * i}" fill="{c}">{html.escape(name)}</text>'
    )
    return out


def _finite(v, log_y: bool) -> bool:
    return v is not None and math.isfinite(v) and (v > 0 or not log_y)


def read_curves(run_dir: Path) -> tuple[tuple[list, list], tuple[list, list]]:
    """(steps, training losses) and (steps, validation losses) from RUN/metrics.jsonl."""
    train, val = ([], []), ([], [])
    for rec in read_jsonl(Path(run_dir) / "metrics.jsonl"):
        if "val_loss" in rec:
            val[0].append(rec["step"])
            val[1].append(rec["val_loss"])
        elif "loss" in rec:
            train[0].append(rec["step"])
            train[1].append(rec["loss"])
    return train, val


def measured_at(rec: dict) -> str:
    """Which weights a record measured: 'EMA weights at step 1,500'."""
    p = rec.get("protocol", {})
    kind = {"ema": "EMA weights", "model": "latest weights", "best": "best weights"}
    step = p.get("step")
    where = f"step {step:,}" if isinstance(step, int) else "step unknown"
    return f"{kind.get(p.get('weights'), 'weights')} at {where}"
