"""The gallery: what the studio generated from a run, kept in the run's studio/ folder as
numbered files (a PNG with its provenance, or a JSON of a text), newest shown first.

    name = save_to_gallery(run_dir, png_bytes, "png")   # "000007.png", written atomically
    gallery_items(run_dir)                              # the newest 60, as the page shows them

Only names genlab writes are read back, and never through a link out of the run.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError
from genlab.fsutil import write_bytes_atomic
from genlab.outputs.provenance import data_uri, read_provenance

GALLERY = "studio"  # the gallery folder inside a run

_gallery_lock = threading.Lock()


def save_to_gallery(run_dir: Path, data: bytes, ext: str) -> str:
    """Keep one output in RUN/studio/ (numbered files, written atomically); its name."""
    folder = Path(run_dir) / GALLERY
    folder.mkdir(exist_ok=True)
    with _gallery_lock:
        taken = [int(p.stem) for p in folder.iterdir() if p.stem.isdigit()]
        name = f"{max(taken, default=-1) + 1:06d}.{ext}"
        write_bytes_atomic(folder / name, data)
    return name


def gallery_items(run_dir: Path, limit: int = 60) -> list[dict[str, Any]]:
    """The newest ``limit`` outputs of the run's gallery (only names genlab writes)."""
    out = []
    for p in _newest_files(Path(run_dir), limit):
        try:
            out.append(_gallery_item(p, p.read_bytes()))
        except (OSError, ValueError, GenlabError):
            continue  # a file someone else put there: not ours to show
    return out


def _newest_files(run_dir: Path, limit: int) -> list[Path]:
    folder = run_dir / GALLERY
    if not folder.is_dir():
        return []
    inside = run_dir.resolve()
    return sorted(
        (
            p
            for p in folder.iterdir()
            if p.stem.isdigit()
            and p.suffix in (".png", ".json")
            and p.resolve().is_relative_to(inside)  # a link out of the run is not followed
        ),
        key=lambda p: int(p.stem),
        reverse=True,
    )[:limit]


def _gallery_item(p: Path, data: bytes) -> dict[str, Any]:
    """One gallery file as the page shows it: a PNG with its provenance, or a text."""
    if p.suffix == ".png":
        meta = read_provenance(data)
        return {"file": p.name, "kind": "image", "png": data_uri(data), "meta": meta}
    doc = json.loads(data)
    return {
        "file": p.name,
        "kind": "text",
        "text": str(doc.get("text", "")),
        "prompt": str(doc.get("prompt", "")),
        "meta": doc.get("meta", {}),
    }
