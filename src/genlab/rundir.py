"""The run directory's format: what a run is on disk, and how its config is written and read.

runs/NAME/
  config.json        family, model, data and train configs, data info, genlab version
  model.safetensors  latest weights   (ema.safetensors, best.safetensors beside it)
  state/step-*/      the resumable checkpoint (see training/checkpoint.py)
  tokenizer.json     text runs: the tokenizer (characters or byte-level BPE)
  metrics.jsonl      training curves, one JSON object a line
  samples/           grids (or, for text, .txt continuations) written during training
  eval/              evaluation records; metrics.json is the latest

    cfg = RunConfig.new("vae", "default", ["train.steps=500"])
    write_config("runs/vae", cfg, info)          # what the trainer writes
    cfg, info = read_config("runs/vae")          # what every reader starts from

The trainer writes this format and the loading front (genlab.run: ``load``, ``Run``) reads
it; both import it from here, so training never imports the front.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genlab.config import TrainConfig, apply_overrides, from_dict, to_dict
from genlab.data import DataConfig, DataInfo
from genlab.errors import ConfigError, RunError
from genlab.fsutil import read_json, sha256_file, tensors_metadata, write_json
from genlab.models.base import GenerativeModel
from genlab.registry import get
from genlab.version import __version__


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


WEIGHT_FILES = {"ema": "ema.safetensors", "model": "model.safetensors", "best": "best.safetensors"}


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
