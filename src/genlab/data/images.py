"""Image data sets as uint8 tensors: the named sets and your own files, one call.

    ds = load_images("mnist", "train", size=32)  # ds.x (60000, 1, 32, 32) uint8, ds.y (60000,) int64

`spec` is a named set or a path:

- "digits": scikit-learn's `load_digits()`, 1,797 8x8 gray digits (values 0..16, made uint8 as
  round(v * 255 / 16)), classes "0".."9". Fixed split: perm = np.random.default_rng(0)
  .permutation(1797); train = perm[:1500], test = perm[1500:] (297 images).
- "mnist": `fetch("mnist")` (cache, mirror or download; sha256-checked), then the IDX files.
- "shapes": captioned coloured shapes drawn by code (genlab.data.shapes), "train", "val", "test".
- "emoji": 7,572 captioned emoji images, RGB on white, with splits "train", "val" and "test"
  (genlab.data.emoji: the caption rule, the split, `attributes`); `size` None is 64 with CUDA,
  else 32; y is None.
- a folder of IDX files, gzipped or not (MNIST, Fashion-MNIST, KMNIST, EMNIST names): files with
  "train" / "t10k" or "test" and "images" / "labels" in their names. Labels are optional.
- an .npz with `x` (uint8, (N, H, W) or (N, H, W, C)) and optionally `y` (N,), `x_test`,
  `y_test` and `classes` (names, in label order).
- a folder of PNG/JPEG/BMP/WebP images. Subfolders are classes (sorted names are labels
  0, 1, ...); images directly in the folder are unlabelled. `train/` and `test/` subfolders,
  if present, are the splits. A `metadata.jsonl` beside them gives captions (genlab.data.captions).
  genlab.data.folders reads them.

A path with no test split of its own gets a fixed held-out test split: the last max(1, N // 10)
indices of np.random.default_rng(0).permutation(N) (the same ones on every call); train is the
rest, in that permutation's order. Named sets take precedence over same-named paths (use
"./mnist" for a folder). Options apply in this order: `channels` (1: ITU-R 601 luma as Pillow
"L", 3: gray repeated, alpha dropped; default 1 if every image is gray, else 3), `crop` (center
square), `size` (bilinear, antialiased). Bad input raises DataError with one line.
"""

from __future__ import annotations

import functools
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genlab.data.catalogue import NAMED_SETS
from genlab.data.emoji import load_emoji
from genlab.data.fetch import fetch
from genlab.data.folders import (
    DECODE_ERRORS,
    IMAGE_EXTENSIONS,
    holdout_indices,
    read_image_folder,
    split_indices,
)
from genlab.data.idx import find_idx, is_idx_name, read_idx, read_idx_pair
from genlab.data.shapes import draw_shapes
from genlab.errors import DataError, reason_of

_DIGITS_TRAIN = 1500

# What each reader returns: x (N, C, H, W) uint8, y (N,) int64 or None, class names, source.
Loaded = tuple[torch.Tensor, torch.Tensor | None, list[str], str]


@dataclass
class ImageSet:
    """Images and labels of one split: `x` (N, C, H, W) uint8, `y` (N,) int64 or None."""

    x: torch.Tensor  # uint8 (N, C, H, W), contiguous
    y: torch.Tensor | None  # int64 (N,), or None when unlabelled
    classes: list[str]  # class names in label order ([] when unlabelled)
    name: str  # "digits", "mnist", or the path as given
    source: str  # where it was read from, for people
    audio: dict | None = None  # sound (data/audio.py): the spectrogram transform, as a dict
    wave: torch.Tensor | None = None  # sound: the clips (N, samples) float, before the transform
    captions: list[str] | None = None  # one sentence an image, in x's order (prompt families)
    attributes: dict[str, list] | None = None  # named per-image facts (emoji: style, tone, ...)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        _, c, h, w = self.x.shape
        return c, h, w


