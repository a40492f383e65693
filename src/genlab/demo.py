"""`genlab demo`: train a conditional VAE, GAN and diffusion model on the embedded digits,
sample each (and interpolate the two with a latent space), evaluate all three (quality,
diversity, copies, each beside the real-vs-real floor; the VAE's likelihood too); train a
small character-level LSTM on Tiny Shakespeare (or, where nothing can be fetched, on Grimms'
Fairy Tales, which ship inside genlab), write a sample and measure it (readability, as the
share of its words the training text uses, among the figures); write one HTML report
comparing them all, and say where everything is.

    python -m genlab demo

    runs/demo/{vae,gan,diffusion}/   three runs (samples.png, eval/ inside; interpolation.png
                                     for the VAE and the GAN)
    runs/demo/lstm/                  the text run (sample.txt, eval/ inside)
    runs/demo/report.html            leaderboard, grids, the VAE's and GAN's knobs swept, curves
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from genlab.data.text import load_text
from genlab.evaluate import evaluate
from genlab.metrics.text import CorpusIndex
from genlab.outputs.images import save_images
from genlab.outputs.text import save_texts
from genlab.report.html import build_report
from genlab.run import load
from genlab.rundir import is_run
from genlab.training.launch import train

# (family, training steps in the demo, extra overrides, what it is): shorter than the
# presets, to keep the demo a quick look
FAMILIES = (
    ("vae", 800, (), "a conditional VAE (800 steps)"),
    ("gan", 500, (), "a conditional GAN (non-saturating, DiffAugment, EMA; 500 steps)"),
    (
        "diffusion",
        250,
        ("model.width=16",),
        "a conditional diffusion model (U-Net, v-prediction, guidance; 250 steps)",
    ),
)
# sweeping diffusion's sampling steps and guidance is slow on a CPU: left to `genlab compare`
NOT_SWEPT = ("diffusion",)
N_EVAL = 300
# The text part: a character-level LSTM, Tiny Shakespeare where it can be fetched. One layer
# of 256 at learning rate 4e-2: on Grimms, over three seeds, the steadiest of the settings
# tried (two layers stalled on one seed; 5e-2 learned worse, 2e-2 slower).
TEXT_FAMILY = "rnn"
TEXT_STEPS = 600
TEXT_OVERRIDES = (
    "model.cell=lstm",
    "model.hidden=256",
    "model.layers=1",
    "model.block_size=64",
    "train.batch_size=32",
    "train.lr=4e-2",
    "train.warmup_steps=20",
    "train.eval_every=0",
)
TEXT_TEMPERATURE = 0.8  # the printed sample's; a common default, not tuned to the figures
TEXT_N = 30  # samples per setting in the text metrics and sweeps


def _fresh(out: Path) -> Path:
    """``out``, or ``out-2``, ``out-3``... so a second demo never overwrites the first."""
    candidate, i = out, 1
    while is_run(candidate) or (candidate.exists() and any(candidate.iterdir())):
        i += 1
        candidate = out.with_name(f"{out.name}-{i}")
    return candidate


def _pictures(run_dir: Path) -> tuple[Path, Path | None]:
    run = load(run_dir, device="cpu")
    g = torch.Generator().manual_seed(0)
    labels = [i % 10 for i in range(100)]  # each column one digit, 0..9
    grid = save_images(
        run.model.sample(100, generator=g, label=labels), run_dir / "samples.png", nrow=10
    )
    if not run.model.has_latent:
        return grid, None
    interp = save_images(
        run.model.interpolate(10, 10, generator=g, label=list(range(10))),
        run_dir / "interpolation.png",
        nrow=10,
    )
    return grid, interp


def demo(out: Path, steps: int | None = None, device: str = "auto") -> Path:
    """Run the demo into ``out`` (or out-2, ...); ``steps`` overrides both families' steps."""
    t0 = time.perf_counter()
    out = _fresh(out)
    say = lambda msg: print(f"genlab demo: {msg}", file=sys.stderr)  # noqa: E731
    lines, records = [], {}
    for family, family_steps, extra, what in FAMILIES:
        run_dir = out / family
        say(f"training {what} on the embedded 8x8 digits -> {run_dir}")
        overrides = ["data.name=digits", "model.conditional=true", f"train.device={device}"]
        overrides += list(extra)
        if steps or family_steps:
            overrides.append(f"train.steps={steps or family_steps}")
        train(family, run_dir, overrides=overrides)
        grid, interp = _pictures(run_dir)
        metrics = ("samples", "nll") if family == "vae" else ("samples",)
        say(f"scoring {N_EVAL} {family.upper()} samples against the test split")
        records[family] = evaluate(
            load(run_dir, device="cpu"), metrics=metrics, n=N_EVAL, k=100, seed=0
        )
        lines.append(f"  {family + ' samples (column = digit 0-9):':<40}{grid}")
        if interp:
            lines.append(f"  {family + ' latent interpolations:':<40}{interp}")
    text_dir = out / "lstm"
    records["lstm"], text_summary = text_part(text_dir, steps, device, say)
    say("sweeping the VAE's temperature, the GAN's truncation, the LSTM's temperature and top-p")
    report = build_report(
        [*(out / f[0] for f in FAMILIES), text_dir],
        out / "report.html",
        n=N_EVAL,
        skip_sweeps=NOT_SWEPT,
        text_n=TEXT_N,
    )

    fl = records["vae"]["floor"]
    table = [
        f"  {'':<22}{'FID':>8}{'precision':>11}{'recall':>8}{'class ok':>10}{'copies':>8}",
        f"  {'real-vs-real floor':<22}{fl['fid']:>8.2f}{fl['precision']:>11.2f}"
        f"{fl['recall']:>8.2f}{fl['class_consistency']:>10.1%}{'':>8}",
    ]
    for family, rec in records.items():
        if family == "lstm":
            continue
        table.append(
            f"  {family.upper():<22}{rec['fid']:>8.2f}{rec['precision']:>11.2f}"
            f"{rec['recall']:>8.2f}{rec['class_consistency']:>10.1%}"
            f"{round(rec['copy_share'] * N_EVAL):>5}/{N_EVAL}"
        )
    vae = records["vae"]
    print(
        f"\ngenlab demo finished in {time.perf_counter() - t0:.0f}s.\n"
        + "\n".join(lines)
        + f"\n  {'the report (open it in a browser):':<40}{report}\n"
        + f"\n  {N_EVAL} samples each vs the {vae['protocol']['n_real']} test digits, domain-"
        "classifier features (class ok: the digit asked for was drawn; copies: closer to a "
        "training digit than 99% of unseen test digits are):\n"
        + "\n".join(table)
        + f"\n  VAE test NLL (IWAE, k=100): {vae['iwae_nll']:.2f} +- {vae['iwae_nll_sem']:.2f} "
        f"nats ({vae['bits_per_dim']:.3f} bits/dim, binarized digits)\n"
        + text_summary
        + f"  every figure with its protocol: {out}/*/eval/metrics.json\n"
        f"next: genlab serve {out}   (the studio in the browser: generate from all four, "
        "watch it happen, judge)\n"
        f"      genlab sample {out / 'gan'} -n 64 --out grid.png --truncation 1.0 --label 3\n"
        f"      genlab sample {out / 'diffusion'} -n 64 --out grid.png --guidance 4 --label 3\n"
        f"      genlab compare {out / 'diffusion'} --out report.html   (steps and guidance "
        "swept)\n"
        f"      genlab sample {text_dir} --prompt {records['lstm']['prompt']!r} "
        f"--temperature {TEXT_TEMPERATURE}\n"
    )
    return out


