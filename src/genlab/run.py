"""Load a trained run for sampling: ``load(run_dir)`` gives a ``Run`` (the model in eval mode,
its configs, and which weights those are). The format it reads is genlab.rundir's.

    run = genlab.load("runs/vae")
    x = run.sample(16, seed=0, temperature=0.8)    # (16, C, H, W) in [-1, 1]
    stories = genlab.load("runs/gpt").sample(3, prompt="Once upon a time", top_p=0.9)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from genlab.data import DataInfo
from genlab.errors import ConfigError, RunError
from genlab.fsutil import load_tensors, sha256_file
from genlab.models.base import GenerativeModel
from genlab.rundir import WEIGHT_FILES, RunConfig, build_model, read_config, weights_step


class Run:
    """A trained run loaded for sampling: ``model`` in eval mode plus its configs, and which
    weights those are: ``weights`` (ema, model or best), ``weights_sha256`` (the file's
    content: an evaluation record is keyed by it, so a record can never outlive its weights)
    and ``step`` (the training step that wrote them; None when unknown)."""

    def __init__(
        self,
        path: Path,
        cfg: RunConfig,
        info: DataInfo,
        model: GenerativeModel,
        weights: str,
        weights_sha256: str = "",
        step: int | None = None,
    ):
        self.path, self.config, self.info, self.model = path, cfg, info, model
        self.weights, self.weights_sha256, self.step = weights, weights_sha256, step

    def identity(self) -> dict[str, Any]:
        """What an evaluation record names as the weights it measured."""
        return {"weights": self.weights, "weights_sha256": self.weights_sha256, "step": self.step}

    def provenance(self, run: str, **how: Any) -> dict[str, Any]:
        """What an output records of how it was made (outputs/provenance.py): genlab, the
        run (``run``: as its reader names it), its family and weights, and ``how`` (seed,
        n, mode, controls, index, ...)."""
        from genlab.version import __version__

        return {
            "genlab": __version__,
            "run": run,
            "family": self.config.family,
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "step": self.step,
            **how,
        }

    def sample(self, n: int, *, seed: int = 0, **controls: Any):
        """``n`` samples with the family's controls (unknown controls are errors): images
        (N, C, H, W) in [-1, 1], or for text a list of strings."""
        controls = self.model.check_controls(controls)
        g = torch.Generator(device=self.model.device).manual_seed(seed)
        return self.model.sample(n, generator=g, **controls)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, family={self.config.family!r}, weights={self.weights!r})"


def load(run_dir: str | Path, weights: str = "auto", device: str | torch.device = "cpu") -> Run:
    """Load a run for sampling. ``weights``: auto (EMA if kept, else latest), ema, model, best."""
    run_dir = Path(run_dir)
    cfg, info = read_config(run_dir)
    if weights == "auto":
        weights = "ema" if (run_dir / WEIGHT_FILES["ema"]).exists() else "model"
    if weights not in WEIGHT_FILES:
        raise ConfigError(f"weights must be auto, ema, model or best, not {weights!r}")
    path = run_dir / WEIGHT_FILES[weights]
    if not path.exists():
        raise RunError(
            f"{path} does not exist: the run has not saved {weights} weights yet "
            "(train longer, or pick --weights model)"
        )
    model = build_model(cfg, info)
    if info.kind == "text" or model.takes_prompt:
        from genlab.data.tokenizers import load_tokenizer

        model.tokenizer = load_tokenizer(run_dir / "tokenizer.json")
    state = load_tensors(path)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise RunError(
            f"{path} does not fit a {cfg.family} model with this config.json "
            f"({str(e).splitlines()[0][:100]})"
        ) from None
    return Run(
        run_dir, cfg, info, model.to(device).eval(), weights, sha256_file(path), weights_step(path)
    )
