"""IDX files (the MNIST format), gzipped or not: find them in a folder and read them.

    images, labels = read_idx_pair(Path("mnist/train-images-idx3-ubyte.gz"), labels_path)

An IDX file is a 4-byte magic (0, 0, type code, number of dimensions), one big-endian
uint32 per dimension, then the values in C order. Only unsigned bytes (type 0x08) are
read: that covers MNIST, Fashion-MNIST, KMNIST and EMNIST.
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import numpy as np

from genlab.errors import DataError, reason_of

_UBYTE = 0x08
_IDX_NAME = re.compile(r"(idx\d|ubyte)", re.IGNORECASE)


def is_idx_name(name: str) -> bool:
    """Looks like an IDX file name (`...-idx3-ubyte`, `...-ubyte.gz`)."""
    return bool(_IDX_NAME.search(name)) and not name.startswith(".")


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """The uint8 array in `path` (gzip or raw), which must have `ndim` dimensions."""
    try:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error, ValueError) as e:
        raise DataError(
            f"{path}: cannot read ({reason_of(e, limit=None)}); the file is truncated or corrupt, download it again"
        ) from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _UBYTE or data[3] != ndim:
        raise DataError(
            f"{path}: not an IDX file of unsigned bytes with {ndim} dimensions (bad magic "
            f"{data[:4].hex()}); point --data at MNIST-style idx{ndim}-ubyte files"
        )
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(data[4:header], dtype=">u4"))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(dims) != ndim or len(data) != expected:
        raise DataError(
            f"{path}: IDX header says {dims} ({expected} bytes) but the file has {len(data)} "
            "bytes; the file is truncated or corrupt, download it again"
        )
    # frombuffer over bytes is read-only; copy once so torch can own writable memory.
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def read_idx_pair(
    images_path: Path, labels_path: Path | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Images (N, H, W) uint8 and labels (N,) int64 or None, with their counts checked."""
    x = read_idx(images_path, 3)  # (N, H, W)
    if "emnist" in images_path.name.lower():
        x = np.ascontiguousarray(x.transpose(0, 2, 1))  # EMNIST stores images transposed
    if labels_path is None:
        return x, None
    y = read_idx(labels_path, 1).astype(np.int64)  # (N,)
    if len(y) != len(x):
        raise DataError(
            f"{labels_path}: {len(y)} labels for {len(x)} images in {images_path.name}; "
            "use the label file that belongs to these images"
        )
    return x, y


def find_idx(folder: Path) -> dict[str, dict[str, Path]]:
    """{"train"|"test": {"images": path, "labels": path}} from the IDX file names in `folder`.

    Train files contain "train"; test files "t10k" or "test"; image files "images" or
    "idx3", label files "labels" or "idx1". When a file exists both gzipped and not, the
    plain one is read (no decompression). Two candidates for one slot is an error.
    """
    found: dict[str, dict[str, list[Path]]] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and is_idx_name(p.name)):
        name = path.name.lower()
        split = (
            "train" if "train" in name else "test" if ("t10k" in name or "test" in name) else None
        )
        kind = (
            "images"
            if ("images" in name or "idx3" in name)
            else "labels"
            if ("labels" in name or "idx1" in name)
            else None
        )
        if split and kind:
            found.setdefault(split, {}).setdefault(kind, []).append(path)
    result: dict[str, dict[str, Path]] = {}
    for split, kinds in found.items():
        for kind, paths in kinds.items():
            plain = {
                p.name.removesuffix(".gz"): p for p in sorted(paths, key=lambda p: -len(p.name))
            }
            if len(plain) > 1:
                names = ", ".join(sorted(plain))
                raise DataError(
                    f"{folder}: several {split} {kind} files ({names}); "
                    "put one data set's IDX files in a folder of their own"
                )
            result.setdefault(split, {})[kind] = next(iter(plain.values()))
    return result
