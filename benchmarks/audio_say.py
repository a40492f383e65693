"""Is a said number understood? `genlab sample RUN --say 0123456789`, cut at its gaps, each
piece recognised by the audio domain classifier, against the same classifier on single
generated clips (the run's class consistency, both heard through Griffin-Lim).

    python benchmarks/audio_say.py runs/demo-audio/vae --text 0123456789 --repeats 20

Prints one JSON line: digits recognised in the said numbers, the share of numbers whose
cut gave exactly one piece per character, and single clips' class consistency.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from genlab.data.audio import fit_length
from genlab.data.spectrogram import Spectrogram
from genlab.metrics.audio import through_sound, waves_to_images
from genlab.metrics.cache import cached_features
from genlab.metrics.features import get_classifier
from genlab.run import load
from genlab.speech import labels_of, say


def pieces(wave: np.ndarray, rate: int, gap: float = 0.1) -> list[np.ndarray]:
    """``wave`` cut where it is silent (exact zeros, as `say` joins clips) for ``gap`` s."""
    quiet = np.abs(wave) < 1e-7
    out, start, run = [], None, 0
    for i, q in enumerate(quiet):
        if q:
            run += 1
            if start is not None and run >= gap * rate:
                out.append(wave[start : i - run + 1])
                start = None
        else:
            if start is None:
                start = i
            run = 0
    if start is not None:
        out.append(wave[start:])
    return [p for p in out if len(p) > 0.02 * rate]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run")
    p.add_argument("--text", default="0123456789")
    p.add_argument("--repeats", type=int, default=20, help="numbers said (seeds 0..R-1)")
    p.add_argument("--n", type=int, default=500, help="single clips for class consistency")
    args = p.parse_args()
    t0 = time.perf_counter()
    run = load(args.run)
    spec = Spectrogram.from_dict(run.info.audio)
    clf = get_classifier(run.config.data, progress=False)
    want = labels_of(args.text, run.info.classes)
    right = total = whole = 0
    for seed in range(args.repeats):
        cut = pieces(say(run, args.text, seed=seed), spec.sample_rate)
        if len(cut) != len(want):
            total += len(want)  # a number that does not cut into its digits counts as wrong
            continue
        whole += 1
        clips = np.stack([fit_length(c.astype(np.float32), spec.samples)[0] for c in cut])
        probs = cached_features(clf, waves_to_images(clips, run.info.audio), kind="probs")
        right += int((probs.argmax(1) == np.asarray(want)).sum())
        total += len(want)
    labels = [i % run.info.num_classes for i in range(args.n)]
    g = torch.Generator().manual_seed(0)
    x = torch.cat(
        [run.model.sample(len(labels[i : i + 250]), generator=g, label=labels[i : i + 250])
         for i in range(0, args.n, 250)]
    )
    heard = through_sound(((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8), run.info.audio)
    single = float((cached_features(clf, heard, kind="probs").argmax(1) == np.asarray(labels)).mean())
    print(json.dumps({
        "run": args.run,
        "text": args.text,
        "numbers": args.repeats,
        "cut_into_its_digits": whole / args.repeats,
        "digits_recognised_in_said_numbers": right / total,
        "single_clips_class_consistency": single,
        "single_clips": args.n,
        "classifier_test_accuracy": getattr(clf, "test_accuracy", None),
        "seconds": round(time.perf_counter() - t0, 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
