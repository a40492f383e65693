"""Sample metrics with their protocol: what `genlab eval` measures and records.

Every figure is saved with what makes it reproducible (extractor and its
weights' sha256, numbers of real and generated samples, which real split,
seeds, sampling controls) and beside the real-vs-real floor measured the
same way: a train subset of the same n, compared with the same test split.

Sound (a data set of clips, data/audio.py) is measured as the images it is learned as, but
of the sound a person would hear: generated spectrogram images go through Griffin-Lim and
back (metrics/audio.py, ``through_sound``) before any feature, and a second reference
stands beside the floor, the ceiling: the floor's training clips through the transform and
Griffin-Lim, the best a spectrogram model can score after inversion.

Features of real images, and the floor's and the ceiling's records, are cached by content
(metrics/cache.py); a run's records, one per protocol under RUN/eval/, are named and reused
by genlab/evaluate.py; other tools' samples are read by metrics/sample_files.py.

    record = evaluate_samples(genlab.load("runs/cvae"), n=1000)
    record["fid"], record["floor"]["fid"], record["class_consistency"]
    record["ceiling"]["fid"]        # sound only
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from genlab.data import DataConfig, load_data
from genlab.errors import GenlabError
from genlab.metrics import image as M
from genlab.metrics.audio import GRIFFIN_LIM_ITERS, accuracy_through_sound, through_sound
from genlab.metrics.cache import (
    cached_features,
    cached_record,
    content_digest,
    feature_path,
    record_path,
)
from genlab.metrics.features import get_classifier
from genlab.metrics.novelty import novelty
from genlab.metrics.ssim import ms_ssim_diversity
from genlab.models.layers import labels_for
from genlab.outputs.images import to_uint8

# Part of each cached floor's key: bump it when a metric's definition changes.
FLOOR_VERSION = 1

SAMPLE_METRICS = (
    "fid",
    "kid",
    "precision",
    "recall",
    "density",
    "coverage",
    "is",
    "class_consistency",
    "ms_ssim",
    "copy_share",
)

EXTRACTORS = ("classifier", "inception")


def _bar(total: int, desc: str, progress: bool) -> tqdm:
    """A bar on stderr over ``total`` images, shown after a second (with ``progress``)."""
    return tqdm(
        total=total, desc=desc, unit="img", file=sys.stderr, disable=not progress, delay=1.0
    )


def generate(
    run,
    n: int,
    *,
    seed: int = 0,
    controls: dict | None = None,
    batch_size: int = 250,
    progress: bool = True,
) -> tuple[torch.Tensor, list[int] | None]:
    """``n`` samples as uint8 (N, C, H, W), and the labels asked for (conditional models:
    cycling through the classes unless ``controls["label"]`` says otherwise)."""
    controls = run.model.check_controls(dict(controls or {}))
    conditional = bool(getattr(run.config.model, "conditional", False))
    labels = labels_for(n, controls.get("label"), run.info.num_classes) if conditional else None
    g = torch.Generator(device=run.model.device).manual_seed(seed)
    out = []
    with _bar(n, "sampling", progress) as bar:
        for start in range(0, n, batch_size):
            size = min(batch_size, n - start)
            c = dict(controls)
            if labels is not None:
                c["label"] = labels[start : start + size]
            x = run.model.sample(size, generator=g, **c)
            out.append(torch.from_numpy(to_uint8(x)).permute(0, 3, 1, 2))
            bar.update(size)
    return torch.cat(out), labels


def compare(real: np.ndarray, fake: np.ndarray, *, seed: int = 0, n_boot: int = 50) -> dict:
    """Feature-space metrics of ``fake`` against ``real`` (both (N, D) float64)."""
    kid, kid_std = M.kid(
        real, fake, subsets=100, subset_size=min(1000, len(real), len(fake)), seed=seed
    )
    precision, recall = M.precision_recall(real, fake, k=3)
    density, coverage = M.density_coverage(real, fake, k=5)
    return {
        "fid": M.fid(real, fake),
        "fid_ci": list(M.fid_bootstrap_ci(real, fake, n_boot=n_boot, seed=seed)),
        "kid": kid,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
        "density": density,
        "coverage": coverage,
    }


def evaluate_samples(
    run,
    *,
    n: int = 1000,
    seed: int = 0,
    controls: dict | None = None,
    n_boot: int = 50,
    extractor: str = "classifier",
    inception: str | None = None,
    progress: bool = True,
    splits: tuple | None = None,
    gl_iters: int = GRIFFIN_LIM_ITERS,
) -> dict[str, Any]:
    """Generate ``n`` samples of ``run`` and score them beside the floor (``splits``,
    ``gl_iters``: see ``score_samples``)."""
    if n < 10:
        raise GenlabError("--n must be at least 10 for sample metrics")
    fake, labels = generate(run, n, seed=seed, controls=controls, progress=progress)
    rec = score_samples(
        fake,
        labels,
        run.config.data,
        seed=seed,
        n_boot=n_boot,
        extractor=extractor,
        inception=inception,
        progress=progress,
        splits=splits,
        griffin_lim_iters=gl_iters,
        transform=run.info.audio,
    )
    rec["protocol"].update(controls=run.model.check_controls(dict(controls or {})))
    rec["protocol"].update(run.identity())  # weights, their sha256 and training step
    return rec


def get_extractor(
    name: str, data: DataConfig, splits: tuple, *, inception=None, progress: bool = True
):
    """The feature extractor called ``name`` (see EXTRACTORS) for ``data``."""
    if name == "classifier":
        return get_classifier(data, progress=progress, splits=splits)
    if name == "inception":
        from genlab.metrics.inception import get_inception

        return get_inception(inception, progress=progress)
    raise GenlabError(f"unknown extractor {name!r}; use one of {', '.join(EXTRACTORS)}")


def extractors_for(
    data: DataConfig, splits: tuple, extractor: str, *, inception=None, progress: bool = True
) -> tuple[Any, Any]:
    """(the feature extractor called ``extractor``, the domain classifier that gives the class
    probabilities or None when the data has no labels) for ``data``'s (train, test) splits."""
    labelled = all(s.y is not None and s.num_classes >= 2 for s in splits)
    clf = get_classifier(data, progress=progress, splits=splits) if labelled else None
    ex = clf if extractor == "classifier" and clf is not None else None
    if ex is None:
        ex = get_extractor(extractor, data, splits, inception=inception, progress=progress)
    return ex, clf


