"""Text corpora as documents: the named sets and your own files, one call.

    ts = load_text("tinystories-2mb")   # ts.train, ts.val: lists of stories; ts.separator "eot"

`name` is a named set, the embedded set "pydoc", or a path:

- "grimms": embedded in genlab (Grimms' Fairy Tales, Project Gutenberg eBook #2591 without its
  header and footer, gzipped under genlab/data/corpora/, sha256-checked). Nothing to fetch.
- "tinyshakespeare", "tinystories-2mb": `fetch(name)` (cache, mirror or download;
  sha256-checked). TinyStories loses the story cut off by its 2 MiB cut (what follows the last
  `<|endoftext|>`).
- "pydoc": the topic pages of Python's own help (`pydoc_data.topics`, ~0.5 MB of English that
  ships with CPython), one document per topic, sorted by topic name. Nothing to fetch.
- a text file, or a folder: every `*.txt` and `*.md` file under it (recursively, sorted by
  relative path, hidden files and folders skipped), each file a document.

Bytes are read as strict UTF-8: a BOM is dropped, CRLF and lone CR become LF; invalid UTF-8 is
an error naming the file and the offset of the first bad byte. `separator` splits the text into
documents: "eot" on `<|endoftext|>`, "blank" on blank lines, "none" not at all (one document per
file), "auto" = "eot" where the text holds `<|endoftext|>`, else "none". Documents are stripped
of surrounding whitespace and empty ones dropped; a corpus of one document is kept as read.

The split is fixed (no shuffling): one document -> the last 10% of its characters are the
validation text, as nanoGPT does; several -> the last 10% of the documents (at least one, and at
least one left to train on). Named sets take precedence over same-named paths (use "./grimms"
for a folder). Bad input raises DataError with one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from genlab.data.catalogue import NAMED_SETS
from genlab.data.fetch import cache_dir, fetch, read_embedded
from genlab.errors import DataError

EOT = "<|endoftext|>"
SEPARATORS = ("auto", "eot", "blank", "none")
TEXT_EXTENSIONS = (".txt", ".md")
VAL_FRACTION = 0.1
_BLANK_LINES = re.compile(r"\n\s*\n")  # one or more blank (or whitespace-only) lines
_ICONV = "iconv -f latin1 -t utf-8 IN > OUT"


@dataclass
class TextSet:
    """The documents of a corpus, split into train and validation; `text(split)` joins them."""

    name: str  # the named set or the path as given
    source: str  # where it was read from, for people
    train: list[str]  # training documents (one when the corpus has no separators)
    val: list[str]  # validation documents
    separator: str  # "eot", "blank" or "none": what split the documents

    def text(self, split: str) -> str:
        """The documents of "train" or "val" ("test" is the same as "val") joined by a blank line.

        ts.text("val")  # the held-out text, e.g. for a metric
        """
        if split == "train":
            return "\n\n".join(self.train)
        if split in ("val", "test"):
            return "\n\n".join(self.val)
        raise DataError(f"unknown split {split!r}; use 'train', 'val' or 'test'")


def text_set_names() -> list[str]:
    """The names `load_text` knows: the named text sets and the embedded "pydoc".

    names = text_set_names()  # ["grimms", "pydoc", "tinyshakespeare", "tinystories-2mb"]
    """
    return sorted([n for n, s in NAMED_SETS.items() if s.kind == "text"] + ["pydoc"])


def load_text(name: str, separator: str = "auto", progress: bool = True) -> TextSet:
    """Read a named text set or a path and split it into train and validation documents.

    ts = load_text("data/my_stories", separator="blank")
    """
    name = str(name)
    if separator not in SEPARATORS:
        raise DataError(f"unknown separator {separator!r}; use one of {', '.join(SEPARATORS)}")
    if name == "pydoc":
        texts, source = _pydoc()
    elif name in NAMED_SETS:
        texts, source = _named(name, progress)
    else:
        texts, source = _path(name, progress)

    if separator == "auto":
        separator = "eot" if any(EOT in t for t in texts) else "none"
    pieces = [p for t in texts for p in _split_documents(t, separator) if p.strip()]
    if not pieces:
        raise DataError(
            f"{name} is empty (no text in {source}); give a file or folder with text in it"
        )
    if len(pieces) == 1:
        # One document is kept as read, so the character split matches nanoGPT's exactly.
        text = pieces[0]
        if len(text) < 2:
            raise DataError(f"{name}: one character of text; give at least two to split")
        cut = int(len(text) * (1 - VAL_FRACTION))
        train, val = [text[:cut]], [text[cut:]]
    else:
        docs = [p.strip() for p in pieces]
        n_val = max(1, int(len(docs) * VAL_FRACTION))
        train, val = docs[:-n_val], docs[-n_val:]
    return TextSet(name=name, source=source, train=train, val=val, separator=separator)


# ---- sources -------------------------------------------------------------------------------


def _pydoc() -> tuple[list[str], str]:
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise DataError(
            "this Python has no pydoc_data module (some distributions strip it); "
            "use another text set, e.g. tinyshakespeare"
        ) from None
    texts = [_newlines(topics[key]) for key in sorted(topics)]
    return texts, "embedded (Python's pydoc_data.topics)"


def _named(name: str, progress: bool) -> tuple[list[str], str]:
    s = NAMED_SETS[name]
    if s.kind != "text":
        raise DataError(
            f"{name} is not a text data set; give one of {', '.join(text_set_names())} or a path"
        )
    if s.embedded is not None:
        text = read_embedded(name).decode("utf-8")  # stored as the loader below would read it
        return [text], f"embedded (genlab/data/{s.embedded.resource})"
    folder = fetch(name, progress=progress)
    path = folder / s.files[0].path
    text = _read(path)
    if name == "tinystories-2mb":
        text = text[: text.rindex(EOT) + len(EOT)]  # the 2 MiB cut ends mid-story
    where = "cache" if folder == cache_dir() else "mirror"
    return [text], f"{where} {path}"


def _path(spec: str, progress: bool) -> tuple[list[str], str]:
    path = Path(spec).expanduser()
    if path.is_file():
        return [_read(path)], f"file {path}"
    if not path.is_dir():
        raise DataError(
            f"{spec}: no such file or folder; give a text file, a folder of .txt/.md files, "
            f"or a named set ({', '.join(text_set_names())})"
        )
    files = sorted(
        (p for p in path.rglob("*") if p.suffix.lower() in TEXT_EXTENSIONS and p.is_file()),
        key=lambda p: p.relative_to(path).as_posix(),
    )
    files = [p for p in files if not any(s.startswith(".") for s in p.relative_to(path).parts)]
    if not files:
        raise DataError(f"{spec}: no .txt or .md files in this folder; put your text files there")
    bar = tqdm(files, desc=f"reading {spec}", disable=not progress, leave=False, delay=1.0)
    texts = [_read(p) for p in bar]
    return texts, f"folder {path} ({len(files)} files)"


# ---- decoding and splitting ----------------------------------------------------------------


def _read(path: Path) -> str:
    """A file's text: strict UTF-8, BOM dropped, CRLF and lone CR made LF."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e}); check the path") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not valid UTF-8 (byte {data[e.start]:#04x} at byte offset {e.start}); "
            f"re-encode it as UTF-8, e.g. {_ICONV}"
        ) from None
    return _newlines(text.removeprefix("\ufeff"))


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _split_documents(text: str, separator: str) -> list[str]:
    if separator == "eot":
        return text.split(EOT)
    if separator == "blank":
        return _BLANK_LINES.split(text)
    return [text]


def gutenberg_body(path: Path) -> str:
    """A Project Gutenberg eBook's text between its "*** START OF" and "*** END OF" lines,
    read as `load_text` reads files and stripped: how the embedded "grimms" was made of
    pg2591.txt (the tests check that it still is).

        text = gutenberg_body(Path("pg2591.txt"))
    """
    text = _read(path)
    start = re.search(r"^\*\*\* ?START OF.*$", text, re.MULTILINE)
    end = re.search(r"^\*\*\* ?END OF", text, re.MULTILINE)
    if start is None or end is None or end.start() < start.end():
        raise DataError(
            f"{path}: no Project Gutenberg START/END lines found; give a Gutenberg eBook's .txt"
        )
    return text[start.end() : end.start()].strip()


__all__ = ["EOT", "SEPARATORS", "TextSet", "gutenberg_body", "load_text", "text_set_names"]
