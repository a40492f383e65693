"""Checkpoints that survive a crash at any instant, and never unpickle.

A checkpoint is one consistent set (model, EMA, optimizers, step, RNG states,
data position) written into a fresh folder ``state/.tmp-*``, fsynced, and
made current by one atomic rename to ``state/step-00001234``. Loading picks
the highest complete ``step-*`` folder, so a kill mid-write leaves the
previous checkpoint current. Tensors go to safetensors, everything else to JSON.

    ckpt = CheckpointDir(run_dir)
    ckpt.write(120, {"model": model.state_dict()}, {"step": 120})
    tensors, meta = ckpt.read(ckpt.latest())

A trainer's checkpoint holds its model, EMA, optimizers and each rank's RNG state:

    save_state(ckpt, step, model, ema, optimizers, rng, {"step": step, ...})
    rng, meta = load_state(ckpt, ckpt.latest(), model, ema, optimizers)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from genlab.errors import RunError
from genlab.fsutil import (  # noqa: F401  (load_tensors, save_tensors: re-exported)
    fsync_dir,
    load_tensors,
    read_json,
    save_tensors,
    write_json,
)


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
        tmp = self.root / f".tmp-step-{step:08d}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name, tensors in groups.items():
            save_tensors(tmp / f"{name}.safetensors", tensors, atomic=False)
        write_json(tmp / "trainer.json", meta)
        fsync_dir(tmp)
        if final.exists():
            # A folder of this step is already there (a rollback or a resume redid the step):
            # never trust it unchecked; this set replaces it. Until the second rename, the
            # previous step-* folder is the latest whole checkpoint.
            old = self.root / f".tmp-old-step-{step:08d}-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
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


# -- a trainer's state <-> one checkpoint -------------------------------------
def check_finite(model: torch.nn.Module, step: int, ckpt: CheckpointDir) -> None:
    """Weights that are no longer finite never replace a good checkpoint."""
    params = [p.detach() for p in model.parameters()]
    if params and not bool(torch.stack([p.isfinite().all() for p in params]).all()):
        raise RunError(
            f"the weights hold NaN or inf at step {step}; nothing was saved. The last "
            f"good checkpoint is {ckpt.latest()}: resume from it with a lower train.lr"
        )


def save_state(
    ckpt: CheckpointDir, step: int, model, ema, optimizers: dict, rng: list, counters: dict
) -> Path:
    """One checkpoint of a trainer: the model, every rank's RNG state (``rng``, by rank),
    the EMA (or None) and each optimizer as tensors; ``counters`` (step, data position,
    clocks...) and the optimizers' other state as trainer.json."""
    groups = {"model": model.state_dict(), "rng": {f"rank{r}": s for r, s in enumerate(rng)}}
    meta = {**counters, "optimizers": {}}
    if ema is not None:
        groups["ema"] = ema.state_dict()
    for name, opt in optimizers.items():
        tensors, opt_meta = flatten_optimizer(opt.state_dict())
        groups[f"optim_{name}"] = tensors
        meta["optimizers"][name] = opt_meta
    return ckpt.write(step, groups, meta)


def load_state(
    ckpt: CheckpointDir, folder: Path, model, ema, optimizers: dict
) -> tuple[dict[str, torch.Tensor], dict]:
    """Load checkpoint ``folder``'s model, EMA and optimizer states in place; returns its RNG
    states (by rank) and trainer.json. A checkpoint of another model is a RunError."""
    groups, meta = ckpt.read(folder)
    try:
        model.load_state_dict(groups["model"])
        if ema is not None:
            ema.load_state_dict(groups["ema"])
        for name, opt in optimizers.items():
            opt.load_state_dict(
                unflatten_optimizer(groups[f"optim_{name}"], meta["optimizers"][name])
            )
    except (KeyError, RuntimeError, ValueError) as e:
        raise RunError(
            f"checkpoint {folder} does not fit this model/config ({str(e).splitlines()[0][:100]})"
        ) from None
    return groups["rng"], meta
