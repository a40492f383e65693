"""The human judgements' part of `genlab compare`: what people said in the studio.

    section = human_section(["runs/vae", "runs/gan"])   # an HTML fragment; "" if none

Per run, HYPE-infinity (how often people mistook real for generated or back) with its 95%
interval; then the Bradley-Terry table of the pairwise choices among the compared runs.
The figures come from genlab.metrics.human, over each run's judgements.jsonl.
"""

from __future__ import annotations

import html
from pathlib import Path

from genlab.metrics.human import FILE, summary


def _pct(x) -> str:
    return "" if x is None else f"{x:.1%}"


def _ci(lo: float, hi: float, fmt: str) -> str:
    # every choice alike (one run always won): resampling cannot vary, so no interval
    return "[no spread]" if hi - lo < 1e-9 else f"[{lo:{fmt}}, {hi:{fmt}}]"


def human_section(run_dirs: list[str | Path]) -> str:
    """The "Human judgements" section for ``run_dirs``, or "" when none has judgements."""
    dirs = [Path(d) for d in run_dirs]
    if not any((d / FILE).is_file() for d in dirs):
        return ""
    s = summary(dirs)
    names = {str(d.resolve()): d.name for d in dirs}
    rows = []
    for path, h in s["hype"].items():
        if not h["n"]:
            continue
        lo, hi = h["ci"]
        rows.append(
            f'<tr><td class="l">{html.escape(names[path])}</td><td>{_pct(h["error_rate"])}</td>'
            f"<td>[{_pct(lo)}, {_pct(hi)}]</td><td>{h['n']} ({h['n_real']} real, "
            f"{h['n_generated']} generated)</td><td>{_pct(h['fake_error_rate'])}</td>"
            f"<td>{_pct(h['real_error_rate'])}</td></tr>"
        )
    hype = (
        '<h3>Real or generated? (HYPE<sub>&infin;</sub>)</h3><p class="small">The share of '
        "answers that were wrong when people were shown the run's output and real data mixed "
        "(Zhou et al. 2019). 50% means people cannot tell real from generated; 0% means they "
        "always can. Interval: 95% Wilson score.</p>"
        '<table><tr><th class="l">run</th><th>error rate</th><th>95% interval</th><th>n</th>'
        "<th>generated called real</th><th>real called generated</th></tr>"
        f"{''.join(rows)}</table>"
        if rows
        else ""
    )
    bt = s["bradley_terry"]
    table = "".join(
        f'<tr><td>{rank}</td><td class="l">{html.escape(names.get(r["path"], r["name"]))}</td>'
        f"<td>{r['score']:+.2f} {_ci(*r['ci'], '+.2f')}</td>"
        f"<td>{r['elo']:.0f} {_ci(*r['elo_ci'], '.0f')}</td>"
        f"<td>{r['wins']}&ndash;{r['losses']}&ndash;{r['ties']}</td>"
        f"<td>{r['wins'] + r['losses'] + r['ties']}</td></tr>"
        for rank, r in enumerate(bt["scores"], 1)
    )
    pairs = (
        '<h3>Which is better? (Bradley&ndash;Terry)</h3><p class="small">'
        f"{bt['n']} side-by-side choice(s) between the compared runs, fitted by the MM "
        "algorithm (Hunter 2004); a tie counts half a win to each side. Score: log-strength, "
        "mean 0; Elo = 1000 + 400 log<sub>10</sub> of the strength over the geometric mean. "
        "Intervals: 95%, by bootstrap over the choices (no spread: every choice went the "
        "same way, so resampling cannot vary them; read n).</p>"
        '<table><tr><th>rank</th><th class="l">run</th><th>score [95%]</th>'
        "<th>Elo [95%]</th><th>wins&ndash;losses&ndash;ties</th><th>n</th></tr>"
        f"{table}</table>"
        if bt["n"]
        else ""
    )
    if not (hype or pairs):
        return ""
    return f"<h2>Human judgements</h2>{hype}{pairs}\n"
