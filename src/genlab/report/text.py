"""The text runs' part of `genlab compare`: a table beside real text, samples, sweeps.

    section = text_section([("gpt", run)], n=100, seed=0)   # an HTML fragment

For each text run: validation bits per character and perplexity, then the sample metrics
of ``metrics/text.py`` at the default controls, each beside the same metrics of real
held-out text of the same lengths (the text analogue of the real-vs-real floor); three
samples; and how readability, diversity, repetition, novelty and copying move as temperature
and top-p are swept. Every point is an eval record cached in RUN/eval/, as for images.
"""

from __future__ import annotations

import html

from genlab.evaluate import cached_evaluate_text
from genlab.report.plots import line_plot, measured_at, read_curves

# (key, column title); shares in [0, 1] except the spans (words)
COLUMNS = (
    ("bits_per_char", "bits/char (val)"),
    ("perplexity", "perplexity (val)"),
    ("known_words", "known words"),
    ("distinct_2", "distinct-2"),
    ("self_bleu", "self-BLEU"),
    ("repetition_rate", "repeated 4-grams"),
    ("novelty_4", "new 4-grams"),
    ("copied_span_max", "longest copy (words)"),
    ("copied_span_mean", "mean longest copy"),
)
SWEPT = (  # what the sweep plots show (all shares)
    ("known_words", "known words (readability)"),
    ("distinct_2", "distinct-2 (diversity)"),
    ("self_bleu", "self-BLEU (sameness)"),
    ("repetition_rate", "repeated 4-grams"),
    ("novelty_4", "new 4-grams (novelty)"),
)


def _cell(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else ("" if v is None else html.escape(str(v)))


def text_section(runs: list[tuple[str, object]], *, n: int, seed: int, progress: bool) -> str:
    rows, samples, plots, train_curves, val_curves = [], [], [], {}, {}
    for name, run in runs:
        main = cached_evaluate_text(
            run, n=n, seed=seed, metrics=("samples", "nll"), progress=progress
        )
        ref = main["reference"]
        cells = "".join(f"<td>{_cell(main.get(k))}</td>" for k, _ in COLUMNS)
        floor = "".join(f"<td>{_cell(ref.get(k))}</td>" for k, _ in COLUMNS)
        tok = main["protocol"]["tokenizer"]
        rows.append(
            f'<tr><td class="l">{html.escape(name)}<br><span class="small">'
            f"{run.config.family}, {html.escape(tok)}, {measured_at(main)}</span></td>"
            f"{cells}</tr>"
            f'<tr class="floor"><td class="l">real held-out text</td>{floor}</tr>'
        )
        pieces = "".join(
            f"<pre>{html.escape(s)}</pre>" for s in main.get("samples_preview", [])[:3]
        )
        samples.append(f"<h3>{html.escape(name)}</h3>{pieces}")
        for knob, values in run.model.sweeps():
            records = [
                cached_evaluate_text(run, n=n, seed=seed, controls={knob: v}, progress=progress)
                for v in values
            ]
            plots.append(
                line_plot(
                    {
                        label: (list(values), [r[k] for r in records])
                        for k, label in SWEPT
                        # records cached by an older genlab lack the newer metrics
                        if all(k in r for r in records)
                    },
                    title=f"{name}: diversity and originality vs {knob}",
                    xlabel=knob,
                    ylabel="share",
                )
            )
            spans = [r["copied_span_max"] for r in records]
            plots.append(
                line_plot(
                    {
                        "longest copied span (max)": (list(values), spans),
                        "mean over samples": (
                            list(values),
                            [r["copied_span_mean"] for r in records],
                        ),
                    },
                    title=f"{name}: text copied from training vs {knob}",
                    xlabel=knob,
                    ylabel="words",
                )
            )
        train_curves[name], val_curves[name] = read_curves(run.path)
    head = "".join(f"<th>{html.escape(t)}</th>" for _, t in COLUMNS)
    curves = [
        line_plot(train_curves, title="text: training loss", xlabel="step", ylabel="nats/token"),
        line_plot(val_curves, title="text: validation loss", xlabel="step", ylabel="nats/token"),
    ]
    return f"""<h2>Text</h2>
<p class="small">Each run: {n} samples (seed {seed}) at its default controls, and the likelihood
of its whole validation split. Below each run, the same sample metrics of {n} pieces of real
held-out text of the same lengths: what writing like the corpus scores. "known words" is the
share of the words (letters only) that occur in the training text: readability, which made-up
words lower. n-grams are of lowercased words and punctuation marks; "new 4-grams" are those
never in the training text;
"longest copy" is the longest run of words found verbatim in it (a sentence or more means
recitation).</p>
<table><tr><th class="l">run</th>{head}</tr>{"".join(rows)}</table>
<h2>Stories</h2>{"".join(samples)}
<h2>Temperature and top-p</h2>{"".join(plots)}
<h2>Text training</h2>{"".join(curves)}
"""
