"""The runs a server serves: found under its folders, named by id, loaded into a bounded cache.

A client names a run by its id (the run's path under a served folder with "/" written "~",
e.g. "vae" or "sweeps~lr-3e-4"), never by a path: ids are looked up in the table this
module builds by scanning the served folders, so no request can reach a file outside them.
From a run folder the server reads only JSON (config.json, metrics.jsonl, eval/) and
safetensors weights (through ``genlab.run.load``, which never unpickles).

    index = RunIndex([Path("runs/demo")])
    index.ids()                      # ["diffusion", "gan", "lstm", "vae"]
    run = index.load("vae")          # a genlab.run.Run, cached until its weights change
    ref = index.reference("vae")     # training images / text for the novelty check
    spectrogram_of(run)              # a run trained on sound: its transform (else None)
"""

from __future__ import annotations

import collections
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genlab.errors import GenlabError, RunError
from genlab.fsutil import read_json, read_jsonl
from genlab.run import Run, load
from genlab.rundir import WEIGHT_FILES, is_run, read_config

MAX_DEPTH = 3  # run folders are found this deep under a served folder
SKIP = {"state", "eval", "samples", "studio", "__pycache__"}
MAX_PIXELS = 1024 * 1024  # a run whose images are larger than this is not served
TRAINING_WINDOW = 120.0  # a run whose curves changed this recently counts as training


class UnknownRun(GenlabError):
    pass


@dataclass
class Reference:
    """What a sample is compared with: training images (flattened, in [0, 1]) and the copy
    threshold (the 1st percentile of real test-to-train nearest distances), or a text
    index of the training corpus. Built once per data set."""

    images: torch.Tensor | None = None  # (N, D) float64 in [0, 1]
    raw: torch.Tensor | None = None  # (N, C, H, W) uint8: what a nearest image looks like
    threshold: float | None = None
    test: torch.Tensor | None = None  # uint8 (M, C, H, W): real images for the blind test
    test_wave: torch.Tensor | None = None  # sound: the real test clips as recorded (M, samples)
    captions: list[str] | None = None  # captioned images: the caption of each test image
    index: Any = None  # metrics.text.CorpusIndex
    passages: list[str] | None = None  # held-out documents: real text for the blind test


def find_runs(folders: list[Path]) -> dict[str, Path]:
    """{id: run folder} for every run under ``folders`` (the folders themselves included)."""
    out: dict[str, Path] = {}
    for root in folders:
        root = Path(root).resolve()
        found: list[Path] = []
        _walk_for_runs(root, root, 0, found)
        for path in found:
            rel = path.relative_to(root).parts
            rid = "~".join(rel) if rel else root.name
            if rid in out:  # two served folders hold a run of the same name
                rid = f"{root.name}~{rid}"
            out[rid] = path
    return dict(sorted(out.items()))


def _walk_for_runs(root: Path, folder: Path, depth: int, found: list[Path]) -> None:
    if is_run(folder):
        found.append(folder)
        return
    if depth >= MAX_DEPTH:
        return
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    for e in entries:
        if e.name.startswith(".") or e.name in SKIP or not e.is_dir(follow_symlinks=True):
            continue
        path = Path(e.path).resolve()
        if not path.is_relative_to(root):  # a link out of the served folder: never followed
            continue
        _walk_for_runs(root, path, depth + 1, found)


