"""Writing samples: a PNG grid, an .npz of uint8 arrays, or a folder of PNGs; for text,
a .txt file or a .jsonl file.

x = genlab.load("runs/vae").sample(64, seed=0)     # (64, C, H, W) in [-1, 1]
save_images(x, "grid.png")                           # one grid
save_images(x, "samples.npz", labels=y)              # x: uint8 (N, H, W, C), y
save_images(x, "samples/")                           # samples/000000.png, ...
stories = genlab.load("runs/gpt").sample(5, prompt="Once upon a time")
save_texts(stories, "stories.txt", prompt="Once upon a time")   # or stories.jsonl
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genlab.errors import GenlabError


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


def _pil(img: np.ndarray) -> Image.Image:
    return Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)


def save_images(
    x: torch.Tensor, out: str | Path, labels: list[int] | None = None, nrow: int | None = None
) -> Path:
    """Write samples where the extension of ``out`` says: .png grid, .npz, or folder/."""
    out_s = str(out)
    images = to_uint8(x)
    if out_s.endswith(("/", os.sep)):
        folder = Path(out_s)
        folder.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(images):
            _pil(img).save(folder / f"{i:06d}.png")
        return folder
    path = Path(out_s)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")
    if suffix == ".png":
        _pil(make_grid(images, nrow)).save(tmp)
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


TEXT_RULE = "=" * 24  # the line between samples in a .txt file


def save_texts(
    texts: list[str], out: str | Path, prompt: str = "", meta: dict | None = None
) -> Path:
    """Write text samples: ``.txt`` (each sample as prompt + continuation, a rule of "="
    between them) or ``.jsonl`` (one {"i", "prompt", "text", ...meta} object a line)."""
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".jsonl"):
        raise GenlabError(
            f"{path}: unknown output type {suffix or '(none)'} for text; use .txt or .jsonl"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".txt":
        body = f"\n{TEXT_RULE}\n".join(prompt + t for t in texts) + "\n"
    else:
        body = "".join(
            json.dumps({"i": i, "prompt": prompt, "text": t, **(meta or {})}, ensure_ascii=False)
            + "\n"
            for i, t in enumerate(texts)
        )
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, path)
    return path
