"""Text corpora: the named sets' documents and splits, user files and folders, bad input."""

import hashlib
from pathlib import Path

import pytest

from genlab.data.fetch import cache_dir
from genlab.data.text import EOT, gutenberg_body, load_text, text_set_names
from genlab.errors import DataError


@pytest.fixture
def mirror(shared_data, monkeypatch) -> Path:
    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(shared_data))
    return shared_data


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


# ---- the named sets ------------------------------------------------------------------------


def test_tinyshakespeare_is_split_by_characters_as_nanogpt_does(mirror):
    ts = load_text("tinyshakespeare", progress=False)
    raw = (mirror / "tinyshakespeare/input.txt").read_text(encoding="utf-8")
    assert ts.separator == "none"
    assert len(ts.train) == len(ts.val) == 1
    assert len(ts.train[0]) == int(1115394 * 0.9) == 1003854
    assert ts.train[0] + ts.val[0] == raw  # nothing stripped at the cut or the ends
    assert ts.source.startswith("mirror ")


def test_tinystories_is_split_into_whole_stories(mirror):
    ts = load_text("tinystories-2mb", progress=False)
    raw = (mirror / "stories/tinystories_train_first2MiB.txt").read_text(encoding="utf-8")
    assert ts.separator == "eot"
    assert len(ts.train) + len(ts.val) == 2316 == raw.count(EOT)
    assert len(ts.val) == 231  # the last 10% of the stories, whole
    fragment = raw.rsplit(EOT, 1)[1].strip()  # the story cut off at 2 MiB
    assert ts.val[-1] != fragment and fragment[:200] not in ts.text("val")
    docs = ts.train + ts.val
    assert all(d == d.strip() and d and EOT not in d for d in docs)
    assert docs[0].startswith("One day, a little girl named Lily found a needle")


def test_grimms_is_embedded_without_bom_crlf_or_gutenberg_header_and_footer():
    # no mirror and an empty cache (conftest): the tales ship inside genlab
    ts = load_text("grimms", progress=False)
    assert ts.source == "embedded (genlab/data/corpora/grimms.txt.gz)"
    assert ts.separator == "none" and len(ts.train) == len(ts.val) == 1
    text = ts.train[0] + ts.val[0]
    assert len(text) == 520_867 and len(ts.train[0]) == int(520_867 * 0.9)
    assert "\ufeff" not in text and "\r" not in text
    assert "*** START OF" not in text and "*** END OF" not in text
    assert not ts.train[0].startswith("The Project Gutenberg EBook")
    assert "Project Gutenberg Literary Archive Foundation" not in text  # the licence footer
    assert "HANSEL AND GRETEL" in text
    assert load_text("grimms", progress=False) == ts
    assert not any(cache_dir().rglob("*"))  # nothing fetched, nothing written


def test_embedded_grimms_is_the_gutenberg_body_of_pg2591(shared_data):
    """Provenance: the shipped text is what the loader makes of Project Gutenberg's file."""
    source = shared_data / "stories" / "grimms_fairy_tales_pg2591.txt"
    raw = source.read_bytes()
    sums = dict(
        line.split()[::-1] for line in (shared_data / "SHA256SUMS").read_text().splitlines()
    )
    assert hashlib.sha256(raw).hexdigest() == sums["./stories/grimms_fairy_tales_pg2591.txt"]
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw  # the eBook as published
    ts = load_text("grimms", progress=False)
    assert ts.train[0] + ts.val[0] == gutenberg_body(source)


def test_gutenberg_body_needs_the_start_and_end_lines(tmp_path):
    book = _write(
        tmp_path / "book.txt", "\ufeffheader\r\n*** START OF X ***\r\n Tale.\r\n*** END OF X\r\n"
    )
    assert gutenberg_body(book) == "Tale."
    _write(book, "no markers here")
    with pytest.raises(DataError, match="no Project Gutenberg START/END lines"):
        gutenberg_body(book)


def test_pydoc_is_embedded_and_deterministic():
    ts = load_text("pydoc", progress=False)
    assert ts.source == "embedded (Python's pydoc_data.topics)"
    assert len(ts.text("train")) + len(ts.text("val")) > 400_000
    assert len(ts.train) > 50 and len(ts.val) >= 1
    assert load_text("pydoc", progress=False) == ts
    assert "pydoc" in text_set_names() and "tinyshakespeare" in text_set_names()


def test_an_image_set_is_not_text():
    with pytest.raises(DataError, match="mnist is not a text data set"):
        load_text("mnist", progress=False)


# ---- your own files ------------------------------------------------------------------------


