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

    record = evaluate_samples(genlab.load("runs/cvae"), n=1000)
    record["fid"], record["floor"]["fid"], record["class_consistency"]
    record["ceiling"]["fid"]        # sound only
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from genlab.data import DataConfig, load_data
from genlab.errors import GenlabError
from genlab.metrics import image as M
from genlab.metrics.audio import GRIFFIN_LIM_ITERS, accuracy_through_sound, through_sound
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
    with tqdm(
        total=n, desc="sampling", unit="img", file=sys.stderr, disable=not progress, delay=1.0
    ) as bar:
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


EXTRACTORS = ("classifier", "inception")


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


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            h.update(json.dumps([list(part.shape), str(part.dtype)]).encode())
            h.update(part.contiguous().numpy().tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True).encode())
    return h.hexdigest()


def _feature_path(ex, x: torch.Tensor, kind: str = "features") -> Path:
    """Where ``cached_features`` keeps ex's ``kind`` of images ``x`` (named by content)."""
    from genlab.data.fetch import cache_dir

    key = _digest(ex.weights_sha256, kind, x)
    return cache_dir() / "features" / f"{ex.name}-{kind}-{key[:40]}.npy"


def cached_features(
    ex, x: torch.Tensor, *, kind: str = "features", bar=None, path: Path | None = None
) -> np.ndarray:
    """``ex.features(x)`` (or ``ex.probs`` with kind="probs"), cached on disk by content:
    the extractor's weights' sha256 and the images' bytes name the file, so real splits
    (and the floor's train subset) are featurised once per extractor, and a cache entry
    can never be stale. Under ``$GENLAB_CACHE/features/``; ``path``: that file's name
    when the caller has already computed it with ``_feature_path``."""
    from genlab.fsutil import write_bytes_atomic

    path = path or _feature_path(ex, x, kind)
    if path.exists():
        try:
            out = np.load(path, allow_pickle=False)
            if out.ndim == 2 and len(out) == len(x):
                return out.astype(np.float64)
        except (OSError, ValueError):
            pass
        print(f"genlab: cached features {path} are unusable; recomputing", file=sys.stderr)
    out = ex.features(x, bar=bar) if kind == "features" else ex.probs(x)
    # float32 when that loses nothing (the networks compute in float32), else float64
    small = out.astype(np.float32)
    keep = small if np.array_equal(small.astype(np.float64), out) else out
    buf = io.BytesIO()
    np.save(buf, keep, allow_pickle=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, buf.getvalue())
    return out


def _labelled(*splits) -> bool:
    return all(s.y is not None and s.num_classes >= 2 for s in splits)


