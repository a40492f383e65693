"""Your own image files: a folder of PNG/JPEG/BMP/WebP images read into one uint8 tensor,
its classes from subfolders, its captions from metadata.jsonl (genlab.data.captions), and
the fixed held-out split that a path without a test split of its own gets.

    x, y, classes, source, captions = read_image_folder("pets", Path("pets"), "train",
                                                        size=32, crop=False, channels=None,
                                                        progress=True)

`genlab.data.images.load_images` is the front; the layout rules are in its docstring.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from genlab.data.captions import folder_captions
from genlab.errors import DataError, reason_of

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    zlib.error,
    Image.DecompressionBombError,
)


def split_indices(n: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed split: test = the last n_test of default_rng(0).permutation(n), train the rest."""
    perm = np.random.default_rng(0).permutation(n)
    return perm[: n - n_test], perm[n - n_test :]


def holdout_indices(n: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """10% held out as test (at least 1 image), for a path with no test split of its own."""
    if n < 2:
        raise DataError(f"{what}: {n} image(s); need at least 2 to hold one out as the test split")
    return split_indices(n, max(1, n // 10))


def read_image_folder(
    spec: str,
    folder: Path,
    split: str,
    *,
    size: int | None,
    crop: bool,
    channels: int | None,
    progress: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, list[str], str, list[str] | None]:
    """Split `split` of a folder of image files: x (N, C, H, W) uint8, y or None, class names,
    a source line, captions or None. Options are applied per file with Pillow."""
    if (folder / "train").is_dir():
        train_items = _labelled_files(folder / "train")
        test_items = _labelled_files(folder / "test") if (folder / "test").is_dir() else None
    else:
        train_items, test_items = _labelled_files(folder), None
    every = train_items + (test_items or [])
    if not every:
        raise nothing_found(
            folder,
            "images",
            put="PNG/JPEG images (or IDX files, or an .npz) there",
            point_at="a folder of PNG/JPEG/BMP/WebP files (class subfolders give labels)",
        )
    names = {c for _, c in every}
    if None in names and len(names) > 1:
        raise DataError(
            f"{folder}: some images are in class subfolders and some are not; "
            "put every image in a class folder, or none"
        )
    classes = sorted(c for c in names if c is not None)
    label_of = {c: i for i, c in enumerate(classes)}

    # Header-only pass over every file of both splits: one mode and size for the whole set.
    headers = [
        _peek(p)
        for p, _ in tqdm(
            every, desc=f"scanning {spec}", disable=not progress, leave=False, delay=1.0
        )
    ]
    mode = {1: "L", 3: "RGB"}.get(channels) or (
        "L" if all(m in _GRAY_MODES for m, _ in headers) else "RGB"
    )
    shapes = {_final_size(wh, size, crop): p for (_, wh), (p, _) in zip(headers, every)}
    if len(shapes) > 1:
        (a, pa), (b, pb) = list(shapes.items())[:2]
        raise DataError(
            f"{folder}: images of different sizes ({pa.name} {a[0]}x{a[1]}, {pb.name} "
            f"{b[0]}x{b[1]}); pass --size N (and optionally --crop)"
        )

    captions = folder_captions(folder, [p for p, _ in every])  # checked before any decoding
    if test_items is None:
        train, test = holdout_indices(len(every), str(folder))
        items = [every[i] for i in (train if split == "train" else test)]
        source = f"{folder} ({'train: 90%' if split == 'train' else 'test: 10% held out'}, seed 0)"
    elif split == "train":
        items, source = train_items, str(folder / "train")
    else:
        items, source = test_items, str(folder / "test")
    if not items:
        raise DataError(
            f"{folder / split}: no images for the {split} split; add some, or remove the folder"
        )

    (w, h), c = next(iter(shapes)), 1 if mode == "L" else 3
    x = np.empty((len(items), h, w, c), dtype=np.uint8)  # (N, H, W, C)
    for i, (p, _) in enumerate(
        tqdm(items, desc=f"reading {spec} ({split})", disable=not progress, delay=1.0)
    ):
        x[i] = _decode(p, mode, size, crop).reshape(h, w, c)
    y = torch.tensor([label_of[cl] for _, cl in items], dtype=torch.int64) if classes else None
    caps = None if captions is None else [captions[p] for p, _ in items]
    x_nchw = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    return x_nchw, y, classes, f"{source}, {len(items)} files", caps


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()


def _labelled_files(root: Path) -> list[tuple[Path, str | None]]:
    """(file, class name or None) for the images in root: subfolders are classes."""
    top = sorted(p for p in root.iterdir() if _is_image(p))
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    nested = [(p, d.name) for d in subdirs for p in sorted(d.rglob("*")) if _is_image(p)]
    if top and nested:
        raise DataError(
            f"{root}: images both directly inside ({top[0].name}) and in class subfolders; "
            "move every image into a class folder, or none"
        )
    return nested or [(p, None) for p in top]


def nothing_found(folder: Path, what: str, put: str, point_at: str) -> DataError:
    """The one-line error for a folder that holds no `what`: empty ("put PUT"), or only other
    files (how many, one of them, and "point --data at POINT_AT"). Audio folders use it too."""
    entries = sorted(p.name for p in folder.rglob("*") if p.is_file())
    if not entries:
        return DataError(f"{folder}: empty folder; put {put}")
    return DataError(
        f"{folder}: no {what} found ({len(entries)} other files, e.g. {entries[0]}); point "
        f"--data at {point_at}"
    )


def _peek(path: Path) -> tuple[str, tuple[int, int]]:
    """(mode, (width, height)) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            return im.mode, im.size
    except DECODE_ERRORS as e:
        raise DataError(
            f"{path}: not a readable image ({reason_of(e)}); remove or replace this file"
        ) from None


def _final_size(wh: tuple[int, int], size: int | None, crop: bool) -> tuple[int, int]:
    if size is not None:
        return size, size
    return (min(wh),) * 2 if crop else wh


def _decode(path: Path, mode: str, size: int | None, crop: bool) -> np.ndarray:
    """One file -> (H, W) or (H, W, 3) uint8 after mode conversion, crop and resize."""
    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if crop:
                w, h = im.size
                s = min(w, h)
                left, top = (w - s) // 2, (h - s) // 2
                im = im.crop((left, top, left + s, top + s))
            if size is not None and im.size != (size, size):
                # Pillow's bilinear filter widens its support when shrinking: antialiased.
                im = im.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(im)
    except DECODE_ERRORS as e:
        raise DataError(
            f"{path}: cannot decode this image ({reason_of(e)}); remove or replace this file"
        ) from None