def test_folder_gives_one_document_per_text_file_in_path_order(tmp_path):
    _write(tmp_path / "b.txt", "second\n")
    _write(tmp_path / "a" / "z.md", "  first  \n")
    _write(tmp_path / "c.txt", "third")
    _write(tmp_path / "notes.rst", "not text for us")
    _write(tmp_path / ".git" / "x.txt", "hidden")
    ts = load_text(str(tmp_path), progress=False)
    assert ts.train == ["first", "second"] and ts.val == ["third"]
    assert ts.source == f"folder {tmp_path} (3 files)"
    assert ts.text("train") == "first\n\nsecond" and ts.text("test") == "third"


def test_documents_split_at_the_last_tenth_whole(tmp_path):
    _write(tmp_path / "s.txt", EOT.join(f"story {i}" for i in range(25)))
    ts = load_text(str(tmp_path / "s.txt"), progress=False)
    assert ts.train == [f"story {i}" for i in range(23)]
    assert ts.val == ["story 23", "story 24"]


def test_two_documents_leave_one_to_train_on(tmp_path):
    ts = load_text(str(_write(tmp_path / "s.txt", f"one{EOT}two")), progress=False)
    assert (ts.train, ts.val) == (["one"], ["two"])


TEXT = f"a1\n\nb1{EOT}\n c1\n \n\n\nd1\n"


@pytest.mark.parametrize(
    "separator, resolved, docs",
    [
        ("auto", "eot", ["a1\n\nb1", "c1\n \n\n\nd1"]),
        ("eot", "eot", ["a1\n\nb1", "c1\n \n\n\nd1"]),
        ("blank", "blank", ["a1", f"b1{EOT}\n c1", "d1"]),
        ("none", "none", [TEXT]),
    ],
)
def test_separator_modes(tmp_path, separator, resolved, docs):
    ts = load_text(str(_write(tmp_path / "t.txt", TEXT)), separator=separator, progress=False)
    assert ts.separator == resolved
    if len(docs) == 1:  # one document: kept as read, cut by characters
        assert ts.train[0] + ts.val[0] == docs[0]
    else:
        assert ts.train + ts.val == docs


def test_auto_without_end_of_text_is_one_document(tmp_path):
    ts = load_text(str(_write(tmp_path / "t.txt", "para one\n\npara two\n")), progress=False)
    assert ts.separator == "none" and len(ts.train) == len(ts.val) == 1


def test_a_user_file_keeps_its_last_unfinished_document(tmp_path):
    path = _write(tmp_path / "t.txt", f"s1{EOT}s2{EOT}s3 with no end")
    ts = load_text(str(path), progress=False)
    assert ts.train + ts.val == ["s1", "s2", "s3 with no end"]


def test_bom_and_crlf_and_lone_cr_become_plain_newlines(tmp_path):
    path = _write(tmp_path / "w.txt", b"\xef\xbb\xbfline one\r\nline two\rline three\r\n")
    ts = load_text(str(path), progress=False)
    assert ts.train[0] + ts.val[0] == "line one\nline two\nline three\n"
    assert ts.source == f"file {path}"


def test_invalid_utf8_names_the_file_and_the_byte_offset(tmp_path):
    _write(tmp_path / "ok.txt", "fine")
    _write(tmp_path / "bad.txt", b"caf\xc3\xa9 na\xefve")  # latin-1 i-diaeresis at offset 8
    with pytest.raises(DataError, match=r"bad\.txt: not valid UTF-8 .*byte offset 8.*iconv"):
        load_text(str(tmp_path), progress=False)


@pytest.mark.parametrize("content", ["", "  \n\n\t \r\n", EOT + "\n" + EOT])
def test_an_empty_corpus_is_an_error(tmp_path, content):
    path = _write(tmp_path / "empty.txt", content)
    with pytest.raises(DataError, match="no text in file"):
        load_text(str(path), progress=False)


def test_a_missing_path_is_an_error(tmp_path):
    with pytest.raises(DataError, match="nope: no such file or folder; give a text file"):
        load_text(str(tmp_path / "nope"), progress=False)


def test_a_folder_without_text_files_is_an_error(tmp_path):
    _write(tmp_path / "image.png", b"\x89PNG")
    with pytest.raises(DataError, match=r"no \.txt or \.md files"):
        load_text(str(tmp_path), progress=False)


def test_unknown_separator_and_split_are_errors(tmp_path):
    path = _write(tmp_path / "t.txt", "some text")
    with pytest.raises(DataError, match="unknown separator 'lines'"):
        load_text(str(path), separator="lines", progress=False)
    with pytest.raises(DataError, match="unknown split 'dev'"):
        load_text(str(path), progress=False).text("dev")