def _sample_side(
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
    """Every metric of one image set against the test features (used for samples and
    floor), and how MS-SSIM was measured (scales, window)."""
    rec = compare(f_test, feats, seed=seed, n_boot=n_boot)
    if clf is not None:
        p = cached_features(clf, x, kind="probs") if real else clf.probs(x)
        rec["is"], rec["is_std"] = M.inception_score(p)
        if labels is not None:
            rec["class_consistency"] = float((p.argmax(1) == np.asarray(labels)).mean())
    div = ms_ssim_diversity(x, seed=seed)
    rec["ms_ssim"] = div.pop("ms_ssim")
    return rec, div


def _ceiling(
    ex, clf, train, test, floor_x, floor_y, floor_key: str, f_test, iters: int, *, seed, n_boot
) -> dict[str, Any]:
    """The ceiling of a spectrogram model: the floor's training clips through the transform
    and Griffin-Lim, scored like samples (and its copy share); with the classifier, its
    accuracy on the test clips heard the same way ("test_accuracy"). Cached like the floor."""
    from genlab.data.fetch import cache_dir
    from genlab.fsutil import read_json, write_json

    key = _digest("ceiling", floor_key, iters, test.audio)
    path = cache_dir() / "floors" / f"{ex.name}-ceiling-{key[:40]}.json"
    try:
        ceiling = read_json(path) if path.exists() else None
    except GenlabError:
        ceiling = None
    if isinstance(ceiling, dict):
        return ceiling
    heard = through_sound(floor_x, test.audio, iters)
    f_heard = cached_features(ex, heard)
    ceiling, _ = _sample_side(
        heard, floor_y, f_heard, f_test, clf, seed=seed, n_boot=n_boot, real=True
    )
    nov = novelty(heard, train.x, test.x)
    ceiling.update(copy_share=nov["copy_share"], nn_distance_ratio=nov["nn_distance_ratio"])
    if clf is not None:
        ceiling["test_accuracy"] = accuracy_through_sound(clf, test, test.audio, iters)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, ceiling)
    return dict(ceiling)


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
    from genlab.data.fetch import cache_dir
    from genlab.fsutil import read_json, write_json

    if splits is None:
        splits = load_data(data, "train", progress), load_data(data, "test", progress)
    train, test = splits
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
    audio = test.audio
    if audio is not None and griffin_lim_iters is not None:
        fake = through_sound(fake, transform or audio, griffin_lim_iters, image_transform=audio)
    # after the checks: the classifier may train and Inception may download
    labelled = _labelled(train, test)
    clf = get_classifier(data, progress=progress, splits=(train, test)) if labelled else None
    ex = clf if extractor == "classifier" and clf is not None else None
    if ex is None:
        ex = get_extractor(extractor, data, (train, test), inception=inception, progress=progress)
    pick = torch.randperm(len(train.x), generator=torch.Generator().manual_seed(seed))[:n]
    floor_x, floor_y = train.x[pick], (train.y[pick].tolist() if labels is not None else None)

    p_test, p_floor = _feature_path(ex, test.x), _feature_path(ex, floor_x)  # hashed once
    todo = [x for x, p in ((test.x, p_test), (floor_x, p_floor)) if not p.exists()] + [fake]
    with tqdm(
        total=sum(len(x) for x in todo),
        desc=f"{ex.name} features",
        unit="img",
        file=sys.stderr,
        disable=not progress,
        delay=1.0,
    ) as bar:
        f_test = cached_features(ex, test.x, bar=bar, path=p_test)
        f_floor = cached_features(ex, floor_x, bar=bar, path=p_floor)
        f_fake = ex.features(fake, bar=bar)

    rec, div = _sample_side(fake, labels, f_fake, f_test, clf, seed=seed, n_boot=n_boot, real=False)
    # The floor depends only on real images, seed and protocol: cached beside the features.
    floor_key = _digest(
        FLOOR_VERSION,
        ex.weights_sha256,
        clf.weights_sha256 if clf is not None else None,
        p_test.name,
        floor_x,
        floor_y,
        seed,
        n_boot,
    )
    floor_path = cache_dir() / "floors" / f"{ex.name}-{floor_key[:40]}.json"
    try:
        floor = read_json(floor_path) if floor_path.exists() else None
    except GenlabError:
        floor = None
    if not isinstance(floor, dict):
        floor, _ = _sample_side(
            floor_x, floor_y, f_floor, f_test, clf, seed=seed, n_boot=n_boot, real=True
        )
        floor_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(floor_path, floor)
    nov = novelty(fake, train.x, test.x)
    rec.update(copy_share=nov["copy_share"], nn_distance_ratio=nov["nn_distance_ratio"])
    rec["floor"] = floor
    if audio is not None:
        ceiling_iters = griffin_lim_iters if griffin_lim_iters is not None else GRIFFIN_LIM_ITERS
        ceiling = _ceiling(
            ex,
            clf,
            train,
            test,
            floor_x,
            floor_y,
            floor_key,
            f_test,
            ceiling_iters,
            seed=seed,
            n_boot=n_boot,
        )
        ceiling_accuracy = ceiling.pop("test_accuracy", None)
        rec["ceiling"] = ceiling
    rec["protocol"] = {
        "extractor": ex.protocol(),
        "class_probabilities": clf.protocol() if clf is not None else None,
        "resize": ex.resize,
        "real_split": "test",
        "n_real": len(test.x),
        "n_generated": n,
        "n_floor": len(floor_x),
        "floor": "a seeded subset of the train split, of the generated n, against the test split",
        "seed": seed,
        "controls": None,
        "labels": "as requested of each sample" if labels is not None else None,
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
    if audio is not None:
        rec["protocol"]["audio"] = {
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
            "transform": audio,
        }
    rec["time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return rec


def load_samples(path: str | Path) -> tuple[torch.Tensor, list[int] | None]:
    """Samples from another tool: an .npz with ``x`` uint8 (N, H, W, C) or (N, H, W), and
    optionally ``y``, the label each sample was asked for. Returns (N, C, H, W) uint8."""
    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"{path} does not exist; give an .npz with x (uint8 N,H,W,C)")
    try:
        with np.load(path, allow_pickle=False) as z:
            x, y = z["x"], (z["y"] if "y" in z.files else None)
    except KeyError:
        raise GenlabError(f"{path} has no array 'x'; save samples as x (uint8 N,H,W,C)") from None
    except (OSError, ValueError) as e:
        raise GenlabError(f"{path} is not a readable .npz ({str(e)[:80]})") from None
    if x.dtype != np.uint8 or x.ndim not in (3, 4):
        raise GenlabError(
            f"{path}: x must be uint8 (N, H, W, C) or (N, H, W), got {x.dtype} {x.shape}"
        )
    x = torch.from_numpy(x if x.ndim == 4 else x[..., None]).permute(0, 3, 1, 2).contiguous()
    if y is not None and len(y) != len(x):
        raise GenlabError(f"{path}: {len(y)} labels for {len(x)} samples")
    return x, (y.astype(np.int64).tolist() if y is not None else None)


def protocol_key(rec: dict) -> str:
    """A file name that differs whenever the protocol or the weights measured do (extractor,
    n, seed, controls, the weights file's sha256...)."""
    p = rec["protocol"]
    clf = (p.get("class_probabilities") or {}).get("weights_sha256")
    audio = p.get("audio")
    return _key(
        p["extractor"],
        clf,
        p["n_generated"],
        p["seed"],
        p["controls"],
        p,
        audio and audio["griffin_lim_iters"],
    )


def _key(
    extractor: dict,
    clf: str | None,
    n: int,
    seed: int,
    controls: dict,
    who: dict,
    gl_iters: int | None = None,
) -> str:
    """``who``: the weights measured (``Run.identity()``): their kind and content;
    ``gl_iters``: sound only, the Griffin-Lim iterations the samples were heard through."""
    fields = {
        "real_split": "test",
        "n_generated": n,
        "seed": seed,
        "controls": controls,
        "weights": who.get("weights"),
        "weights_sha256": who.get("weights_sha256"),
        "extractor": extractor.get("weights_sha256", extractor["name"]),
        "class_probabilities": clf,
        "floor_version": FLOOR_VERSION,
    }
    if gl_iters is not None:  # sound only: image records keep their keys
        fields["griffin_lim_iters"] = gl_iters
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]
    return f"samples-{extractor['name']}-n{n}-seed{seed}-{digest}"