def load_images(
    spec: str,
    split: str = "train",
    *,
    size: int | None = None,
    crop: bool = False,
    channels: int | None = None,
    progress: bool = True,
) -> ImageSet:
    """Load split "train" or "test" (or "val", for shapes and emoji) of a named image set or a
    path (see the module docstring).

    ds = load_images("data/flowers", "test", size=64, crop=True, channels=3)
    """
    spec = str(spec)
    splits = NAMED_SETS[spec].splits if spec in NAMED_SETS else ("train", "test")
    if split not in splits:
        raise DataError(f"unknown split {split!r} for {spec}; use {', '.join(map(repr, splits))}")
    if spec == "shapes":
        x, captions = draw_shapes(split, size)
        return ImageSet(x, None, [], "shapes", "drawn by genlab.data.shapes", captions=captions)
    if size is not None and (not isinstance(size, int) or size < 1):
        raise DataError(f"size must be a positive integer, got {size!r}")
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")

    if spec in NAMED_SETS:
        if NAMED_SETS[spec].kind != "images":
            raise DataError(f"{spec} is a text data set; give an image set (digits, mnist) or path")
        if spec == "emoji":
            x, captions, attributes, source = load_emoji(split, size, progress)
            x = _transform(x, size=None, crop=False, channels=channels)
            return ImageSet(x, None, [], spec, source, captions=captions, attributes=attributes)
        x, y, classes, source = _digits(split) if spec == "digits" else _mnist(split, progress)
    else:
        path = Path(spec).expanduser()
        if path.is_dir() and any(is_idx_name(p.name) for p in path.iterdir()):
            x, y, classes, source = _idx_folder(path, split)
        elif path.is_dir():
            x, y, classes, source, captions = read_image_folder(
                spec, path, split, size=size, crop=crop, channels=channels, progress=progress
            )
            return ImageSet(x, y, classes, spec, source, captions=captions)
        elif path.is_file() and path.suffix.lower() == ".npz":
            x, y, classes, source = _npz(path, split)
        else:
            raise DataError(_not_images(spec, path))
    x = _transform(x, size=size, crop=crop, channels=channels)
    return ImageSet(x=x, y=y, classes=classes, name=spec, source=source)


def validation_split(name: str) -> str:
    """The split training validates on: a named set's own validation slice where it has one
    ("val" in its catalogue entry's splits: shapes, emoji), else its test split."""
    s = NAMED_SETS.get(str(name))
    return "val" if s is not None and "val" in s.splits else "test"


# ---- named sets ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 (1797, 8, 8) and labels; read once per process."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.rint(d.images * 255.0 / 16.0).astype(np.uint8)  # 0..16 -> 0..255
    x.setflags(write=False)
    return x, d.target


def _digits(split: str) -> Loaded:
    x, target = _digits_arrays()
    train, test = split_indices(len(x), len(x) - _DIGITS_TRAIN)
    idx = train if split == "train" else test
    x = torch.from_numpy(x[idx]).unsqueeze(1).contiguous()  # (N, 1, 8, 8)
    y = torch.from_numpy(target[idx].astype(np.int64))
    return x, y, [str(i) for i in range(10)], "scikit-learn load_digits() (embedded)"


def _mnist(split: str, progress: bool) -> Loaded:
    folder = fetch("mnist", progress=progress) / "mnist"
    prefix = "train" if split == "train" else "t10k"
    images = folder / f"{prefix}-images-idx3-ubyte.gz"
    x, y = read_idx_pair(images, folder / f"{prefix}-labels-idx1-ubyte.gz")
    return _nchw(x), _labels(y), [str(i) for i in range(10)], str(images)


# ---- arrays: IDX folders and .npz ----------------------------------------------------------


def _idx_folder(folder: Path, split: str) -> Loaded:
    files = find_idx(folder)
    if "images" not in files.get("train", {}):
        raise DataError(
            f"{folder}: no train images IDX file (e.g. train-images-idx3-ubyte.gz); "
            "point --data at a folder holding one"
        )
    has_test = "images" in files.get("test", {})
    part = files["test" if split == "test" and has_test else "train"]
    x, y = read_idx_pair(part["images"], part.get("labels"))
    labels = [y] if y is not None else []
    other = files.get("train" if split == "test" and has_test else "test", {})
    if y is not None and "labels" in other:
        labels.append(read_idx(other["labels"], 1))  # so both splits name the same classes
    source = str(part["images"])
    if not has_test:
        x, y, source = _held_out(x, y, split, source)
    return _nchw(x), _labels(y), _class_names(labels), source


def _npz(path: Path, split: str) -> Loaded:
    try:
        with np.load(path, allow_pickle=False) as z:
            if "x" not in z.files:
                found = ", ".join(z.files) or "nothing"
                raise DataError(
                    f"{path}: no array named x (found {found}); save images with "
                    "np.savez(path, x=images, y=labels)"
                )
            arrays = {k: z[k] for k in ("x", "y", "x_test", "y_test", "classes") if k in z.files}
    except (*DECODE_ERRORS, zipfile.BadZipFile) as e:
        raise DataError(
            f"{path}: cannot read this .npz ({reason_of(e)}); save it with np.savez"
        ) from None
    x, y = _check_xy(path, arrays["x"], arrays.get("y"), "x", "y")
    xt, yt = arrays.get("x_test"), arrays.get("y_test")
    if xt is not None:
        xt, yt = _check_xy(path, xt, yt, "x_test", "y_test")
        if xt.shape[1:] != x.shape[1:]:
            raise DataError(
                f"{path}: x is {x.shape[1:]} per image but x_test {xt.shape[1:]}; make them equal"
            )
        if (y is None) != (yt is None):
            raise DataError(f"{path}: give labels for both splits (y and y_test) or for neither")
    labels = [a for a in (y, yt) if a is not None]
    classes = _class_names(labels, arrays.get("classes"), path)
    if xt is None:
        x, y, source = _held_out(x, y, split, f"{path} (x)")
    elif split == "test":
        x, y, source = xt, yt, f"{path} (x_test)"
    else:
        source = f"{path} (x)"
    return _nchw(x), _labels(y), classes, source


