"""Checkpoints that survive a crash at any instant, and never unpickle.

A checkpoint is one consistent set (model, EMA, optimizers, step, RNG states,
data position) written into a fresh folder ``state/.tmp-*``, fsynced, and
made current by one atomic rename to ``state/step-00001234``. Loading picks
the highest complete ``step-*`` folder, so a kill mid-write leaves the
previous checkpoint current. Tensors go to safetensors, everything else to JSON.

    ckpt = CheckpointDir(run_dir)
    ckpt.write(120, {"model": model.state_dict()}, {"step": 120})
    tensors, meta = ckpt.read(ckpt.latest())
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from genlab.errors import RunError
from genlab.fsutil import fsync_dir, fsync_file, write_bytes_atomic


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], atomic: bool = True) -> None:
    """Write a safetensors file; with ``atomic`` through a temporary name and a rename."""
    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    target = path.with_name(f".{path.name}.tmp-{os.getpid()}") if atomic else path
    save_file(tensors, str(target), metadata={"format": "pt", "writer": "genlab"})
    fsync_file(target)
    if atomic:
        os.replace(target, path)
        fsync_dir(path.parent)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; anything else (a pickle, a truncated file) is a RunError."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path} is missing; the run directory is incomplete")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise RunError(
            f"{path} is not a readable safetensors file ({str(e).splitlines()[0][:80]});"
            " genlab never unpickles checkpoints: retrain or restore the file"
        ) from None


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temporary file, fsync, rename)."""
    write_bytes_atomic(Path(path), (json.dumps(obj, indent=2) + "\n").encode())


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{path} is not valid JSON ({e}); the run directory is damaged") from None


# -- optimizer state <-> (tensors, JSON) --------------------------------------
def flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into flat tensors and JSON-able metadata."""
    tensors, scalars = {}, {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            name = f"{idx}.{key}"
            if torch.is_tensor(value):
                tensors[name] = value
            else:
                scalars[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in list(tensors.items()) + list(meta["scalars"].items()):
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


class CheckpointDir:
    """The ``state/`` folder of a run: numbered, atomically published checkpoints."""

    def __init__(self, run_dir: Path, keep: int = 2):
        self.root = Path(run_dir) / "state"
        self.keep = keep

    def latest(self) -> Path | None:
        done = sorted(p for p in self.root.glob("step-*") if p.is_dir())
        return done[-1] if done else None

    def write(self, step: int, groups: dict[str, dict[str, torch.Tensor]], meta: dict) -> Path:
        """Write ``groups`` (name -> tensors, one safetensors file each) and ``meta`` as one set."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"step-{step:08d}"
        if final.exists():  # already saved at this step (e.g. the end of a resumed run)
            return final
        tmp = self.root / f".tmp-step-{step:08d}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name, tensors in groups.items():
            save_tensors(tmp / f"{name}.safetensors", tensors, atomic=False)
        write_json(tmp / "trainer.json", meta)
        fsync_dir(tmp)
        os.rename(tmp, final)  # the one atomic step that makes the set current
        fsync_dir(self.root)
        self._prune()
        return final

    def read(self, folder: Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
        groups = {p.stem: load_tensors(p) for p in sorted(folder.glob("*.safetensors"))}
        return groups, read_json(folder / "trainer.json")

    def _prune(self) -> None:
        # older checkpoints and leftovers of writes that were killed half-way
        done = sorted(p for p in self.root.glob("step-*") if p.is_dir())
        for old in done[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        for tmp in self.root.glob(".tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)
