"""Tokenizers for text models: characters or byte-level BPE, saved as one JSON file.

    tok = build_tokenizer("bpe", ts.train, vocab_size=4096)
    ids = tok.encode_documents(ts.train)          # 1-D int64, <|endoftext|> after each story
    tok.save(run_dir / "tokenizer.json"); tok = load_tokenizer(run_dir / "tokenizer.json")

- "char": the vocabulary is the sorted distinct characters of the texts it was built from, plus
  `<|endoftext|>` as one more id at the end when built `with_eot`. Text with characters outside
  the vocabulary is an error.
- "bpe": byte-level BPE (GPT-2's pre-tokenizer, no prefix space) trained with Hugging Face's
  `tokenizers` library; `<|endoftext|>` is always id 0, and any UTF-8 text encodes. Training is
  deterministic: the same texts give the same file.

Both turn a literal `<|endoftext|>` in the text into the end-of-text id (when they have one), and
decode it back to the same string, so callers can cut generated text at it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from genlab.data.text import EOT
from genlab.errors import ConfigError, DataError, RunError, reason_of
from genlab.fsutil import fsync_dir

KINDS = ("char", "bpe")
MIN_BPE_VOCAB = 260  # 256 byte tokens + <|endoftext|> + a few merges
_CHUNK_CHARS = 1 << 16  # long texts go to the BPE library in pieces of about this size


class Tokenizer:
    """Text <-> token ids. Subclasses set kind, vocab_size, eot_id and implement the _methods."""

    kind: str  # "char" or "bpe"
    vocab_size: int
    eot_id: int | None  # the id of <|endoftext|>, or None when the vocabulary has none

    def encode(self, text: str) -> list[int]:
        """The token ids of `text`.

        ids = tok.encode("Once upon a time")
        """
        return self._encode_many([text])[0].tolist()

    def decode(self, ids) -> str:
        """The text of token ids (a list, array or tensor); <|endoftext|> is kept as that string.

        text = tok.decode(ids)
        """
        ids = ids.tolist() if hasattr(ids, "tolist") else ids
        ids = [ids] if isinstance(ids, int) else list(ids)  # a 0-d tensor gives an int
        if ids and (min(ids) < 0 or max(ids) >= self.vocab_size):
            bad = next(i for i in ids if not 0 <= i < self.vocab_size)
            raise DataError(
                f"token id {bad} is outside this tokenizer's vocabulary (0..{self.vocab_size - 1});"
                " decode with the tokenizer of the run that made the ids"
            )
        return self._decode(ids)

    def encode_documents(self, docs: list[str]) -> torch.Tensor:
        """All documents' tokens in one 1-D int64 tensor, each followed by eot_id if there is one.

        data = tok.encode_documents(ts.train)  # GPT-2 style: story, eot, story, eot, ...
        """
        parts = self._encode_many(docs)
        if self.eot_id is not None:
            eot = np.array([self.eot_id], dtype=np.int64)
            parts = [a for p in parts for a in (p, eot)]
        if not parts:
            return torch.zeros(0, dtype=torch.int64)
        return torch.from_numpy(np.concatenate(parts).astype(np.int64, copy=False))

    def save(self, path: Path) -> None:
        """Write the tokenizer to one JSON file, atomically (a reader sees old or new, whole).

        tok.save(run_dir / "tokenizer.json")
        """
        path = Path(path)
        data = json.dumps(self._state(), ensure_ascii=False).encode("utf-8")
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)  # after os.replace this name no longer exists
        fsync_dir(path.parent)

    # subclasses
    def _encode_many(self, texts: list[str]) -> list[np.ndarray]:
        raise NotImplementedError

    def _decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    def _state(self) -> dict:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, eot_id={self.eot_id})"


class CharTokenizer(Tokenizer):
    """One id per character: the sorted characters given, then <|endoftext|> if `with_eot`.

    tok = CharTokenizer(sorted(set(text)), with_eot=True)
    """

    kind = "char"

    def __init__(self, chars: list[str], with_eot: bool = False):
        if not chars or any(len(c) != 1 for c in chars) or list(chars) != sorted(set(chars)):
            raise ValueError("chars must be distinct single characters in sorted order")
        self.chars = list(chars)
        self.eot_id = len(self.chars) if with_eot else None
        self.vocab_size = len(self.chars) + int(with_eot)
        self._itos = self.chars + ([EOT] if with_eot else [])
        self._codepoints = np.array([ord(c) for c in self.chars], dtype=np.uint32)  # sorted

    def _encode_many(self, texts: list[str]) -> list[np.ndarray]:
        return [self._encode_one(t) for t in texts]

    def _encode_one(self, text: str) -> np.ndarray:
        if self.eot_id is not None and EOT in text:
            eot = np.array([self.eot_id], dtype=np.int64)
            pieces = [self._encode_chars(p) for p in text.split(EOT)]
            return np.concatenate([a for p in pieces for a in (p, eot)][:-1])
        return self._encode_chars(text)

    def _encode_chars(self, text: str) -> np.ndarray:
        # Code points by the array (UTF-32), then each one's rank among the vocabulary's sorted
        # code points: 2 MB of text in tens of milliseconds.
        cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        ids = np.searchsorted(self._codepoints, cps)
        ids = np.minimum(ids, len(self._codepoints) - 1)
        unknown = self._codepoints[ids] != cps
        if unknown.any():
            chars = [chr(c) for c in np.unique(cps[unknown])]
            shown = ", ".join(repr(c) for c in chars[:10]) + (", ..." if len(chars) > 10 else "")
            raise DataError(
                f"{len(chars)} character(s) not in the character vocabulary ({shown}); use "
                "characters from the training text, or train with data.tokenizer=bpe, whose "
                "byte-level vocabulary covers any text"
            )
        return ids.astype(np.int64)

    def _decode(self, ids: list[int]) -> str:
        return "".join(map(self._itos.__getitem__, ids))

    def _state(self) -> dict:
        return {"genlab_tokenizer": "char", "chars": self.chars, "eot": self.eot_id is not None}


class BPETokenizer(Tokenizer):
    """Byte-level BPE around a `tokenizers.Tokenizer`; build one with build_tokenizer("bpe", ...).

    tok = BPETokenizer(library_tokenizer)
    """

    kind = "bpe"

    def __init__(self, tokenizer):
        self._tok = tokenizer
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        self.eot_id = tokenizer.token_to_id(EOT)
        if self.eot_id is None:
            raise ValueError(f"a genlab BPE tokenizer has the special token {EOT}")

    def _encode_many(self, texts: list[str]) -> list[np.ndarray]:
        # Long texts are cut into pieces the library encodes in parallel, with the same ids.
        chunks = [_chunks(t) for t in texts]
        flat = [c for cs in chunks for c in cs]
        batch = getattr(self._tok, "encode_batch_fast", self._tok.encode_batch)
        encodings = iter(batch(flat, add_special_tokens=False))
        out = []
        for cs in chunks:
            ids: list[int] = []
            for _ in cs:
                ids.extend(next(encodings).ids)
            out.append(np.array(ids, dtype=np.int64))
        return out

    def _decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=False)

    def _state(self) -> dict:
        return {"genlab_tokenizer": "bpe", "tokenizer": json.loads(self._tok.to_str())}


def build_tokenizer(
    kind: str, texts: list[str], vocab_size: int = 4096, with_eot: bool = False
) -> Tokenizer:
    """A tokenizer of `kind` ("char" or "bpe") built from `texts`.

    tok = build_tokenizer("char", ts.train + ts.val, with_eot=len(ts.train) > 1)

    "char" takes every character of `texts` (pass train and val, as nanoGPT does) and
    `with_eot`; "bpe" is trained on `texts` up to `vocab_size` ids (fewer when the texts run out
    of merges) and always has <|endoftext|>.
    """
    if kind == "char":
        chars = sorted(set().union(*texts))
        if not chars:
            raise DataError("no characters to build a vocabulary from; give some text")
        return CharTokenizer(chars, with_eot=with_eot)
    if kind == "bpe":
        if not isinstance(vocab_size, int) or vocab_size < MIN_BPE_VOCAB:
            raise ConfigError(
                f"BPE vocab_size {vocab_size!r} is too small; use at least {MIN_BPE_VOCAB}"
            )
        return BPETokenizer(_train_bpe(texts, vocab_size))
    raise ConfigError(f"unknown tokenizer {kind!r}; use data.tokenizer=char or data.tokenizer=bpe")


def load_tokenizer(path: Path) -> Tokenizer:
    """Read a tokenizer written by Tokenizer.save.

    tok = load_tokenizer(run_dir / "tokenizer.json")
    """
    path = Path(path)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        kind = state["genlab_tokenizer"]
    except OSError as e:
        raise RunError(
            f"{path}: cannot read the tokenizer ({e.strerror or e}); "
            "give a run directory that has its tokenizer file"
        ) from None
    except (ValueError, KeyError, TypeError) as e:  # not UTF-8, not JSON, not ours
        raise RunError(f"{path}: not a genlab tokenizer file ({reason_of(e)}); {_RESTORE}") from None
    try:
        if kind == "char":
            return CharTokenizer(state["chars"], with_eot=bool(state["eot"]))
        if kind == "bpe":
            inner = state["tokenizer"]
            inner = inner if isinstance(inner, str) else json.dumps(inner)
            return BPETokenizer(_library().Tokenizer.from_str(inner))
    except DataError:
        raise
    except Exception as e:  # the tokenizers library raises plain Exception on a bad file
        raise RunError(f"{path}: damaged {kind} tokenizer ({reason_of(e)}); {_RESTORE}") from None
    raise RunError(
        f"{path}: unknown tokenizer kind {kind!r}; this genlab reads {' and '.join(KINDS)}"
    )


_RESTORE = "restore the file from the run, or train again"


# ---- BPE -----------------------------------------------------------------------------------


def _library():
    try:
        import tokenizers
    except ImportError:
        raise DataError(
            "the BPE tokenizer needs the tokenizers package; pip install tokenizers"
        ) from None
    return tokenizers


def _train_bpe(texts: list[str], vocab_size: int):
    lib = _library()
    tok = lib.Tokenizer(lib.models.BPE())
    tok.pre_tokenizer = lib.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = lib.decoders.ByteLevel()
    trainer = lib.trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],  # id 0
        initial_alphabet=lib.pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: any text
        show_progress=False,
    )
    # Pieces, not whole texts: the library trains on them in parallel, to the same merges.
    tok.train_from_iterator((c for t in texts for c in _chunks(t)), trainer=trainer)
    return tok


def _chunks(text: str, size: int | None = None) -> list[str]:
    """`text` cut into pieces of about `size` characters, each but the last ending with "\\n".

    A cut falls only after a newline that has a printable ASCII character on each side, e.g.
    "end.\\n|Next". GPT-2's pre-tokenizer puts such a newline in a pre-token of its own (the
    whitespace patterns stop at the non-space on either side, and " ?" takes only a space), and
    BPE never merges across pre-tokens, so the pieces give the same ids as the whole text.
    (A newline after a space is no place to cut: " \\n" at the end of a text is one pre-token.)
    """
    size = size or _CHUNK_CHARS
    out, start = [], 0
    while len(text) - start > 2 * size:
        cut = text.find("\n", start + size)
        while cut != -1 and not (_plain(text, cut - 1) and _plain(text, cut + 1)):
            cut = text.find("\n", cut + 1)
        if cut == -1:
            break
        out.append(text[start : cut + 1])
        start = cut + 1
    out.append(text[start:])
    return out


def _plain(text: str, i: int) -> bool:
    """A printable ASCII character other than the space at text[i]."""
    return 0 <= i < len(text) and text[i].isascii() and text[i].isprintable() and text[i] != " "



__all__ = [
    "BPETokenizer",
    "CharTokenizer",
    "Tokenizer",
    "build_tokenizer",
    "load_tokenizer",
]