def _check_xy(
    path: Path, x: np.ndarray, y: np.ndarray | None, xk: str, yk: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """x as uint8 (N, H, W, C) with C 1 or 3 (alpha dropped); y as int64 (N,) or None."""
    if x.ndim == 3:
        x = x[..., None]  # (N, H, W) -> (N, H, W, 1)
    if x.ndim != 4 or x.shape[-1] not in (1, 2, 3, 4) or len(x) == 0:
        raise DataError(
            f"{path}: {xk} has shape {x.shape}; expected (N, H, W) or (N, H, W, C) with C 1, 3 "
            "or 4 and N > 0"
        )
    if x.dtype != np.uint8:
        if not np.issubdtype(x.dtype, np.integer) or x.min() < 0 or x.max() > 255:
            raise DataError(
                f"{path}: {xk} has dtype {x.dtype}; genlab expects uint8 pixels 0..255, e.g. "
                "save (x * 255).round().astype(np.uint8)"
            )
        x = x.astype(np.uint8)
    x = x[..., :1] if x.shape[-1] == 2 else x[..., :3]  # gray+alpha -> gray, RGBA -> RGB
    if y is not None:
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise DataError(
                f"{path}: {yk} has shape {y.shape} and dtype {y.dtype} for {len(x)} images in "
                f"{xk}; give one integer label per image"
            )
        if len(y) and y.min() < 0:
            raise DataError(f"{path}: {yk} has negative labels; labels are 0, 1, 2, ...")
        y = y.astype(np.int64)
    return x, y


def _nchw(x: np.ndarray) -> torch.Tensor:
    """(N, H, W) or (N, H, W, C) uint8 -> (N, C, H, W) contiguous tensor."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)
    return t.contiguous()


def _labels(y: np.ndarray | None) -> torch.Tensor | None:
    return None if y is None else torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))


def _class_names(
    labels: list[np.ndarray], names: np.ndarray | None = None, path: Path | None = None
) -> list[str]:
    """Names for labels 0..max over all splits ("0", "1", ...), or the given names."""
    if not labels:
        return []
    n = int(max(int(a.max()) for a in labels if len(a))) + 1
    if names is None:
        return [str(i) for i in range(n)]
    names = [str(s) for s in np.asarray(names).reshape(-1)]
    if len(names) < n:
        raise DataError(
            f"{path}: {len(names)} class names for labels up to {n - 1}; give one name per class"
        )
    return names


# ---- splits --------------------------------------------------------------------------------


def _held_out(
    x: np.ndarray, y: np.ndarray | None, split: str, source: str
) -> tuple[np.ndarray, np.ndarray | None, str]:
    train, test = holdout_indices(len(x), source)
    idx = train if split == "train" else test
    note = "train: 90%" if split == "train" else "test: 10% held out"
    return x[idx], None if y is None else y[idx], f"{source} ({note}, seed 0)"


# ---- tensor transforms ---------------------------------------------------------------------


def _transform(
    x: torch.Tensor, *, size: int | None, crop: bool, channels: int | None
) -> torch.Tensor:
    """channels, then center crop, then resize; x (N, C, H, W) uint8 in and out."""
    if channels == 1 and x.shape[1] == 3:
        # ITU-R 601-2 luma in Pillow's fixed point, so tensors and files ("L") agree exactly.
        r, g, b = x.to(torch.int32).unbind(1)  # each (N, H, W)
        x = ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).to(torch.uint8).unsqueeze(1)
    if crop:
        h, w = x.shape[-2:]
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        x = x[..., top : top + s, left : left + s]
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        chunks = []
        for part in x.split(4096):  # bounds the float copy's memory
            f = F.interpolate(
                part.float(),
                size=(size, size),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
            chunks.append(f.round_().clamp_(0, 255).to(torch.uint8))
        x = torch.cat(chunks)
    if channels == 3 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)  # (N, 3, H, W), gray repeated
    return x.contiguous()


def _not_images(spec: str, path: Path) -> str:
    hint = "give a named set (digits, mnist), a folder of images or IDX files, or an .npz"
    if not path.exists():
        return f"{spec}: no such file or folder; {hint}"
    if path.suffix.lower() in IMAGE_EXTENSIONS or is_idx_name(path.name):
        return f"{spec}: a single file; give the folder that holds it (and its siblings)"
    return f"{spec}: not an image data set ({path.suffix or 'a file'} file); {hint}"