def text_part(run_dir: Path, steps: int | None, device: str, say) -> tuple[dict, str]:
    """Train the demo's LSTM into ``run_dir``, write and score a sample, evaluate it; return
    the eval record (with the printed sample's prompt and readability added) and the summary.

        record, summary = text_part(Path("runs/demo/lstm"), None, "cpu", print)
    """
    corpus, corpus_note = _text_corpus(say)
    say(f"training a character-level LSTM ({TEXT_STEPS} steps) on {corpus} -> {run_dir}")
    overrides = [f"data.name={corpus}", f"train.device={device}", *TEXT_OVERRIDES]
    train(TEXT_FAMILY, run_dir, overrides=[*overrides, f"train.steps={steps or TEXT_STEPS}"])
    run = load(run_dir, device="cpu")
    prompt = "ROMEO:" if corpus == "tinyshakespeare" else "There was once"
    story = run.sample(1, seed=0, prompt=prompt, max_new_tokens=300, temperature=TEXT_TEMPERATURE)
    save_texts(story, run_dir / "sample.txt", prompt=prompt)
    say(f"scoring {TEXT_N} LSTM samples: likelihood, readability, diversity, novelty, copying")
    record = evaluate(run, metrics=("samples", "nll"), n=TEXT_N, seed=0)
    # the printed sample's readability: the share of its new words the training text uses
    index = CorpusIndex(load_text(corpus, progress=False).text("train"))
    record.update(prompt=prompt, sample=story[0], sample_known_words=index.known_words(story))
    return record, _text_summary(record, corpus_note, run_dir)


def _text_corpus(say) -> tuple[str, str]:
    """Tiny Shakespeare through the fetch chain; where no source answers, Grimms' Fairy Tales,
    which ship inside genlab, said plainly."""
    from genlab.data.fetch import fetch
    from genlab.errors import DataError

    try:
        fetch("tinyshakespeare")
        return "tinyshakespeare", "Tiny Shakespeare"
    except DataError as e:
        say(
            f"Tiny Shakespeare cannot be fetched here ({str(e)[:160]}...); the LSTM trains on "
            "Grimms' Fairy Tales instead (Project Gutenberg #2591, 0.5 MB, embedded in genlab)"
        )
        return "grimms", "Grimms' Fairy Tales (Tiny Shakespeare could not be fetched)"


def _text_summary(rec: dict, corpus: str, run_dir: Path) -> str:
    ref = rec["reference"]
    controls = f"temperature {rec['protocol']['controls']['temperature']:g}"
    lines = [
        f"\n  LSTM on {corpus}: validation {rec['bits_per_char']:.2f} bits/character "
        f"(perplexity {rec['perplexity']:.2f} per character); {TEXT_N} samples ({controls}) vs "
        "real held-out text of the same lengths (known words: the share of their words that "
        "the training text uses):",
        f"    {'':<24}{'known words':>12}{'distinct-2':>11}{'self-BLEU':>11}{'new 4-grams':>13}"
        f"{'longest copy':>14}",
    ]
    for label, r in (("LSTM samples", rec), ("real text", ref)):
        lines.append(
            f"    {label:<24}{r['known_words']:>12.1%}{r['distinct_2']:>11.2f}"
            f"{r['self_bleu']:>11.2f}{r['novelty_4']:>13.2f}{r['copied_span_max']:>9.0f} words"
        )
    text = (rec["prompt"] + rec["sample"]).replace("\n", "\n      ")
    lines.append(
        f"  a sample (temperature {TEXT_TEMPERATURE:g}, seed 0; {run_dir / 'sample.txt'}), "
        f"{rec['sample_known_words']:.1%} of its words known:\n      {text}\n"
    )
    return "\n".join(lines) + "\n"