@dataclass(frozen=True)
class _Reals:
    """The real images every score stands beside, with their features: the splits, and the
    floor's seeded train subset (with its labels when the samples have labels)."""

    train: Any
    test: Any
    floor_x: torch.Tensor
    floor_y: list[int] | None
    f_test: np.ndarray
    f_floor: np.ndarray
    test_path: Path  # the test features' cache file: its name is part of the floor's key


def _check_samples(fake: torch.Tensor, data: DataConfig, train, test, extractor: str) -> None:
    """Refuse, before any work, samples the protocol cannot score against ``data``."""
    if tuple(fake.shape[1:]) != tuple(test.x.shape[1:]):
        raise GenlabError(
            f"the samples are {tuple(fake.shape[1:])} (C, H, W) but {data.name} "
            f"images are {tuple(test.x.shape[1:])}; resize them to match"
        )
    n = len(fake)
    if n > len(train.x):
        raise GenlabError(
            f"{n} samples but only {len(train.x)} training images for the "
            f"floor at the same n; use --n {len(train.x)} or fewer"
        )
    if extractor not in EXTRACTORS:
        raise GenlabError(f"unknown extractor {extractor!r}; use one of {', '.join(EXTRACTORS)}")


def _featurise(
    ex, train, test, fake: torch.Tensor, *, labelled: bool, seed: int, progress: bool
) -> tuple[_Reals, np.ndarray]:
    """The floor's train subset (``seed``, the samples' n), the features of the test split
    and of that subset (cached by content), and those of the samples, under one bar."""
    n = len(fake)
    pick = torch.randperm(len(train.x), generator=torch.Generator().manual_seed(seed))[:n]
    floor_x, floor_y = train.x[pick], (train.y[pick].tolist() if labelled else None)
    p_test, p_floor = feature_path(ex, test.x), feature_path(ex, floor_x)  # hashed once
    todo = [x for x, p in ((test.x, p_test), (floor_x, p_floor)) if not p.exists()] + [fake]
    with _bar(sum(len(x) for x in todo), f"{ex.name} features", progress) as bar:
        f_test = cached_features(ex, test.x, bar=bar, path=p_test)
        f_floor = cached_features(ex, floor_x, bar=bar, path=p_floor)
        f_fake = ex.features(fake, bar=bar)
    return _Reals(train, test, floor_x, floor_y, f_test, f_floor, p_test), f_fake


