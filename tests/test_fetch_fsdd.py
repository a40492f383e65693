"""The named set fsdd: GitHub's archive of a tag (bytes not pinned), each recording checked
against the manifest shipped in genlab, through a folder mirror, a loopback HTTP server and
the CLI. No test reaches the internet: the official URL points at a closed local port.
"""

import dataclasses
import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import dead_url

from genlab.data import archive_sets as A
from genlab.data import catalogue as C
from genlab.data import download as D
from genlab.data import fetch as F
from genlab.errors import DataError

ARCHIVE = "fsdd/free-spoken-digit-dataset-v1.0.10.tar.gz"
PREFIX = "free-spoken-digit-dataset-1.0.10/"
OFFICIAL_PATH = "Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz"
TAMPERED = "recordings/3_jackson_7.wav"
MANIFEST = Path(F.__file__).resolve().parent / "manifests" / "fsdd-v1.0.10.sha256"


def _point_official(monkeypatch, *urls: str) -> None:
    s = C.NAMED_SETS["fsdd"]
    archive = dataclasses.replace(s.archives[0], urls=urls)
    monkeypatch.setitem(C.NAMED_SETS, "fsdd", dataclasses.replace(s, archives=(archive,)))


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    _point_official(monkeypatch, dead_url() + OFFICIAL_PATH)


@pytest.fixture
def server(file_server):
    """A loopback HTTP server over tmp_path/served (conftest's file_server)."""
    return file_server


def _manifest() -> dict[str, str]:
    return {m: d for d, m in (line.split("  ") for line in MANIFEST.read_text().splitlines())}


def _files_under(folder: Path) -> list[str]:
    """Every file below folder, hidden temporary files included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _check_recordings(home: Path) -> None:
    """home/recordings holds exactly the 3,000 recordings, each with its published sha256."""
    manifest = _manifest()
    assert len(manifest) == 3000
    assert _files_under(home) == sorted(manifest)
    for member, digest in manifest.items():
        assert hashlib.sha256((home / member).read_bytes()).hexdigest() == digest, member


def _no_network(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the network was touched")

    monkeypatch.setattr(D, "open_source", refuse)
    monkeypatch.setattr(D.urllib.request, "urlopen", refuse)


@pytest.fixture(scope="module")
def members(shared_data):
    """The real archive's members, in order: [(TarInfo, bytes or None)]."""
    out = []
    with tarfile.open(shared_data / ARCHIVE) as tar:
        for m in tar:
            out.append((m, tar.extractfile(m).read() if m.isreg() else None))
    return out


def _pack(path: Path, entries, gz: bool = True) -> Path:
    """A tar.gz of [(TarInfo, bytes or None)] (gzip level 1: quick), or a plain tar."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz", compresslevel=1) if gz else tarfile.open(path, "w") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _tampered(members, name: str = TAMPERED):
    """The real members with one byte of one recording's samples changed (same size)."""
    out = []
    for info, data in members:
        if info.name == PREFIX + name:
            changed = bytearray(data)
            changed[len(changed) // 2] ^= 0x01  # a sample, not the header: still a valid WAV
            data = bytes(changed)
        out.append((info, data))
    return out


@pytest.fixture(scope="module")
def tampered_mirror(members, tmp_path_factory) -> Path:
    """A mirror folder whose fsdd archive has one recording altered."""
    root = tmp_path_factory.mktemp("tampered")
    _pack(root / ARCHIVE, _tampered(members))
    return root


def test_the_shipped_manifest_is_the_published_one(shared_data):
    assert MANIFEST.read_bytes() == (shared_data / "fsdd" / "recordings.sha256").read_bytes()
    s = C.NAMED_SETS["fsdd"]
    assert s.kind == "audio" and s.files == () and "CC BY-SA 4.0" in s.licence
    assert C._FSDD_ARCHIVE.urls == (
        "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz",
    )
    assert C._FSDD_ARCHIVE.path == ARCHIVE and C._FSDD_ARCHIVE.prefix == PREFIX
    assert len(s.archives) == 1 and s.archives[0].path == ARCHIVE
    assert len(A._manifest("fsdd", C._FSDD_ARCHIVE)) == C._FSDD_ARCHIVE.count == 3000
    with tarfile.open(shared_data / ARCHIVE) as tar:
        sizes = sum(m.size for m in tar if m.name.startswith(PREFIX + "recordings/"))
    assert sizes == C._FSDD_ARCHIVE.total_bytes
    assert F.locate("fsdd") == ("download", None)
    rows = {r["name"]: r for r in F.list_sets()}
    assert rows["fsdd"]["kind"] == "audio" and rows["fsdd"]["found"] == "download"


def test_folder_mirror_verifies_all_3000_into_the_cache(shared_data, monkeypatch, capsys):
    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(shared_data))
    home = F.fetch("fsdd")
    assert home == F.cache_dir() / "fsdd"
    _check_recordings(home)  # nothing else: no README, no temporary archive or folder
    assert _files_under(F.cache_dir()) == sorted(f"fsdd/{m}" for m in _manifest())
    assert F.locate("fsdd") == ("cache", home)
    rows = {r["name"]: r for r in F.list_sets()}
    assert rows["fsdd"]["found"] == "cache" and rows["fsdd"]["path"] == str(home)
    err = capsys.readouterr().err
    assert str(shared_data / ARCHIVE) in err and "verified 3,000 recordings" in err

    # a complete cache is used as it is: no source, no network, the folder untouched
    monkeypatch.delenv("GENLAB_DATA_MIRROR")
    _no_network(monkeypatch)
    before = (home / "recordings").stat().st_ino, (home / "recordings").stat().st_mtime_ns
    assert F.fetch("fsdd") == home
    assert F.locate("fsdd") == ("cache", home)
    after = (home / "recordings").stat().st_ino, (home / "recordings").stat().st_mtime_ns
    assert after == before


