"""What the evaluation keeps on disk, named by content: features of real images, and records
(the floor, the ceiling) that depend only on real images and the protocol.

A file's name is the sha256 of everything that makes its content (the extractor's weights'
sha256, the images' bytes, the protocol's settings), so an entry can never be stale: real
splits are featurised once per extractor, and a changed protocol simply names another file.
Under ``$GENLAB_CACHE/features/`` and ``$GENLAB_CACHE/floors/``.

    f_test = cached_features(ex, test.x)                       # (N, D) float64, computed once
    p = cached_features(clf, heard, kind="probs")               # class probabilities, the same way
    floor = cached_record(path, lambda: score(...))             # JSON read back, or made and kept
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from genlab.data.fetch import cache_dir
from genlab.errors import GenlabError
from genlab.fsutil import read_json, write_bytes_atomic, write_json


def content_digest(*parts) -> str:
    """sha256 (hex) of ``parts``: tensors by shape, dtype and bytes, anything else as JSON."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            h.update(json.dumps([list(part.shape), str(part.dtype)]).encode())
            h.update(part.contiguous().numpy().tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True).encode())
    return h.hexdigest()


def feature_path(ex, x: torch.Tensor, kind: str = "features") -> Path:
    """Where ``cached_features`` keeps ex's ``kind`` of images ``x`` (named by content)."""
    key = content_digest(ex.weights_sha256, kind, x)
    return cache_dir() / "features" / f"{ex.name}-{kind}-{key[:40]}.npy"


def cached_features(
    ex, x: torch.Tensor, *, kind: str = "features", bar=None, path: Path | None = None
) -> np.ndarray:
    """``ex.features(x)`` (or ``ex.probs`` with kind="probs"), cached on disk by content:
    the extractor's weights' sha256 and the images' bytes name the file, so real splits
    (and the floor's train subset) are featurised once per extractor, and a cache entry
    can never be stale. Under ``$GENLAB_CACHE/features/``; ``path``: that file's name
    when the caller has already computed it with ``feature_path``."""
    path = path or feature_path(ex, x, kind)
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


def record_path(name: str, key: str) -> Path:
    """Where ``cached_record`` keeps a record of real images: ``floors/<name>-<key[:40]>.json``."""
    return cache_dir() / "floors" / f"{name}-{key[:40]}.json"


def cached_record(path: Path, make: Callable[[], dict]) -> dict:
    """The JSON object at ``path``, or ``make()`` written there when the file is missing or
    unusable (a damaged entry is made again, never trusted)."""
    try:
        record = read_json(path) if path.exists() else None
    except GenlabError:
        record = None
    if isinstance(record, dict):
        return record
    record = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    return record


def store_weights(stem: Path, state: dict[str, torch.Tensor], meta: dict) -> str:
    """Write a trained judge's ``state`` as ``<stem>.safetensors`` and ``meta`` (with the
    weights' sha256 added) as ``<stem>.json``, each atomically; return that sha256."""
    from safetensors.torch import save as save_safetensors

    blob = save_safetensors(
        {k: v.detach().cpu().contiguous() for k, v in state.items()},
        metadata={"format": "pt", "writer": "genlab"},
    )
    sha = hashlib.sha256(blob).hexdigest()
    stem.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(stem.with_suffix(".safetensors"), blob)
    write_json(stem.with_suffix(".json"), {**meta, "weights_sha256": sha})
    return sha


def load_weights(stem: Path, fingerprint: str, version: int) -> tuple[dict, dict, str]:
    """(tensors, meta, sha256) of weights ``store_weights`` kept at ``stem``, when its JSON
    names this ``fingerprint`` and ``version`` and the weights match their sha256; anything
    amiss raises (GenlabError, OSError, ValueError...). Never unpickles."""
    from safetensors.torch import load as load_safetensors

    meta = read_json(stem.with_suffix(".json"))
    if (
        not isinstance(meta, dict)
        or meta.get("fingerprint") != fingerprint
        or meta.get("version") != version
    ):
        raise GenlabError("its JSON names another data set or version")
    blob = stem.with_suffix(".safetensors").read_bytes()
    sha = hashlib.sha256(blob).hexdigest()
    if sha != meta.get("weights_sha256"):
        raise GenlabError("its weights do not match the sha256 in its JSON")
    return load_safetensors(blob), meta, sha