def _class_scores(clf, x: torch.Tensor, labels, *, real: bool) -> dict[str, Any]:
    """From the domain classifier's probabilities of ``x``: the classifier score ("is") and,
    with the labels asked for, the class consistency (the share classified as asked).
    Probabilities of real images are cached by content."""
    p = cached_features(clf, x, kind="probs") if real else clf.probs(x)
    out: dict[str, Any] = {}
    out["is"], out["is_std"] = M.inception_score(p)
    if labels is not None:
        out["class_consistency"] = float((p.argmax(1) == np.asarray(labels)).mean())
    return out


def _scores(
    x: torch.Tensor,
    labels,
    feats: np.ndarray,
    f_test: np.ndarray,
    clf,
    *,
    seed: int,
    n_boot: int,
    real: bool,
) -> tuple[dict[str, Any], dict]:
    """Every metric of one image set against the test features (used for the samples, the
    floor and the ceiling), and how MS-SSIM was measured (scales, window)."""
    rec = compare(f_test, feats, seed=seed, n_boot=n_boot)
    if clf is not None:
        rec.update(_class_scores(clf, x, labels, real=real))
    div = ms_ssim_diversity(x, seed=seed)
    rec["ms_ssim"] = div.pop("ms_ssim")
    return rec, div


def _copies(x: torch.Tensor, train, test) -> dict[str, float]:
    """Novelty of ``x``: its copy share and nearest-neighbour distance ratio (metrics/novelty)."""
    nov = novelty(x, train.x, test.x)
    return {"copy_share": nov["copy_share"], "nn_distance_ratio": nov["nn_distance_ratio"]}


def _floor(ex, clf, reals: _Reals, *, seed: int, n_boot: int) -> tuple[dict[str, Any], str]:
    """The real-vs-real floor: the train subset scored like samples against the test split,
    and its key. It depends only on real images, seed and protocol: cached beside the
    features, under that key."""
    key = content_digest(
        FLOOR_VERSION,
        ex.weights_sha256,
        clf.weights_sha256 if clf is not None else None,
        reals.test_path.name,
        reals.floor_x,
        reals.floor_y,
        seed,
        n_boot,
    )

    def score() -> dict[str, Any]:
        x, y, feats = reals.floor_x, reals.floor_y, reals.f_floor
        floor, _ = _scores(x, y, feats, reals.f_test, clf, seed=seed, n_boot=n_boot, real=True)
        return floor

    return cached_record(record_path(ex.name, key), score), key


def _ceiling(
    ex, clf, reals: _Reals, floor_key: str, iters: int, *, seed: int, n_boot: int
) -> dict[str, Any]:
    """The ceiling of a spectrogram model: the floor's training clips through the transform
    and Griffin-Lim, scored like samples (and its copy share); with the classifier, its
    accuracy on the test clips heard the same way ("test_accuracy"). Cached like the floor."""
    test = reals.test
    key = content_digest("ceiling", floor_key, iters, test.audio)

    def score() -> dict[str, Any]:
        heard = through_sound(reals.floor_x, test.audio, iters)
        f_heard = cached_features(ex, heard)
        ceiling, _ = _scores(
            heard, reals.floor_y, f_heard, reals.f_test, clf, seed=seed, n_boot=n_boot, real=True
        )
        ceiling.update(_copies(heard, reals.train, test))
        if clf is not None:
            ceiling["test_accuracy"] = accuracy_through_sound(clf, test, test.audio, iters)
        return ceiling

    return cached_record(record_path(f"{ex.name}-ceiling", key), score)