class RunIndex:
    """The served runs, rescanned when asked for (so a run that starts training appears),
    and a cache of at most ``max_loaded`` loaded models."""

    def __init__(self, folders: list[Path], max_loaded: int = 4, device: str = "cpu"):
        self.folders = [Path(f).resolve() for f in folders]
        self.max_loaded, self.device = max_loaded, device
        self._runs: dict[str, Path] = {}
        self._scanned = 0.0
        self._loaded: collections.OrderedDict[str, tuple[tuple, Run]] = collections.OrderedDict()
        self._refs: dict[str, Reference] = {}
        self._lock = threading.RLock()
        self._load_locks: dict[str, threading.Lock] = collections.defaultdict(threading.Lock)
        self.scan(force=True)

    def scan(self, force: bool = False) -> dict[str, Path]:
        with self._lock:
            if force or time.monotonic() - self._scanned > 2.0:
                self._runs = find_runs(self.folders)
                self._scanned = time.monotonic()
            return dict(self._runs)

    def ids(self) -> list[str]:
        return list(self.scan())

    def path(self, run_id: str) -> Path:
        """The folder of run ``run_id``; UnknownRun for any id the scan did not find."""
        runs = self.scan()
        if not isinstance(run_id, str) or run_id not in runs:
            runs = self.scan(force=True)
            if not isinstance(run_id, str) or run_id not in runs:
                raise UnknownRun(f"no run {str(run_id)[:80]!r} is served here; GET /api/runs lists them")
        return runs[run_id]

    def describe(self, run_id: str) -> dict[str, Any]:
        """What the page needs to draw a run: family, controls, classes, weights, eval."""
        path = self.path(run_id)
        cfg, info = read_config(path)
        from genlab.registry import get

        cls = get(cfg.family)
        weights = "ema" if (path / WEIGHT_FILES["ema"]).exists() else "model"
        wpath = path / WEIGHT_FILES[weights]
        conditional = bool(info.num_classes) and bool(getattr(cfg.model, "conditional", False))
        controls = {}
        for name, c in cls.controls.items():
            if name == "label" and not conditional:
                continue
            if name == "guidance" and not (conditional or cls.takes_prompt):
                continue  # guidance steers toward a class or a prompt
            controls[name] = {
                "type": c.type.__name__,
                "default": c.default,
                "help": c.help,
                "low": c.low,
                "high": c.high,
                "choices": list(c.choices) if c.choices else None,
                "many": c.many,
            }
        return {
            "id": run_id,
            "name": path.name,
            "family": cfg.family,
            "kind": info.kind,
            "shape": list(info.shape),
            "classes": list(info.classes) if conditional else [],
            "conditional": conditional,
            "has_latent": bool(cls.has_latent),
            # draws what a prompt says: the page draws a prompt box, /v1/images takes it
            "takes_prompt": bool(cls.takes_prompt),
            "controls": controls,
            "weights": weights,
            "weights_sha256": _weights_sha256(wpath),
            "ready": wpath.exists(),
            "step": _latest_step(path),
            "training": _is_training(path),
            "data": cfg.data.name,
            "timesteps": getattr(cfg.model, "timesteps", None),  # diffusion: most sampling steps
            "eval": _latest_eval(path),
            "audio": bool(info.audio),  # a run trained on sound: its items carry "wav"
        }

    def load(self, run_id: str) -> Run:
        """The run's model, loaded once and kept until its weights file changes."""
        path = self.path(run_id)
        lock = self._load_locks[run_id]
        with lock:
            key = _weights_key(path)
            with self._lock:
                hit = self._loaded.get(run_id)
                if hit is not None and hit[0] == key:
                    self._loaded.move_to_end(run_id)
                    return hit[1]
            _, info = read_config(path)
            if info.kind == "images" and _pixel_count(info.shape) > MAX_PIXELS:
                raise GenlabError(
                    f"run {run_id!r} makes {info.shape} images, more than the studio serves"
                )
            run = load(path, device=self.device)
            with self._lock:
                self._loaded[run_id] = (key, run)
                self._loaded.move_to_end(run_id)
                while len(self._loaded) > self.max_loaded:
                    self._loaded.popitem(last=False)
            return run

    def reference(self, run_id: str) -> Reference:
        """Training data of the run's data set for the novelty check (built once per set)."""
        path = self.path(run_id)
        cfg, info = read_config(path)
        key = repr((info.kind, cfg.data))
        with self._lock:
            if key in self._refs:
                return self._refs[key]
        ref = _build_reference(cfg, info)
        with self._lock:
            self._refs[key] = ref
        return ref


def spectrogram_of(run: Run):
    """The Spectrogram of a run trained on sound; None for any other run."""
    audio = getattr(run.info, "audio", None)
    if not audio:
        return None
    from genlab.data.spectrogram import Spectrogram

    return Spectrogram.from_dict(audio)


