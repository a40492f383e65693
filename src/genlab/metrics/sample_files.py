"""Samples made by another tool, read for `genlab eval --samples`: an .npz of images, or of
waveforms of a sound data set (made spectrogram images as the loader makes them), each with
the labels the samples were asked for when it holds them. A bad file is refused in one line.

    x, labels = load_samples("samples.npz")                # uint8 (N, C, H, W), list or None
    x, labels = load_waves("clips.npz", test.audio)         # the same, from waveforms
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genlab.errors import GenlabError
from genlab.metrics.audio import waves_to_images


def _unreadable(path, e: Exception) -> GenlabError:
    return GenlabError(f"{path} is not a readable .npz ({str(e)[:80]})")


def _with_labels(path, x: torch.Tensor, y, items: str) -> tuple[torch.Tensor, list[int] | None]:
    """``x`` and its labels ``y`` as a list of ints (None when the file has none), refused
    unless there is one label a row (``items``: what the rows are, for the message)."""
    if y is not None and len(y) != len(x):
        raise GenlabError(f"{path}: {len(y)} labels for {len(x)} {items}")
    return x, (y.astype(np.int64).tolist() if y is not None else None)


def load_samples(path: str | Path) -> tuple[torch.Tensor, list[int] | None]:
    """Samples from another tool: an .npz with ``x`` uint8 (N, H, W, C) or (N, H, W), and
    optionally ``y``, the label each sample was asked for. Returns (N, C, H, W) uint8."""
    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"{path} does not exist; give an .npz with x (uint8 N,H,W,C)")
    try:
        with np.load(path, allow_pickle=False) as z:
            x, y = z["x"], (z["y"] if "y" in z.files else None)
    except KeyError:
        raise GenlabError(f"{path} has no array 'x'; save samples as x (uint8 N,H,W,C)") from None
    except (OSError, ValueError) as e:
        raise _unreadable(path, e) from None
    if x.dtype != np.uint8 or x.ndim not in (3, 4):
        raise GenlabError(
            f"{path}: x must be uint8 (N, H, W, C) or (N, H, W), got {x.dtype} {x.shape}"
        )
    x = torch.from_numpy(x if x.ndim == 4 else x[..., None]).permute(0, 3, 1, 2).contiguous()
    return _with_labels(path, x, y, "samples")


def load_waves(path: str | Path, transform) -> tuple[torch.Tensor, list[int] | None] | None:
    """Waveforms saved by another tool as spectrogram images: an .npz with ``audio`` (N, L)
    floats at the data set's sample rate (or at ``sample_rate``, a scalar, if it holds one)
    and optionally ``y``. None when the file holds no ``audio`` array."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "audio" not in z.files:
                return None
            wave = z["audio"]
            y = z["y"] if "y" in z.files else None
            rate = int(z["sample_rate"]) if "sample_rate" in z.files else None
    except (OSError, ValueError) as e:
        raise _unreadable(path, e) from None
    return _with_labels(path, waves_to_images(wave, transform, sample_rate=rate), y, "clips")
