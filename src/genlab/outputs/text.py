"""Text out: samples as a .txt file (prompt + continuation, a rule between samples) or a
.jsonl file (one object a sample), streamed, and whole or not at all.

    stories = genlab.load("runs/gpt").sample(5, prompt="Once upon a time")
    save_texts(stories, "stories.txt", prompt="Once upon a time")   # or stories.jsonl
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from genlab.errors import GenlabError

TEXT_RULE = "=" * 24  # the line between samples in a .txt file


def save_texts(
    texts: Iterable[str], out: str | Path, prompt: str = "", meta: dict | None = None
) -> Path:
    """Write text samples: ``.txt`` (each sample as prompt + continuation, a rule of "="
    between them) or ``.jsonl`` (one {"i", "prompt", "text", ...meta} object a line).
    ``texts`` may be a generator: each sample is written as it comes (into a temporary file
    that replaces ``out`` at the end), so any number of samples fits."""
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".jsonl"):
        raise GenlabError(
            f"{path}: unknown output type {suffix or '(none)'} for text; use .txt or .jsonl"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for i, t in enumerate(texts):
                if suffix == ".txt":
                    f.write(("" if i == 0 else f"{TEXT_RULE}\n") + prompt + t + "\n")
                else:
                    rec = {"i": i, "prompt": prompt, "text": t, **(meta or {})}
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
