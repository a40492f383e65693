"""Captions for a folder of images, read from `metadata.jsonl` beside them (the convention of
Hugging Face's ImageFolder): one JSON object a line, "file_name" (the image's path relative
to the folder that holds metadata.jsonl) and "text" (its caption).

    {"file_name": "cats/tabby.png", "text": "a tabby cat asleep on a chair"}

    captions = folder_captions(folder, every_image)   # {path: caption}, or None without one

metadata.jsonl may sit in the folder itself and in its train/ and test/ folders. Once any
image has a caption, every image must have one; a line that is not such an object, a name
given twice or one that is not an image of the folder is a DataError of one line, which
names the file and the line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

from genlab.errors import DataError

METADATA = "metadata.jsonl"
_EXAMPLE = '{"file_name": "a.png", "text": "a red circle"}'


def folder_captions(folder: Path, images: list[Path]) -> dict[Path, str] | None:
    """The caption of each of `images` (every image of the folder, both splits), from the
    metadata.jsonl files in `folder`, `folder/train` and `folder/test`; None when there is
    none. DataError (one line) when one is malformed or some image has no caption."""
    files = [d / METADATA for d in (folder, folder / "train", folder / "test")]
    files = [f for f in files if f.is_file()]
    if not files:
        return None
    known = {_key(p) for p in images}
    captions: dict[Path, str] = {}
    where: dict[Path, str] = {}
    for meta in files:
        for line_no, name, text in _entries(meta):
            at = f"{meta}, line {line_no}"
            path = _key(meta.parent / name)
            if path not in known:
                raise DataError(
                    f"{at}: file_name {name!r} is not an image in {folder}; name an image file "
                    "relative to the folder that holds metadata.jsonl"
                )
            if path in captions:
                raise DataError(f"{at}: {name!r} has a caption already ({where[path]})")
            captions[path], where[path] = text, f"line {line_no} of {meta}"
    missing = [p for p in images if _key(p) not in captions]
    if missing:
        raise DataError(
            f"{folder}: {len(missing):,} of {len(images):,} images have no caption in "
            f"{METADATA} (e.g. {missing[0]}); give every image a line, or remove {METADATA}"
        )
    return {p: captions[_key(p)] for p in images}


def _key(path: Path) -> Path:
    """A path as written, normalised ("a/./b.png" -> "a/b.png"), without resolving links."""
    return Path(os.path.normpath(path))


def _entries(meta: Path) -> list[tuple[int, str, str]]:
    """(line number, file_name, text) of each non-blank line of `meta`, checked."""
    try:
        lines = meta.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{meta}: cannot read it ({e}); write it as UTF-8 JSON lines") from None
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        at = f"{meta}, line {i}"
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise DataError(
                f"{at}: not JSON ({getattr(e, 'msg', e)}); each line is one object like {_EXAMPLE}"
            ) from None
        if not isinstance(obj, dict):
            raise DataError(f"{at}: a {type(obj).__name__}, not an object like {_EXAMPLE}")
        for field in ("file_name", "text"):
            if not isinstance(obj.get(field), str):
                problem = (
                    "missing" if field not in obj else f"not a string ({type(obj[field]).__name__})"
                )
                raise DataError(
                    f"{at}: {field!r} is {problem}; each line needs a string file_name and text, "
                    f"like {_EXAMPLE}"
                )
        name = obj["file_name"]
        p = PurePosixPath(name.replace("\\", "/"))
        if not name or p.is_absolute() or ".." in p.parts:
            raise DataError(f"{at}: file_name {name!r} must be a path inside {meta.parent}")
        out.append((i, name, obj["text"]))
    return out
