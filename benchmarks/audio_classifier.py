"""The audio domain classifier on FSDD, and the floor and ceiling that sound is measured against.

    GENLAB_DATA_MIRROR=../shared/data python benchmarks/audio_classifier.py [--data fsdd] \\
        [--n 300] [--gl-iters 32] [--also 0,8,100]

Trains (or loads from the cache, by data fingerprint) the domain classifier on the training
split's spectrograms and reports its test accuracy; then its accuracy on the test clips
through the transform and Griffin-Lim (the ceiling's test accuracy, and the share of the
accuracy it keeps); then `score_samples` on the real test clips given as spectrogram images,
so heard through Griffin-Lim like a model's samples, beside the floor (real training clips
vs the test split) and the ceiling (those training clips heard through Griffin-Lim). The
issue's acceptance: test accuracy at least 95%, the ceiling keeping at least 90% of it.
``--also``: the ceiling at other numbers of Griffin-Lim iterations, to see whether the
classifier's feature space hears a worse inversion. Prints one JSON object; about two
minutes on one CPU thread (one of them training the classifier, cached afterwards).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from genlab.data import DataConfig, load_data
from genlab.data.fetch import cache_dir
from genlab.metrics.audio import GRIFFIN_LIM_ITERS, accuracy_through_sound
from genlab.metrics.features import data_fingerprint, get_classifier
from genlab.metrics.protocol import score_samples

ROWS = ("fid", "kid", "precision", "recall", "is", "class_consistency", "copy_share")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="fsdd", help="fsdd or a folder of .wav files")
    p.add_argument("--n", type=int, default=300, help="clips in each scored set (default 300)")
    p.add_argument("--gl-iters", type=int, default=GRIFFIN_LIM_ITERS)
    p.add_argument("--also", default="0,8,100", help="other Griffin-Lim iterations to compare")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    data = DataConfig(name=args.data)
    train, test = load_data(data, "train"), load_data(data, "test")
    meta = cache_dir() / "classifiers" / f"{data_fingerprint(train)}.json"
    cached = meta.exists()
    clf = get_classifier(data, splits=(train, test), progress=False)
    train_seconds = json.loads(meta.read_text()).get("train_seconds")
    ceiling_acc = accuracy_through_sound(clf, test, test.audio, args.gl_iters)
    n = min(args.n, len(test.x))
    # a seeded order: the classifier score is taken over 10 splits, and FSDD lists by digit
    order = torch.randperm(len(test.x), generator=torch.Generator().manual_seed(args.seed))[:n]

    def score(iters: int) -> dict:
        return score_samples(
            test.x[order],
            test.y[order].tolist(),
            data,
            seed=args.seed,
            splits=(train, test),
            griffin_lim_iters=iters,
            progress=False,
        )

    t0 = time.perf_counter()
    rec = score(args.gl_iters)
    t_score = time.perf_counter() - t0
    pick = lambda r: {k: round(r[k], 4) for k in ROWS if k in r}  # noqa: E731
    also = {}
    for iters in sorted({int(i) for i in args.also.split(",") if i.strip()} - {args.gl_iters}):
        r = score(iters)
        also[str(iters)] = {
            "ceiling": pick(r["ceiling"]),
            "ceiling_test_accuracy": r["protocol"]["audio"]["ceiling_test_accuracy"],
        }
    record = {
        "benchmark": "audio_classifier",
        "data": args.data,
        "n_train": len(train.x),
        "n_test": len(test.x),
        "classifier": {
            "test_accuracy": clf.test_accuracy,
            "ceiling_test_accuracy": ceiling_acc,
            "kept": round(ceiling_acc / clf.test_accuracy, 4),
            "griffin_lim_iters": args.gl_iters,
            "weights_sha256": clf.weights_sha256,
            "train_seconds": train_seconds,
            "from_cache": cached,
        },
        "acceptance": {
            "test_accuracy_at_least_0.95": clf.test_accuracy >= 0.95,
            "ceiling_keeps_at_least_90_percent": ceiling_acc >= 0.9 * clf.test_accuracy,
        },
        "n": n,
        "heard_test_clips": pick(rec),
        "floor": pick(rec["floor"]),
        "ceiling": pick(rec["ceiling"]),
        "ceiling_at_other_griffin_lim_iters": also,
        "about": {
            "heard_test_clips": "real test clips as spectrogram images, through Griffin-Lim "
            "like a model's samples, against the test split they come from (so FID near 0: "
            "read their copy share, the copy test's false alarms on unseen sound)",
            "floor": "a seeded subset of n training clips, spectrograms from the waveform, "
            "against the test split",
            "ceiling": "the same training clips through the transform and Griffin-Lim: the "
            "best a spectrogram model can score after inversion (its copy share: memorised "
            "clips the copy test still flags)",
        },
        "score_seconds": round(t_score, 1),
    }
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
