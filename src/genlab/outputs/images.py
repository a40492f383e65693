"""Images out: a PNG grid, an .npz of uint8 arrays, or a folder of PNGs, written whole or
not at all (a temporary file replaces the target).

    x = genlab.load("runs/vae").sample(64, seed=0)     # (64, C, H, W) in [-1, 1]
    save_images(x, "grid.png")                           # one grid
    save_images(x, "samples.npz", labels=y)              # x: uint8 (N, H, W, C), y
    save_images(x, "samples/")                           # samples/000000.png, ...
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genlab.errors import GenlabError
from genlab.outputs.provenance import png_info


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) floats in [-1, 1] -> (N, H, W, C) uint8."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def make_grid(
    images: np.ndarray, nrow: int | None = None, pad: int = 2, min_cell: int = 48
) -> np.ndarray:
    """Tile (N, H, W, C) uint8 images into one (H', W', C) image, ``nrow`` per row.

    Small images are enlarged (nearest neighbour, whole multiples) so an 8x8
    digit is visible: each cell is at least ``min_cell`` pixels.
    """
    n, h, w, c = images.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    scale = max(1, math.ceil(min_cell / max(h, w)))
    if scale > 1:
        images = images.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[top : top + h, left : left + w] = images[i]
    return grid


def pil_image(img: np.ndarray) -> Image.Image:
    return Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)


GRID_MAX = 10_000  # images in one .png grid: more is no picture a person can look at


def check_image_output(out: str | Path, n: int) -> None:
    """Refuse, before any sampling, an output that cannot take ``n`` images: an unknown
    extension, or a grid too large to look at. A folder/ and an .npz are written as the
    samples come, so any ``n`` fits in memory."""
    out_s = str(out)
    if out_s.endswith(("/", os.sep)):
        return
    suffix = Path(out_s).suffix.lower()
    if suffix not in (".png", ".npz"):
        raise GenlabError(
            f"{out_s}: unknown output type {suffix or '(none)'}; use .png (a grid), "
            ".npz (arrays) or a path ending in / (one PNG per sample)"
        )
    if suffix == ".png" and n > GRID_MAX:
        raise GenlabError(
            f"a grid of {n:,} images is more than anyone can look at (at most {GRID_MAX:,}); "
            "write a folder/ or an .npz (both streamed)"
        )


def save_image_batches(
    batches: Iterator[tuple[torch.Tensor, list[int] | None]],
    out: str | Path,
    n: int,
    nrow: int | None = None,
    meta: Callable[[int | None], dict] | None = None,
) -> Path:
    """Write ``n`` samples that come in (x, labels) batches, holding one batch at a time:
    a folder/ gets each batch's PNGs, an .npz each batch's bytes (its arrays' sizes are
    known up front, so they stream into the zip); a .png grid is assembled and written once
    (at most GRID_MAX images). ``meta(i)`` is the provenance PNG i of a folder carries
    (outputs/provenance.py), ``meta(None)`` the grid's."""
    out_s = str(out)
    if out_s.endswith(("/", os.sep)):
        folder = Path(out_s)
        folder.mkdir(parents=True, exist_ok=True)
        i = 0
        for x, _ in batches:
            for img in to_uint8(x):
                info = png_info(meta(i)) if meta else None
                pil_image(img).save(folder / f"{i:06d}.png", pnginfo=info)
                i += 1
        return folder
    path = Path(out_s)
    if path.suffix.lower() == ".npz":
        return _stream_npz(batches, path, n)
    parts, labels = [], []
    for x, y in batches:
        parts.append(to_uint8(x))
        labels += y or []
    return save_array(np.concatenate(parts), out, labels or None, nrow, meta and meta(None))


def _stream_npz(batches, path: Path, n: int) -> Path:
    """An .npz as np.savez_compressed writes it (x: uint8 (N, H, W, C); y: int64 labels),
    written batch by batch: each array's .npy header names its shape before the data."""
    labels: list[int] = []
    with npz_writer(path) as zf:
        with zf.open("x.npy", "w", force_zip64=True) as f:
            header = False
            for x, y in batches:
                part = to_uint8(x)
                if not header:
                    npy_header(f, "|u1", (n, *part.shape[1:]))
                    header = True
                f.write(np.ascontiguousarray(part).tobytes())
                labels += y or []  # 8 bytes a sample: small beside the images
        write_labels(zf, labels)
    return path


@contextmanager
def npz_writer(path: Path) -> Iterator[zipfile.ZipFile]:
    """An .npz written whole or not at all: the zip to add members to, in a temporary file
    that replaces ``path`` when the block ends without an error (and is removed if not)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            yield zf
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def npy_header(f, descr: str, shape: tuple[int, ...]) -> None:
    """The .npy header of an array whose bytes follow, so a member can stream in."""
    np.lib.format.write_array_header_2_0(f, {"descr": descr, "fortran_order": False, "shape": shape})


def write_labels(zf: zipfile.ZipFile, labels: list[int]) -> None:
    """``y``: the int64 labels of a conditional run's samples (none: no member)."""
    if labels:
        zf.writestr("y.npy", npy_bytes(np.asarray(labels, dtype=np.int64)))


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def save_images(
    x: torch.Tensor, out: str | Path, labels: list[int] | None = None, nrow: int | None = None
) -> Path:
    """Write samples where the extension of ``out`` says: .png grid, .npz, or folder/."""
    out_s = str(out)
    if out_s.endswith(("/", os.sep)):
        return save_image_batches(iter([(x, labels)]), out, len(x))
    return save_array(to_uint8(x), out, labels, nrow)


def save_array(
    images: np.ndarray,
    out: str | Path,
    labels: list[int] | None,
    nrow: int | None,
    meta: dict | None = None,
) -> Path:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")
    if suffix == ".png":
        pil_image(make_grid(images, nrow)).save(tmp, pnginfo=png_info(meta) if meta else None)
    elif suffix == ".npz":
        arrays = {"x": images}
        if labels is not None:
            arrays["y"] = np.asarray(labels, dtype=np.int64)
        np.savez_compressed(tmp, **arrays)
    else:
        raise GenlabError(
            f"{path}: unknown output type {suffix or '(none)'}; use .png (a grid), "
            ".npz (arrays) or a path ending in / (one PNG per sample)"
        )
    os.replace(tmp, path)
    return path