def test_http_mirror_and_the_official_url_through_a_loopback_server(
    server, shared_data, monkeypatch
):
    (server.root / "fsdd").mkdir()
    (server.root / ARCHIVE).symlink_to(shared_data / ARCHIVE)
    monkeypatch.setenv("GENLAB_DATA_MIRROR", server.url.rstrip("/"))
    home = F.fetch("fsdd", progress=False)
    assert server.requests == [ARCHIVE]
    _check_recordings(home)

    # the second call: the cache is complete, so no request at all
    assert F.fetch("fsdd", progress=False) == home
    assert server.requests == [ARCHIVE]

    # no mirror, the official URL (GitHub's archive path) on the loopback server
    (server.root / OFFICIAL_PATH).parent.mkdir(parents=True)
    (server.root / OFFICIAL_PATH).symlink_to(shared_data / ARCHIVE)
    monkeypatch.delenv("GENLAB_DATA_MIRROR")
    monkeypatch.setenv("GENLAB_CACHE", str(home.parent / "second"))
    _point_official(monkeypatch, dead_url() + OFFICIAL_PATH, server.url + OFFICIAL_PATH)
    second = F.fetch("fsdd", progress=False)
    assert second == home.parent / "second" / "fsdd"
    assert server.requests == [ARCHIVE, OFFICIAL_PATH]
    _check_recordings(second)


