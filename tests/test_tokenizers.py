"""Tokenizers: round trips, end-of-text per document, unknown characters, files, determinism."""

import json

import pytest
import torch

from genlab.data import tokenizers as tk
from genlab.data.text import EOT, load_text
from genlab.data.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    build_tokenizer,
    load_tokenizer,
)
from genlab.errors import ConfigError, DataError, RunError

UNICODE = "naïve café, Ærøskøbing 🎉🙂 日本語 — «quotes»\ttab\r\n  spaces \x00 end\n"


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    """About 100 KB of English from Python's own help: every CPython has it."""
    ts = load_text("pydoc", progress=False)
    return ts.train[:40]


@pytest.fixture(scope="module")
def bpe(corpus) -> BPETokenizer:
    return build_tokenizer("bpe", corpus, vocab_size=512)


# ---- characters ----------------------------------------------------------------------------


def test_char_round_trip_and_vocabulary():
    text = "To be, or not to be: that is the question.\nÆsop 🙂\n"
    tok = build_tokenizer("char", [text])
    assert tok.kind == "char" and tok.eot_id is None
    assert tok.chars == sorted(set(text)) and tok.vocab_size == len(set(text))
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode("To") == [tok.chars.index("T"), tok.chars.index("o")]


def test_char_end_of_text_is_the_last_id_and_decodes_to_its_string():
    tok = build_tokenizer("char", ["ab", "ba"], with_eot=True)
    assert tok.vocab_size == 3 and tok.eot_id == 2
    assert tok.decode([0, 2, 1]) == f"a{EOT}b"
    assert tok.encode(f"a{EOT}b") == [0, 2, 1]


def test_char_unknown_characters_are_named():
    tok = build_tokenizer("char", ["hello world"])
    with pytest.raises(DataError, match=r"2 character\(s\).*'X', '🙂'.*data\.tokenizer=bpe"):
        tok.encode("hello X world 🙂 X")


def test_char_on_tiny_shakespeare(shared_data, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(shared_data))
    ts = load_text("tinyshakespeare", progress=False)
    tok = build_tokenizer("char", ts.train + ts.val)
    assert tok.vocab_size == 65
    ids = tok.encode_documents(ts.train)
    assert ids.dtype == torch.int64 and ids.shape == (1003854,)
    assert tok.decode(ids[:100]) == ts.train[0][:100]


# ---- documents -----------------------------------------------------------------------------


def test_encode_documents_puts_end_of_text_after_each_document(bpe):
    char = build_tokenizer("char", ["ab", "ba"], with_eot=True)
    assert char.encode_documents(["ab", "ba"]).tolist() == [0, 1, 2, 1, 0, 2]
    plain = build_tokenizer("char", ["ab", "ba"])
    assert plain.encode_documents(["ab", "ba"]).tolist() == [0, 1, 1, 0]

    docs = ["Once upon a time.", "The end.", "Ünïcode 🙂"]
    ids = bpe.encode_documents(docs)
    assert ids.dtype == torch.int64 and ids.ndim == 1
    ends = [i for i, t in enumerate(ids.tolist()) if t == bpe.eot_id]
    lengths = [len(bpe.encode(d)) for d in docs]
    assert ends == [sum(lengths[: k + 1]) + k for k in range(3)]
    assert bpe.decode(ids) == "".join(d + EOT for d in docs)


# ---- byte-level BPE ------------------------------------------------------------------------


def test_bpe_round_trips_any_unicode(bpe):
    assert bpe.kind == "bpe" and bpe.eot_id == 0
    assert bpe.decode(bpe.encode(UNICODE)) == UNICODE
    assert bpe.encode(f"a{EOT}b")[1] == bpe.eot_id
    assert bpe.decode(bpe.encode(f"The end.{EOT}")) == f"The end.{EOT}"


def test_bpe_honours_vocab_size(bpe, corpus):
    assert bpe.vocab_size == 512
    assert max(bpe.encode_documents(corpus).tolist()) < 512
    assert build_tokenizer("bpe", corpus, vocab_size=300).vocab_size == 300


def test_bpe_training_is_deterministic(corpus, tmp_path):
    build_tokenizer("bpe", corpus, vocab_size=400).save(tmp_path / "a.json")
    build_tokenizer("bpe", corpus, vocab_size=400).save(tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_bpe_pieces_give_the_same_ids_and_merges_as_whole_texts(corpus, monkeypatch, tmp_path):
    # Long texts go to the library in pieces; tricky whitespace near the cuts must not matter.
    text = "\n".join(corpus) + "\nend \nA\t\nB\n\nC 's\n'x\n" * 50
    whole = build_tokenizer("bpe", [text], vocab_size=400)
    monkeypatch.setattr(tk, "_CHUNK_CHARS", 64)
    assert len(tk._chunks(text)) > 100
    pieces = build_tokenizer("bpe", [text], vocab_size=400)
    whole.save(tmp_path / "whole.json")
    pieces.save(tmp_path / "pieces.json")
    assert (tmp_path / "whole.json").read_bytes() == (tmp_path / "pieces.json").read_bytes()
    assert pieces.encode(text) == pieces._tok.encode(text).ids


# ---- files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_save_and_load_give_the_same_ids(kind, corpus, tmp_path):
    tok = build_tokenizer(kind, corpus, vocab_size=300, with_eot=True)
    tok.save(tmp_path / "tokenizer.json")
    again = load_tokenizer(tmp_path / "tokenizer.json")
    assert type(again) is type(tok)
    assert (again.kind, again.vocab_size, again.eot_id) == (tok.kind, tok.vocab_size, tok.eot_id)
    text = corpus[-1]
    assert again.encode(text) == tok.encode(text)
    assert torch.equal(again.encode_documents(corpus[:3]), tok.encode_documents(corpus[:3]))
    state = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    assert state["genlab_tokenizer"] == kind
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]  # no temporary left


def test_char_file_format(tmp_path):
    CharTokenizer(["a", "b"], with_eot=True).save(tmp_path / "t.json")
    state = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    assert state == {"genlab_tokenizer": "char", "chars": ["a", "b"], "eot": True}


def test_missing_or_damaged_files_are_run_errors(tmp_path):
    with pytest.raises(RunError, match="cannot read the tokenizer"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(RunError, match="junk.json: not a genlab tokenizer file"):
        load_tokenizer(tmp_path / "junk.json")
    (tmp_path / "kind.json").write_text('{"genlab_tokenizer": "wordpiece"}')
    with pytest.raises(RunError, match="unknown tokenizer kind 'wordpiece'"):
        load_tokenizer(tmp_path / "kind.json")
    (tmp_path / "bpe.json").write_text('{"genlab_tokenizer": "bpe", "tokenizer": {"x": 1}}')
    with pytest.raises(RunError, match="damaged bpe tokenizer"):
        load_tokenizer(tmp_path / "bpe.json")


# ---- bad arguments -------------------------------------------------------------------------


def test_bad_kind_vocab_size_and_ids_are_errors(corpus):
    with pytest.raises(ConfigError, match="unknown tokenizer 'word'"):
        build_tokenizer("word", corpus)
    with pytest.raises(ConfigError, match="use at least 260"):
        build_tokenizer("bpe", corpus, vocab_size=100)
    with pytest.raises(DataError, match="no characters"):
        build_tokenizer("char", [""])
    with pytest.raises(DataError, match="token id 5 is outside"):
        build_tokenizer("char", ["ab"]).decode([0, 5])