def score_samples(
    fake: torch.Tensor,
    labels: list[int] | None,
    data: DataConfig,
    *,
    seed: int = 0,
    n_boot: int = 50,
    extractor: str = "classifier",
    inception: str | None = None,
    progress: bool = True,
    splits: tuple | None = None,
    griffin_lim_iters: int | None = GRIFFIN_LIM_ITERS,
    transform: dict | None = None,
) -> dict[str, Any]:
    """Score uint8 samples (N, C, H, W) of any origin against ``data``'s test split, beside
    the floor: a train subset of the same n, scored the same way.

    Sound (``data`` is a set of clips): the samples are spectrogram images, heard through
    Griffin-Lim with ``griffin_lim_iters`` iterations before any feature (``transform``: the
    spectrogram they were made with, default the data's), or None when they already are
    sound (spectrograms computed from waveforms, ``metrics.audio.waves_to_images``). Beside
    the floor, the ceiling: the floor's clips through the transform and Griffin-Lim.

    ``extractor`` gives the features of FID, KID, precision/recall, density/coverage: the
    domain classifier (default) or the FID Inception network. The score and the class
    consistency always use the domain classifier's probabilities (when the data has labels).
    Features of real images are cached by content, and so is the floor's record.
    ``splits``: the (train, test) ImageSets of ``data`` when the caller has them loaded."""
    if splits is None:
        splits = load_data(data, "train", progress), load_data(data, "test", progress)
    train, test = splits
    _check_samples(fake, data, train, test, extractor)
    audio = test.audio
    if audio is not None and griffin_lim_iters is not None:
        fake = through_sound(fake, transform or audio, griffin_lim_iters, image_transform=audio)
    # after the checks: the classifier may train and Inception may download
    ex, clf = extractors_for(data, (train, test), extractor, inception=inception, progress=progress)
    labelled = labels is not None
    reals, f_fake = _featurise(
        ex, train, test, fake, labelled=labelled, seed=seed, progress=progress
    )
    rec, div = _scores(
        fake, labels, f_fake, reals.f_test, clf, seed=seed, n_boot=n_boot, real=False
    )
    floor, floor_key = _floor(ex, clf, reals, seed=seed, n_boot=n_boot)
    rec.update(_copies(fake, train, test))
    rec["floor"] = floor
    sound = None
    if audio is not None:
        iters = griffin_lim_iters if griffin_lim_iters is not None else GRIFFIN_LIM_ITERS
        ceiling = _ceiling(ex, clf, reals, floor_key, iters, seed=seed, n_boot=n_boot)
        accuracy = ceiling.pop("test_accuracy", None)
        rec["ceiling"] = ceiling
        sound = _sound_protocol(griffin_lim_iters, iters, accuracy, audio)
    rec["protocol"] = _protocol_record(ex, clf, data, reals, len(fake), seed, n_boot, labelled, div)
    if sound is not None:
        rec["protocol"]["audio"] = sound
    rec["time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return rec


def _protocol_record(
    ex,
    clf,
    data: DataConfig,
    reals: _Reals,
    n: int,
    seed: int,
    n_boot: int,
    labelled: bool,
    div: dict,
) -> dict[str, Any]:
    """What a sample record says about how it was measured (``div``: MS-SSIM's scales and
    window); the controls and the weights measured are filled in by ``evaluate_samples``."""
    return {
        "extractor": ex.protocol(),
        "class_probabilities": clf.protocol() if clf is not None else None,
        "resize": ex.resize,
        "real_split": "test",
        "n_real": len(reals.test.x),
        "n_generated": n,
        "n_floor": len(reals.floor_x),
        "floor": "a seeded subset of the train split, of the generated n, against the test split",
        "seed": seed,
        "controls": None,
        "labels": "as requested of each sample" if labelled else None,
        "weights": None,
        "weights_sha256": None,
        "step": None,
        "data": data.name,
        "precision_recall_k": 3,
        "density_coverage_k": 5,
        "kid_subsets": 100,
        "fid_bootstrap": n_boot,
        "fid_interval": "bootstrap percentiles shifted by the bootstrap's bias estimate: "
        "for the FID expected at this n",
        "ms_ssim": div,
        "copy_share": "pixel-space nearest training image closer than the 1st percentile "
        "of test-to-train distances",
    }


def _sound_protocol(
    griffin_lim_iters: int | None, ceiling_iters: int, ceiling_accuracy, transform: dict
) -> dict[str, Any]:
    """How a sound record heard its samples (``griffin_lim_iters``, None: they were
    waveforms) and made its ceiling (``ceiling_iters``; its classifier's accuracy)."""
    return {
        "griffin_lim_iters": griffin_lim_iters,
        "samples": "waveforms: their spectrograms, no Griffin-Lim"
        if griffin_lim_iters is None
        else "spectrogram images heard through fast Griffin-Lim (zero initial phase, "
        "momentum 0.99, clipped to [-1, 1]) and made spectrogram images again, uint8",
        "ceiling": "the floor's training clips through the transform and Griffin-Lim "
        f"({ceiling_iters} iterations), against the test split; its copy share: how many "
        "of those training clips the copy test still flags after inversion",
        "ceiling_griffin_lim_iters": ceiling_iters,
        "ceiling_test_accuracy": ceiling_accuracy,
        "transform": transform,
    }