def test_a_tampered_recording_is_named_and_nothing_is_kept(tampered_mirror, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(tampered_mirror))
    with pytest.raises(DataError) as e:
        F.fetch("fsdd", progress=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"{TAMPERED} does not match its published sha256" in msg
    assert str(tampered_mirror / ARCHIVE) in msg
    assert "127.0.0.1" in msg  # the official URL was tried too, and is named
    assert _files_under(F.cache_dir()) == [] and not (F.cache_dir() / "fsdd").exists()


def test_the_cli_refuses_a_tampered_mirror_with_exit_2(tampered_mirror, tmp_path):
    """`genlab data fetch fsdd` as a user runs it; a proxy on a closed port stands in for no
    internet, so the official URL fails at once instead of reaching GitHub."""
    cache = tmp_path / "cache"
    dead = dead_url().rstrip("/")
    env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
    env.update(
        GENLAB_CACHE=str(cache),
        GENLAB_DATA_MIRROR=str(tampered_mirror),
        http_proxy=dead,
        https_proxy=dead,
        HTTP_PROXY=dead,
        HTTPS_PROXY=dead,
        OMP_NUM_THREADS="1",
    )
    r = subprocess.run(
        [sys.executable, "-m", "genlab", "data", "fetch", "fsdd"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("genlab: error:")]
    assert len(errors) == 1 and r.stderr.rstrip("\n").endswith(errors[0])
    assert f"{TAMPERED} does not match its published sha256" in errors[0]
    assert "github.com" in errors[0]
    assert "Traceback" not in r.stderr
    assert not (cache / "fsdd" / "recordings").exists()
    assert not cache.exists() or _files_under(cache) == []


def test_a_missing_recording_is_named(members, tmp_path, monkeypatch):
    gone = PREFIX + "recordings/9_yweweler_49.wav"
    mirror = tmp_path / "mirror"
    _pack(mirror / ARCHIVE, [(i, d) for i, d in members if i.name != gone], gz=False)
    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(mirror))
    with pytest.raises(DataError, match="recordings/9_yweweler_49.wav missing from the archive"):
        F.fetch("fsdd", progress=False)
    assert _files_under(F.cache_dir()) == []


@pytest.mark.parametrize(
    "evil",
    [
        "../evil.wav",
        PREFIX + "recordings/../../../evil.wav",
        PREFIX + "recordings/../../outside/0_george_0.wav",
        "ABSOLUTE",
    ],
)
def test_a_member_path_with_dotdot_or_absolute_is_never_written(
    evil, members, tmp_path, monkeypatch
):
    cache = tmp_path / "deep" / "cache"
    monkeypatch.setenv("GENLAB_CACHE", str(cache))
    if evil == "ABSOLUTE":
        evil = str(tmp_path / "absolute_evil.wav")
    real = members[:40]  # some real recordings first, then the bad one
    mirror = tmp_path / "mirror"
    _pack(mirror / ARCHIVE, [*real, _file(evil, b"RIFF evil bytes")])
    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(mirror))
    with pytest.raises(DataError, match="unsafe path") as e:
        F.fetch("fsdd", progress=False)
    assert "\n" not in str(e.value) and repr(evil) in str(e.value)
    written = [p for p in tmp_path.rglob("*") if "evil" in p.name or p.name == "outside"]
    assert written == []
    assert not cache.exists() or _files_under(cache) == []


def test_a_link_member_is_refused(members, tmp_path, monkeypatch):
    link = tarfile.TarInfo(PREFIX + "recordings/0_george_0.wav")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    mirror = tmp_path / "mirror"
    _pack(mirror / ARCHIVE, [(link, None)])
    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(mirror))
    with pytest.raises(DataError, match="recordings/0_george_0.wav is not a plain file"):
        F.fetch("fsdd", progress=False)
    assert _files_under(F.cache_dir()) == []


def test_not_an_archive_and_no_source_name_each_source(server, tmp_path, monkeypatch):
    (server.root / "fsdd").mkdir()
    (server.root / ARCHIVE).write_bytes(b"<html>not a tar.gz</html>")
    monkeypatch.setenv("GENLAB_DATA_MIRROR", server.url)
    with pytest.raises(DataError) as e:
        F.fetch("fsdd", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("cannot fetch fsdd")
    assert f"mirror {server.url}" in msg and "not a readable tar archive" in msg
    assert "127.0.0.1" in msg.split("not a readable tar archive", 1)[1]  # then the official URL
    assert "GENLAB_DATA_MIRROR" in msg

    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=f"mirror folder \\({ARCHIVE} missing\\)"):
        F.fetch("fsdd", progress=False)
    assert _files_under(F.cache_dir()) == []


def test_an_incomplete_cache_is_reported_and_replaced(shared_data, monkeypatch, capsys):
    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(shared_data))
    home = F.fetch("fsdd", progress=False)
    victim = home / "recordings/0_george_0.wav"
    victim.write_bytes(victim.read_bytes()[:-2])  # cut short: the sizes no longer add up
    (home / "recordings/5_lucas_5.wav").unlink()
    assert F.locate("fsdd") == ("download", None)

    monkeypatch.delenv("GENLAB_DATA_MIRROR")
    with pytest.raises(DataError, match="cannot fetch fsdd"):  # nowhere to fetch it from
        F.fetch("fsdd", progress=False)
    assert "is incomplete" in capsys.readouterr().err
    assert len(_files_under(home)) == 2999  # a failed fetch leaves the old folder as it was

    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(shared_data))
    assert F.fetch("fsdd", progress=False) == home
    _check_recordings(home)
    assert F.locate("fsdd") == ("cache", home)
