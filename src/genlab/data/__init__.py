"""Data: named sets and paths in, in-memory tensors out, batches by index.

cfg = DataConfig(name="mnist")
train, test = load_data(cfg, "train"), load_data(cfg, "test")   # ImageSet
data = TensorData.from_images(train)
batch = data.batch(torch.arange(8))     # {"x": (8, 1, 28, 28) in [-1, 1], "y": (8,)}

Text (``data/text.py``, ``data/tokenizers.py``) becomes one stream of token ids cut into
windows of the model's context: ``TokenData(tokens, block=64).batch(idx)`` gives
{"x": (B, 65) ids}, a model predicting x[:, 1:] from x[:, :-1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch


@dataclass
class DataInfo:
    """What a model must know about its data to be built (saved in config.json)."""

    kind: str  # "images" or "text"
    shape: tuple[int, ...] = ()  # (C, H, W) for images
    classes: list[str] = field(default_factory=list)
    vocab_size: int = 0  # text, and captioned images: the tokenizer's vocabulary
    # sound: the spectrogram transform the images come from (data/spectrogram.py, as a dict);
    # the models see images, the writers and the evaluation turn them back into sound
    audio: dict | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def images(
        cls, shape: tuple[int, int, int], classes: list[str] | None = None, vocab_size: int = 0
    ) -> DataInfo:
        """Images; ``vocab_size`` > 0 when they come with captions, tokenized by a
        vocabulary of that size (what a family that takes a prompt is built from)."""
        return cls("images", tuple(shape), list(classes or []), int(vocab_size))

    @classmethod
    def text(cls, vocab_size: int) -> DataInfo:
        return cls("text", vocab_size=int(vocab_size))


@dataclass
class DataConfig:
    name: str = "digits"  # a named set (genlab data list) or a path
    size: int | None = None  # resize images to size x size
    crop: bool = False  # center-crop to a square before resizing
    channels: int | None = None  # 1 (gray) or 3 (RGB); default: as stored
    # text
    tokenizer: Literal["char", "bpe"] = "char"  # characters, or byte-level BPE trained on it
    vocab_size: int = 4096  # bpe: the vocabulary to learn
    separator: Literal["auto", "eot", "blank", "none"] = "auto"  # what splits documents
    # sound
    sample_rate: int = 8000  # Hz: every clip is read at this rate
    seconds: float = 0.512  # clip length: shorter clips are padded, longer keep their loudest part
    resample: bool = True  # a clip at another rate is resampled (polyphase), or refused

    def __post_init__(self):
        if self.vocab_size < 260:
            raise ValueError("data.vocab_size must be at least 260 (256 bytes + merges)")
        if self.channels not in (None, 1, 3):
            raise ValueError("data.channels must be 1 or 3")
        if self.size is not None and not 4 <= self.size <= 1024:
            raise ValueError("data.size must be between 4 and 1024")
        if not 1000 <= self.sample_rate <= 192_000:
            raise ValueError("data.sample_rate must be between 1000 and 192000 Hz")
        if not 0 < self.seconds <= 60:
            raise ValueError("data.seconds must be more than 0 and at most 60")


def load_data(cfg: DataConfig, split: str, progress: bool = True):
    """The ``split`` ("train" or "test"; "val" where the set has one, see
    ``images.validation_split``) of the data set ``cfg`` names."""
    from genlab.data.audio import is_audio, load_audio
    from genlab.data.images import load_images

    if is_audio(cfg.name):
        return load_audio(
            cfg.name,
            split,
            sample_rate=cfg.sample_rate,
            seconds=cfg.seconds,
            resample=cfg.resample,
            progress=progress,
        )
    return load_images(
        cfg.name, split, size=cfg.size, crop=cfg.crop, channels=cfg.channels, progress=progress
    )


def data_info(images) -> DataInfo:
    info = DataInfo.images(images.shape, images.classes)
    info.audio = getattr(images, "audio", None)
    return info


@dataclass
class Corpus:
    """A text set, its tokenizer and both splits as token streams (1-D int64)."""

    text: object  # data.text.TextSet
    tokenizer: object  # data.tokenizers.Tokenizer
    train: torch.Tensor
    val: torch.Tensor


def load_corpus(cfg: DataConfig, tokenizer=None, progress: bool = True) -> Corpus:
    """Read the text ``cfg`` names and tokenize it, with ``tokenizer`` (a run's) or a new
    one built as ``cfg.tokenizer`` says: a character vocabulary from the whole text (as
    nanoGPT builds it), or byte-level BPE trained on the training split only."""
    from genlab.data.text import load_text
    from genlab.data.tokenizers import build_tokenizer

    ts = load_text(cfg.name, cfg.separator, progress=progress)
    if tokenizer is None:
        texts = ts.train + ts.val if cfg.tokenizer == "char" else ts.train
        # several documents: each ends with an end-of-text token
        eot = ts.separator != "none" or len(ts.train) > 1
        tokenizer = build_tokenizer(cfg.tokenizer, texts, cfg.vocab_size, with_eot=eot)
    train, val = tokenizer.encode_documents(ts.train), tokenizer.encode_documents(ts.val)
    return Corpus(ts, tokenizer, train, val)


class TensorData:
    """A data set held in memory; the trainer draws batches from it by index.

    Images stay uint8 until batched (a quarter of the memory of float32) and
    become floats in [-1, 1] on the way to the model.
    """

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor | None = None, text: torch.Tensor | None = None
    ):
        # text: captioned images, each caption's token ids (N, L), -1 after its end
        self.x, self.y, self.text = x, y, text

    @classmethod
    def from_images(cls, images, text: torch.Tensor | None = None) -> TensorData:
        return cls(images.x, images.y, text)

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device) -> TensorData:
        def move(t):
            return t.to(device) if t is not None else None

        return TensorData(self.x.to(device), move(self.y), move(self.text))

    def batch(self, idx: torch.Tensor, device: torch.device | None = None) -> dict:
        x = self.x[idx.to(self.x.device)]
        if device is not None:
            x = x.to(device, non_blocking=True)
        out = {"x": x.float().div_(127.5).sub_(1.0)}
        for key in ("y", "text"):
            t = getattr(self, key)
            if t is not None:
                t = t[idx.to(t.device)]
                out[key] = t.to(device, non_blocking=True) if device is not None else t
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


class TokenData:
    """A stream of token ids (1-D) seen through windows of ``block + 1`` tokens.

    Training draws windows at every start position (``len`` of them, by index, so the
    Batcher's exact resume holds); ``batches`` walks the whole stream once in
    non-overlapping windows, each token predicted exactly once (the validation loss).
    """

    def __init__(self, tokens: torch.Tensor, block: int):
        if len(tokens) < 2:
            raise ValueError("a token stream needs at least 2 tokens")
        self.x, self.block = tokens, block
        self.tokens_per_example = block

    def __len__(self) -> int:
        return max(0, len(self.x) - self.block)

    def to(self, device: torch.device) -> TokenData:
        return TokenData(self.x.to(device), self.block)

    def batch(self, idx: torch.Tensor, device: torch.device | None = None) -> dict:
        offsets = torch.arange(self.block + 1, device=self.x.device)
        x = self.x[idx.to(self.x.device)[:, None] + offsets]  # (B, block + 1)
        return {"x": x.to(device, non_blocking=True) if device is not None else x}

    def batches(self, batch_size: int, device: torch.device | None = None, limit: int = 0):
        """Every token after the first, once: windows x[s : s + block + 1] for s = 0, block,
        2 block, ...; the last, shorter window comes alone. Each batch says ``count``, the
        number of tokens it predicts."""
        n, block = len(self.x), self.block
        starts = list(range(0, n - 1, block))
        full = [s for s in starts if s + block + 1 <= n]
        for i, first in enumerate(range(0, len(full), batch_size)):
            if limit and i >= limit:
                return
            idx = torch.tensor(full[first : first + batch_size])
            out = self.batch(idx, device)
            out["count"] = len(idx) * block
            yield out
        if len(full) < len(starts) and not (limit and -(-len(full) // batch_size) >= limit):
            x = self.x[starts[-1] :][None]
            yield {"x": x.to(device) if device is not None else x, "count": x.size(1) - 1}
