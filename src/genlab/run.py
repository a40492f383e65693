"""The run directory: what a run is, how it is written and how it is loaded.

runs/NAME/
  config.json        family, model, data and train configs, data info, genlab version
  model.safetensors  latest weights   (ema.safetensors, best.safetensors beside it)
  state/step-*/      the resumable checkpoint (see training/checkpoint.py)
  tokenizer.json     text runs: the tokenizer (characters or byte-level BPE)
  metrics.jsonl      training curves, one JSON object a line
  samples/           grids (or, for text, .txt continuations) written during training
  eval/              evaluation records; metrics.json is the latest

run = genlab.load("runs/vae")
x = run.sample(16, seed=0, temperature=0.8)    # (16, C, H, W) in [-1, 1]
stories = genlab.load("runs/gpt").sample(3, prompt="Once upon a time", top_p=0.9)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genlab import __version__
from genlab.config import TrainConfig, apply_overrides, from_dict, to_dict
from genlab.data import DataConfig, DataInfo
from genlab.errors import ConfigError, RunError
from genlab.fsutil import load_tensors, read_json, sha256_file, tensors_metadata, write_json
from genlab.models.base import GenerativeModel
from genlab.registry import get


@dataclass
class RunConfig:
    """Everything that defines a run; ``config.json`` is its JSON."""

    family: str
    model: Any  # the family's config dataclass
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str = "default"

    @classmethod
    def new(cls, family: str, preset: str = "default", overrides: list[str] = ()) -> RunConfig:
        """Defaults (the family's own data set, ``default_data``), then the family's preset,
        then the user's ``key=value`` overrides.

        cfg = RunConfig.new("gpt", "tiny", ["train.steps=5"])   # data.name "grimms"
        """
        model_cls = get(family)
        if preset not in model_cls.presets:
            raise ConfigError(
                f"the {family} family has no preset {preset!r}; "
                f"presets: {', '.join(model_cls.presets)}"
            )
        data = DataConfig(name=model_cls.default_data)
        cfg = cls(family, model_cls.config_class(), data=data, preset=preset)
        preset_items = [f"{k}={_cli_text(v)}" for k, v in model_cls.presets[preset].items()]
        cfg = apply_overrides(cfg, preset_items)
        return apply_overrides(cfg, list(overrides))

    def to_dict(self) -> dict:
        return {
            "family": self.family,
            "preset": self.preset,
            "model": to_dict(self.model),
            "data": to_dict(self.data),
            "train": to_dict(self.train),
        }

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        model_cls = get(d.get("family", "?"))
        return cls(
            d["family"],
            from_dict(model_cls.config_class, d.get("model", {}), "model"),
            from_dict(DataConfig, d.get("data", {}), "data"),
            from_dict(TrainConfig, d.get("train", {}), "train"),
            d.get("preset", "default"),
        )


def _cli_text(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return str(v).lower() if isinstance(v, bool) else str(v)


def is_run(path: Path) -> bool:
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    try:
        d = read_json(cfg)
    except RunError:
        return False
    return isinstance(d, dict) and "genlab_version" in d and "family" in d


def write_config(run_dir: Path, cfg: RunConfig, info: DataInfo, **extra: Any) -> None:
    """config.json; ``extra`` keys (e.g. init_from) are recorded beside the configs."""
    d = {"genlab_version": __version__, **cfg.to_dict(), "data_info": dataclasses.asdict(info)}
    d.update({k: v for k, v in extra.items() if v is not None})
    write_json(Path(run_dir) / "config.json", d)


def read_config(run_dir: Path) -> tuple[RunConfig, DataInfo]:
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunError(f"{run_dir} does not exist; give the --out folder of a `genlab train` run")
    if not is_run(run_dir):
        raise RunError(
            f"{run_dir} is not a genlab run (no valid config.json); "
            "give the --out folder of a `genlab train` run"
        )
    d = read_json(run_dir / "config.json")
    info = d.get("data_info", {})
    keys = ("family", "preset", "model", "data", "train")
    return RunConfig.from_dict({k: v for k, v in d.items() if k in keys}), DataInfo(
        info.get("kind", "images"),
        tuple(info.get("shape", ())),
        info.get("classes", []),
        int(info.get("vocab_size", 0)),
        info.get("audio"),
    )


def build_model(cfg: RunConfig, info: DataInfo) -> GenerativeModel:
    return get(cfg.family)(cfg.model, info)


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

    def sample(self, n: int, *, seed: int = 0, **controls: Any):
        """``n`` samples with the family's controls (unknown controls are errors): images
        (N, C, H, W) in [-1, 1], or for text a list of strings."""
        controls = self.model.check_controls(controls)
        g = torch.Generator(device=self.model.device).manual_seed(seed)
        return self.model.sample(n, generator=g, **controls)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, family={self.config.family!r}, weights={self.weights!r})"


WEIGHT_FILES = {"ema": "ema.safetensors", "model": "model.safetensors", "best": "best.safetensors"}


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
    if info.kind == "text":
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


def weights_step(path: Path) -> int | None:
    """The training step that wrote a weights file: the trainer records it in the file's
    metadata; files from before that carry none, and then model and EMA weights are those
    of the latest checkpoint (written together), while best weights are unknown."""
    step = tensors_metadata(path).get("step", "")
    if step.isdigit():
        return int(step)
    if Path(path).name == WEIGHT_FILES["best"]:
        return None
    done = sorted((Path(path).parent / "state").glob("step-*"))
    return int(done[-1].name.removeprefix("step-")) if done else None


def current_sha256(run_dir: Path, weights: str) -> str | None:
    """The sha256 of a run's ``weights`` file now (None if it is missing)."""
    path = Path(run_dir) / WEIGHT_FILES.get(weights, "")
    return sha256_file(path) if path.is_file() else None
