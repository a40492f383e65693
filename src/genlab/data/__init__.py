"""Data: named sets and paths in, in-memory tensors out, batches by index.

cfg = DataConfig(name="mnist")
train, test = load_data(cfg, "train"), load_data(cfg, "test")   # ImageSet
data = TensorData.from_images(train)
batch = data.batch(torch.arange(8))     # {"x": (8, 1, 28, 28) in [-1, 1], "y": (8,)}
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genlab.models.base import DataInfo


@dataclass
class DataConfig:
    name: str = "digits"  # a named set (genlab data list) or a path
    size: int | None = None  # resize images to size x size
    crop: bool = False  # center-crop to a square before resizing
    channels: int | None = None  # 1 (gray) or 3 (RGB); default: as stored

    def __post_init__(self):
        if self.channels not in (None, 1, 3):
            raise ValueError("data.channels must be 1 or 3")
        if self.size is not None and not 4 <= self.size <= 1024:
            raise ValueError("data.size must be between 4 and 1024")


def load_data(cfg: DataConfig, split: str, progress: bool = True):
    """The ``split`` ("train" or "test") of the data set ``cfg`` names."""
    from genlab.data.images import load_images

    return load_images(
        cfg.name, split, size=cfg.size, crop=cfg.crop, channels=cfg.channels, progress=progress
    )


def data_info(images) -> DataInfo:
    return DataInfo.images(images.shape, images.classes)


class TensorData:
    """A data set held in memory; the trainer draws batches from it by index.

    Images stay uint8 until batched (a quarter of the memory of float32) and
    become floats in [-1, 1] on the way to the model.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None = None):
        self.x, self.y = x, y

    @classmethod
    def from_images(cls, images) -> TensorData:
        return cls(images.x, images.y)

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device) -> TensorData:
        return TensorData(self.x.to(device), self.y.to(device) if self.y is not None else None)

    def batch(self, idx: torch.Tensor, device: torch.device | None = None) -> dict:
        x = self.x[idx.to(self.x.device)]
        if device is not None:
            x = x.to(device, non_blocking=True)
        out = {"x": x.float().div_(127.5).sub_(1.0)}
        if self.y is not None:
            y = self.y[idx.to(self.y.device)]
            out["y"] = y.to(device, non_blocking=True) if device is not None else y
        return out

    def batches(self, batch_size: int, device: torch.device | None = None, limit: int = 0):
        """The whole set in order, ``batch_size`` at a time (``limit`` batches if > 0)."""
        for i, start in enumerate(range(0, len(self), batch_size)):
            if limit and i >= limit:
                return
            yield self.batch(torch.arange(start, min(start + batch_size, len(self))), device)


class Batcher:
    """Shuffled mini-batches with an exact, resumable position.

    Epoch e visits the data in ``randperm(n)`` drawn from a generator seeded
    by (seed, e), so the order needs no saved RNG: the position is just
    (epoch, cursor). The last incomplete batch of an epoch is dropped.
    A global batch of B indices is cut into world x accum contiguous chunks;
    rank r, micro-step m takes chunk r * accum + m, so 2 ranks at B/2 see
    exactly the examples 1 process at B sees.
    """

    def __init__(self, n: int, batch_size: int, seed: int):
        if batch_size > n:
            raise ValueError(f"batch size {batch_size} is larger than the data set ({n})")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.cursor = 0, 0
        self._perm: torch.Tensor | None = None

    def _order(self) -> torch.Tensor:
        if self._perm is None:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._perm = torch.randperm(self.n, generator=g)
        return self._perm

    def next(self) -> torch.Tensor:
        if self.cursor + self.batch_size > self.n:
            self.epoch, self.cursor, self._perm = self.epoch + 1, 0, None
        idx = self._order()[self.cursor : self.cursor + self.batch_size]
        self.cursor += self.batch_size
        return idx

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.cursor, self._perm = int(state["epoch"]), int(state["cursor"]), None