_weights_hashes: dict[str, tuple[tuple, str]] = {}  # weights path -> ((mtime, size), sha256)


def _weights_sha256(path: Path) -> str | None:
    """The sha256 of a weights file, hashed again only when its size or time changes."""
    try:
        st = path.stat()
    except OSError:
        return None
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _weights_hashes.get(str(path))
    if hit is None or hit[0] != stamp:
        from genlab.fsutil import sha256_file

        hit = _weights_hashes[str(path)] = (stamp, sha256_file(path))
    return hit[1]


def _pixel_count(shape) -> int:
    out = 1
    for s in shape[-2:]:
        out *= int(s)
    return out


def _weights_key(path: Path) -> tuple:
    key = []
    for name in ("ema.safetensors", "model.safetensors"):
        p = path / name
        try:
            st = p.stat()
            key.append((name, st.st_mtime_ns, st.st_size))
        except OSError:
            key.append((name, None, None))
    return tuple(key)


def _latest_step(path: Path) -> int | None:
    done = sorted((path / "state").glob("step-*"))
    if done:
        tail = done[-1].name.removeprefix("step-")
        return int(tail) if tail.isdigit() else None
    return None


def _is_training(path: Path) -> bool:
    try:
        return time.time() - (path / "metrics.jsonl").stat().st_mtime < TRAINING_WINDOW
    except OSError:
        return False


def _latest_eval(path: Path) -> dict | None:
    """The latest evaluation record's figures beside its floor (None before any)."""
    p = path / "eval" / "metrics.json"
    if not p.is_file():
        return None
    try:
        rec = read_json(p)
    except RunError:
        return None
    if not isinstance(rec, dict):
        return None
    scalar = lambda d: {k: v for k, v in d.items() if _is_finite(v)}  # noqa: E731
    protocol = rec.get("protocol") if isinstance(rec.get("protocol"), dict) else {}
    return {
        "metrics": scalar(rec),
        "floor": scalar(rec.get("floor") or {}),
        "n": protocol.get("n_generated") or protocol.get("n"),
        "weights_sha256": protocol.get("weights_sha256"),
        "step": protocol.get("step"),
        "measured_at": protocol.get("measured_at") or rec.get("measured_at"),
    }


def curves(path: Path, limit: int = 2000) -> dict[str, list]:
    """Training and validation loss by step from metrics.jsonl (at most ``limit`` points)."""
    p = path / "metrics.jsonl"
    if not p.is_file():
        return {"train": [], "val": []}
    train, val = [], []
    for rec in read_jsonl(p, warn=False):
        step = rec.get("step")
        if not isinstance(step, int):
            continue
        if _is_finite(rec.get("loss")):
            train.append([step, rec["loss"]])
        if _is_finite(rec.get("val_loss")):
            val.append([step, rec["val_loss"]])
    thin = lambda xs: xs[:: max(1, len(xs) // limit)]  # noqa: E731
    return {"train": thin(train), "val": thin(val)}


def _is_finite(v) -> bool:
    """A number JSON can carry (NaN and inf cannot)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _build_reference(cfg, info) -> Reference:
    if info.kind == "text":
        from genlab.data.text import load_text
        from genlab.metrics.text import CorpusIndex

        ts = load_text(cfg.data.name, cfg.data.separator, progress=False)
        passages = [p for p in ts.val if len(p) >= 200] or ts.val
        return Reference(index=CorpusIndex("\n".join(ts.train)), passages=passages)
    from genlab.data import load_data
    from genlab.metrics.novelty import nearest_distance

    train = load_data(cfg.data, "train", progress=False)
    test = load_data(cfg.data, "test", progress=False)
    flat = lambda x: x.reshape(len(x), -1).double() / 255.0  # noqa: E731
    tr = flat(train.x)
    d_test = nearest_distance(flat(test.x), tr)
    return Reference(
        images=tr,
        raw=train.x,
        threshold=torch.quantile(d_test, 0.01).item(),
        test=test.x,
        test_wave=getattr(test, "wave", None),
        captions=list(test.captions) if getattr(test, "captions", None) else None,
    )