def cached_evaluate_samples(
    run,
    *,
    n: int,
    seed: int = 0,
    controls: dict | None = None,
    extractor: str = "classifier",
    inception: str | None = None,
    progress: bool = True,
    gl_iters: int = GRIFFIN_LIM_ITERS,
) -> dict[str, Any]:
    """``evaluate_samples``, read from RUN/eval/ when this exact protocol was measured
    before on these very weights (the key holds their sha256: a run trained further gets
    new records, and its old ones stay as history); a new record is written beside the
    others and does not replace RUN/eval/metrics.json."""
    from genlab.fsutil import read_json, write_json

    data = run.config.data
    splits = load_data(data, "train", progress), load_data(data, "test", progress)
    clf = get_classifier(data, progress=progress, splits=splits) if _labelled(*splits) else None
    ex = clf if extractor == "classifier" and clf is not None else None
    if ex is None:
        ex = get_extractor(extractor, data, splits, inception=inception, progress=progress)
    full = run.model.check_controls(dict(controls or {}))
    clf_sha = clf.weights_sha256 if clf is not None else None
    sound = gl_iters if splits[1].audio is not None else None
    key = _key(ex.protocol(), clf_sha, n, seed, full, run.identity(), sound)
    path = run.path / "eval" / f"{key}.json"
    if path.exists():
        return read_json(path)
    rec = evaluate_samples(
        run,
        n=n,
        seed=seed,
        controls=controls,
        extractor=extractor,
        inception=inception,
        progress=progress,
        splits=splits,
        gl_iters=gl_iters,
    )
    path.parent.mkdir(exist_ok=True)
    write_json(path, rec)
    return rec
