"""Dataclass configs: a strict JSON round trip and dotted overrides.

Every configurable class has a dataclass beside it (``VAEConfig`` in
``models/vae.py``); ``TrainConfig``, which the trainer reads and every run records, lives
here, below both. This module turns
them into JSON and back, and applies the bare ``key=value`` arguments of the
CLI, failing loudly on an unknown key or a value of the wrong type:

    cfg = apply_overrides(cfg, ["model.latent_dim=16", "train.lr=3e-4"])
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

from genlab.errors import ConfigError

_NONE_WORDS = {"none", "null"}
_TRUE_WORDS = {"true", "yes", "1", "on"}
_FALSE_WORDS = {"false", "no", "0", "off"}


@dataclass
class TrainConfig:
    steps: int = 2000  # optimizer steps (the LR schedule spans them)
    minutes: float | None = None  # stop after this much training time (schedule follows time)
    batch_size: int = 128  # global batch: split over DDP ranks and accumulation steps
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 100  # linear LR warm-up
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = 0.1  # the cosine ends at lr * min_lr_ratio
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    grad_accum: int = 1  # micro-batches per optimizer step
    ema_decay: float = 0.999  # 0 turns the EMA off
    # bf16 autocast, or fp32; auto: bf16 on a CPU with bf16 matrix units (AMX) for the
    # families measured faster there at equal quality (benchmarks/cpu_bf16.py), else fp32
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    compile: bool = False  # torch.compile the model (CUDA)
    seed: int = 0
    device: str = "auto"  # auto picks cuda, then mps, then cpu
    log_every: int = 10  # steps between metrics.jsonl records
    eval_every: int = 500  # steps between validation losses (0: only at the end)
    eval_batches: int = 0  # validation batches (0: the whole split)
    sample_every: int = 1000  # steps between sample grids (0: only at the end)
    checkpoint_every: int = 1000  # steps between checkpoints (always one at the end)
    grid_size: int = 64  # samples in each grid
    # a NaN/inf loss: "stop" (name the step and the last good checkpoint), or "rollback"
    # to the last checkpoint with the learning rate halved, at most max_rollbacks times
    on_divergence: Literal["stop", "rollback"] = "stop"
    max_rollbacks: int = 3
    tensorboard: bool = False  # also write the curves and samples to RUN/tensorboard/

    def __post_init__(self):
        check_range(
            "train",
            self,
            steps=(1, None),
            batch_size=(1, None),
            grad_accum=(1, None),
            log_every=(1, None),
            grid_size=(1, 4096),
            lr=(0, None),  # 0 trains nothing, a way to measure the untrained start
            weight_decay=(0, None),
            warmup_steps=(0, None),
            min_lr_ratio=(0, 1),
            grad_clip=(0, None),
            eval_every=(0, None),
            eval_batches=(0, None),
            sample_every=(0, None),
            checkpoint_every=(0, None),
            max_rollbacks=(0, None),
            seed=(0, 2**63 - 1),
        )
        if not 0 <= self.ema_decay < 1:
            raise ValueError("train.ema_decay must be in [0, 1)")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError("train.betas must be two numbers in [0, 1), e.g. 0.9,0.999")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError("train.minutes must be > 0")


def check_range(section: str, cfg: Any, **limits: tuple[float | None, float | None]) -> None:
    """Raise ValueError for the first field of ``cfg`` outside its closed range [low, high]
    (None: unbounded); configs call it from ``__post_init__``:

        check_range("model", self, latent_dim=(1, None), beta=(0, None))
    """
    for name, (low, high) in limits.items():
        v = getattr(cfg, name)
        if v is None:
            continue
        if (low is not None and v < low) or (high is not None and v > high):
            if high is None:
                want = f">= {low:g}"
            elif low is None:
                want = f"<= {high:g}"
            else:
                want = f"in [{low:g}, {high:g}]"
            raise ValueError(f"{section}.{name} must be {want}, not {v}")


def to_dict(cfg: Any) -> dict:
    """A JSON-ready dict of a (nested) dataclass; tuples become lists."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type, data: dict, where: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``, checking every key and type.

    Missing keys take their defaults (so configs written by an older genlab
    still load); unknown keys are an error, never silently dropped.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected an object, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown key {_join(where, unknown[0])!r}; known keys: {', '.join(sorted(names))}"
        )
    kwargs = {k: _coerce(hints[k], v, _join(where, k)) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where or cls.__name__}: {e}") from None


def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """Return a copy of ``cfg`` with ``a.b=value`` overrides applied (strictly)."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value (e.g. model.latent_dim=16)")
        cfg = _set(cfg, key.strip().split("."), text.strip(), key.strip())
    return cfg


def field_names(cfg: Any, prefix: str = "") -> list[str]:
    """Every settable dotted key of a (nested) dataclass instance."""
    out = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out += field_names(value, _join(prefix, f.name))
        else:
            out.append(_join(prefix, f.name))
    return out


def _set(cfg: Any, path: list[str], text: str, full: str) -> Any:
    if not dataclasses.is_dataclass(cfg):
        raise ConfigError(f"unknown key {full!r}")
    hints = typing.get_type_hints(type(cfg))
    name = path[0]
    if name not in {f.name for f in dataclasses.fields(cfg)}:
        close = [k for k in field_names(cfg) if k.split(".")[-1] == path[-1]]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown key {full!r}{hint}; `genlab info --family FAMILY` lists them")
    if len(path) > 1:
        value = _set(getattr(cfg, name), path[1:], text, full)
    else:
        value = _parse(hints[name], text, full)
    try:
        return dataclasses.replace(cfg, **{name: value})
    except (TypeError, ValueError) as e:
        msg = str(e)  # a message that already names the key needs no prefix
        raise ConfigError(msg if msg.startswith(full) else f"{full}={text}: {msg}") from None


def _parse(tp: Any, text: str, key: str) -> Any:
    """Parse CLI text into a value of annotation ``tp``."""
    if _is_optional(tp):
        if text.lower() in _NONE_WORDS:
            return None
        tp = _strip_optional(tp)
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        if text.startswith("["):
            try:
                items = json.loads(text)
            except json.JSONDecodeError:
                raise ConfigError(f"{key}={text}: not a JSON list") from None
        else:
            items = [t for t in text.split(",") if t.strip()]
        (inner, *_) = typing.get_args(tp) or (str,)
        vals = [_parse(inner, str(v), key) for v in items]
        return tuple(vals) if origin is tuple else vals
    if tp is bool:
        low = text.lower()
        if low in _TRUE_WORDS | _FALSE_WORDS:
            return low in _TRUE_WORDS
        raise ConfigError(f"{key}={text}: expected true or false")
    if tp in (int, float):
        try:
            return _coerce(tp, float(text) if tp is float else int(text), key)
        except ValueError:
            raise ConfigError(f"{key}={text}: expected {tp.__name__}") from None
    return _coerce(tp, text, key)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Check a JSON value against annotation ``tp`` (int widens to float)."""
    if _is_optional(tp):
        if value is None:
            return None
        tp = _strip_optional(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (inner, *_) = typing.get_args(tp) or (Any,)
        vals = [_coerce(inner, v, key) for v in value]
        return tuple(vals) if origin is tuple else vals
    if origin is dict or tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}={value}: must be a finite number")
    if tp in (int, float, str, bool) and not (
        isinstance(value, tp) and not (tp is int and isinstance(value, bool))
    ):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}")
    return value


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType) and type(None) in typing.get_args(tp)


def _strip_optional(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if len(args) == 1 else Union[tuple(args)]  # noqa: UP007 (runtime form)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
