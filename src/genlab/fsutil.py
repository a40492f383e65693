"""Durable files: what makes "written, then renamed into place" survive a crash, and the
readers of the run directory's file formats (JSON, JSON lines, safetensors; never a pickle).

write_bytes_atomic(path, data)     # temporary name, fsync, os.replace, fsync the folder
write_json(path, obj); obj = read_json(path)
save_tensors(path, {"w": w}); tensors = load_tensors(path)
records = read_jsonl(path)         # metrics.jsonl: a torn last line is dropped, and said
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from genlab.errors import RunError


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file inside ``folder`` durable (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temporary file, fsync, rename)."""
    write_bytes_atomic(Path(path), (json.dumps(obj, indent=2) + "\n").encode())


def read_json(path: Path) -> Any:
    """A JSON file; missing or unreadable is a RunError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{path} is not valid JSON ({e}); the run directory is damaged") from None


def read_jsonl(path: Path, *, warn: bool = True) -> list[dict]:
    """The records of a JSON-lines file (metrics.jsonl), in order.

    A kill mid-write can leave the LAST line cut short: it is dropped, and said on stderr
    (``warn``). Any other line that is not a JSON object means the file was damaged or
    edited: a RunError naming the file and the line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="strict").split("\n")
    except FileNotFoundError:
        return []
    except UnicodeDecodeError as e:
        raise RunError(f"{path}: not UTF-8 text at byte {e.start}; restore the file") from None
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last record
    records = []
    for i, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            if i == len(lines) and not path.read_bytes().endswith(b"\n"):
                if warn:
                    print(
                        f"genlab: {path} line {i} is cut short (a write was interrupted); "
                        "ignoring it",
                        file=sys.stderr,
                    )
                break
            raise RunError(
                f"{path} line {i} is not a JSON record ({str(e)[:60]}); "
                "the file was damaged or edited: restore it, or delete that line"
            ) from None
        records.append(rec)
    return records


def save_tensors(path: Path, tensors: dict, atomic: bool = True, metadata: dict | None = None):
    """Write a safetensors file; with ``atomic`` through a temporary name and a rename.
    ``metadata``: extra string pairs kept in the file's header (e.g. the training step)."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    target = path.with_name(f".{path.name}.tmp-{os.getpid()}") if atomic else path
    meta = {"format": "pt", "writer": "genlab", **{k: str(v) for k, v in (metadata or {}).items()}}
    save_file(tensors, str(target), metadata=meta)
    fsync_file(target)
    if atomic:
        os.replace(target, path)
        fsync_dir(path.parent)


def load_tensors(path: Path) -> dict:
    """Read a safetensors file; anything else (a pickle, a truncated file) is a RunError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path} is missing; the run directory is incomplete")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise RunError(
            f"{path} is not a readable safetensors file ({str(e).splitlines()[0][:80]});"
            " genlab never unpickles checkpoints: retrain or restore the file"
        ) from None


def tensors_metadata(path: Path) -> dict[str, str]:
    """The string metadata in a safetensors file's header ({} if none or unreadable)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError):
        return {}
