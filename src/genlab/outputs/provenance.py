"""Provenance inside the file: a PNG carries how it was made (run, weights, seed, controls,
index) in its text chunks, so a PNG saved from the studio and dropped back regenerates the
same pixels; and the data: URIs outputs travel in over HTTP.

    png = png_with_provenance(uint8_hwc, meta)    # bytes, meta a JSON object in an iTXt chunk
    read_provenance(png)                          # -> meta; GenlabError for any other file
    data_uri(plain_png(uint8_hwc))                # "data:image/png;base64,..."

Only the file format lives here; what a record holds (the run, its weights' sha256) is made
by whoever writes the output (the studio: serve/generate.py).
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from genlab.errors import GenlabError
from genlab.version import __version__

PNG_KEY = "genlab"  # the PNG text chunk holding the provenance JSON
MAX_PNG_SIDE = 4096  # a dropped PNG larger than this is refused before decoding


def png_info(meta: dict[str, Any]) -> PngImagePlugin.PngInfo:
    """The PNG text chunks that carry ``meta``: the JSON in an iTXt chunk, and a one-line
    "parameters" summary (run, seed, index, controls), as image UIs write one."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(PNG_KEY, json.dumps(meta, sort_keys=True))
    controls = ", ".join(f"{k}: {v}" for k, v in (meta.get("controls") or {}).items())
    summary = f"run: {meta.get('run')}, seed: {meta.get('seed')}"
    if "index" in meta:
        summary += f", index: {meta['index']}"
    info.add_text("parameters", f"{summary}, {controls}" if controls else summary)
    info.add_text("Software", f"genlab {__version__}")
    return info


def _pil(img: np.ndarray) -> Image.Image:
    return Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)


def png_with_provenance(img: np.ndarray, meta: dict[str, Any]) -> bytes:
    """A PNG of one (H, W, C) uint8 image with ``meta`` in its text chunks (``png_info``)."""
    buf = io.BytesIO()
    _pil(img).save(buf, "PNG", pnginfo=png_info(meta))
    return buf.getvalue()


def read_provenance(data: bytes) -> dict[str, Any]:
    """The provenance a studio PNG carries; GenlabError for anything else."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise GenlabError("that file is not a PNG; drop a PNG saved from the studio")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w > MAX_PNG_SIDE or h > MAX_PNG_SIDE:
                raise GenlabError(f"that PNG is {w}x{h}, larger than any studio output")
            text = dict(getattr(im, "text", {}) or {})
    except GenlabError:
        raise
    except Exception as e:
        raise GenlabError(f"that PNG cannot be read ({type(e).__name__}); is it complete?") from None
    if PNG_KEY not in text:
        raise GenlabError(
            "that PNG has no genlab provenance (it was not saved from the studio, or an editor "
            "dropped its text chunks)"
        )
    try:
        meta = json.loads(text[PNG_KEY])
    except ValueError:
        raise GenlabError("that PNG's genlab provenance is not valid JSON") from None
    if not isinstance(meta, dict):
        raise GenlabError("that PNG's genlab provenance is not a JSON object")
    return meta


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """``data`` (a PNG unless ``mime`` says otherwise) as a data: URI, base64."""
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def plain_png(img: np.ndarray) -> bytes:
    """A PNG of one (H, W, C) uint8 image, with no text chunks."""
    buf = io.BytesIO()
    _pil(img).save(buf, "PNG")
    return buf.getvalue()
