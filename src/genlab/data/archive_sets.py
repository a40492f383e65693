"""Named sets that arrive as an archive whose bytes are not pinned (GitHub's archives of a
tag may change byte for byte): each member is checked instead, against a manifest of
sha256s shipped inside genlab. Today: fsdd, the Free Spoken Digit Dataset.

    folder = fetch("fsdd")      # genlab.data.fetch routes here: CACHE/fsdd/recordings/*.wav

The archive is streamed to a temporary file (mirror folder, mirror URL, then the official
URL); only the members the manifest names are read, never extracted with tarfile's own
functions; a member path that is absolute or holds ".." refuses the whole archive; every
recording is hashed as it is written into a staging folder, which is fsynced and renamed
into place, so the cache holds all of them, checked, or none.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from genlab.data import download
from genlab.data.catalogue import NamedSet, RemoteArchive
from genlab.errors import DataError
from genlab.fsutil import fsync_dir


@functools.lru_cache(maxsize=8)
def _manifest(name: str, a: RemoteArchive) -> dict[str, str]:
    """The manifest shipped in genlab: {"recordings/NAME.wav": sha256}, in its order."""
    path = Path(__file__).resolve().parent / a.manifest
    reinstall = "reinstall genlab (pip install --force-reinstall genlab, or -e . in a clone)"
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(
            f"{name}: the manifest {path} cannot be read ({download.one_line(e)}); {reinstall}"
        ) from None
    entries: dict[str, str] = {}
    for line in text.splitlines():
        digest, _, member = line.partition("  ")
        parts = member.split("/")
        if (
            len(digest) != 64
            or digest.strip("0123456789abcdef")
            or len(parts) != 2
            or any(p in ("", ".", "..") for p in parts)
            or member in entries
        ):
            raise DataError(f"{name}: the manifest {path} is damaged ({line[:80]!r}); {reinstall}")
        entries[member] = digest
    if len(entries) != a.count or len({m.split("/")[0] for m in entries}) != 1:
        raise DataError(
            f"{name}: the manifest {path} is damaged ({len(entries)} entries, expected "
            f"{a.count}); {reinstall}"
        )
    return entries


def archive_complete(s: NamedSet, home: Path) -> bool:
    """Every member the manifest lists is a file under `home`, and their sizes add up to the
    published total (cheap: no hashing; the hashes were checked before they were put there)."""
    total = 0
    for member in _manifest(s.name, s.archive):
        try:
            st = os.stat(home / member)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode):
            return False
        total += st.st_size
    return total == s.archive.total_bytes


def fetch_archive_set(s: NamedSet, home: Path, progress: bool) -> Path:
    """`fetch` for a set that arrives as an archive, into `home` (CACHE/<its folder>), which
    it returns: see the module docstring."""
    a = s.archive
    manifest = _manifest(s.name, a)
    if archive_complete(s, home):
        return home
    top = next(iter(manifest)).split("/")[0]  # "recordings"
    if (home / top).exists():
        download.warn(
            f"{home / top} is incomplete (files missing or of the wrong size); re-fetching it"
        )

    tried: list[str] = []
    sources: list[tuple[str, str]] = []
    mirror = download.mirror_setting()
    if mirror and mirror[0] == "folder":
        folder = Path(mirror[1])
        if not folder.is_dir():
            tried.append(f"mirror folder {folder} (does not exist)")
        elif not (folder / a.path).is_file():
            tried.append(f"mirror folder ({a.path} missing)")
        else:
            sources.append(("mirror folder", str(folder / a.path)))
    if mirror and mirror[0] == "url":
        sources.append(download.mirror_url_source(mirror[1], a.path))
    sources += [download.official_source(u) for u in a.urls]

    created = not home.exists()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise download.unwritable_cache(home, e.strerror or e) from None
    try:
        for label, where in sources:
            error = _install_archive(s, manifest, where, label, home, progress)
            if error is None:
                if progress:
                    print(
                        f"genlab: {s.name}: verified {len(manifest):,} {a.noun} "
                        f"(sha256, against genlab's manifest)",
                        file=sys.stderr,
                        flush=True,
                    )
                return home
            tried.append(f"{label} ({error})")
    finally:
        if created:
            try:
                home.rmdir()  # only when nothing was put there
            except OSError:
                pass
    raise DataError(
        f"cannot fetch {s.name}: no source gave {a.count:,} good {a.noun}; tried "
        f"{'; '.join(tried) or 'nothing'}; set GENLAB_DATA_MIRROR to a folder or URL holding "
        f"{a.path} (a download of {a.urls[0]})"
    )


def _install_archive(
    s: NamedSet, manifest: dict[str, str], where: str, label: str, home: Path, progress: bool
) -> str | None:
    """Fetch the archive at `where`, take the manifest's members out into a temporary folder,
    check them all, rename the folder into place. None on success, else why not (one line)."""
    a = s.archive
    top = next(iter(manifest)).split("/")[0]
    target = home / top
    try:
        fd, archive_name = tempfile.mkstemp(
            dir=home, prefix=f".{Path(a.path).name}.", suffix=".part"
        )
        os.close(fd)
        staging = Path(tempfile.mkdtemp(dir=home, prefix=f".{top}.", suffix=".part"))
    except OSError as e:
        raise download.unwritable_cache(home, e.strerror or e) from None
    archive = Path(archive_name)
    try:
        error = _download_unpinned(a, where, archive, label, progress)
        if error is None:
            error = _extract_checked(a, manifest, archive, staging, where)
        if error is not None:
            return error
        _fsync_files(list(staging.iterdir()))
        os.chmod(staging, 0o755)
        fsync_dir(staging)
        if target.exists() or target.is_symlink():
            if archive_complete(s, home):
                return None  # another fetch finished first: its copy is as good as this one
            old = Path(tempfile.mkdtemp(dir=home, prefix=f".{top}.", suffix=".old"))
            os.replace(target, old / top)
        try:
            os.rename(staging, target)
        except OSError:
            if not archive_complete(s, home):  # not a race lost to another fetch
                raise
        fsync_dir(home)
        return None
    except OSError as e:
        raise download.unwritable_cache(home, download.one_line(e)) from None
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        for old in home.glob(f".{top}.*.old"):
            shutil.rmtree(old, ignore_errors=True)


def _fsync_files(paths: list[Path]) -> None:
    """fsync many small files: in parallel, so that the file system commits them together
    (3,000 recordings one by one take seconds to a minute on a busy disk; this, a fraction)."""

    def one(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(one, paths))


def _download_unpinned(
    a: RemoteArchive, where: str, out_path: Path, label: str, progress: bool
) -> str | None:
    """Stream `where` (URL or local path) into `out_path`; None on success, else why not."""
    if progress:
        print(f"genlab: fetching {a.path} from {where}", file=sys.stderr, flush=True)
    size = 0
    try:
        with open(out_path, "wb") as out, download.open_source(where, None) as src:
            headers = getattr(src, "headers", None)  # an HTTP response; else a local file
            if headers is not None:
                length = headers.get("Content-Length", "")
                total = int(length) if length.isdigit() else a.size
            else:
                total = os.fstat(src.fileno()).st_size
            with download.progress_bar(total, Path(a.path).name, label, progress) as bar:
                while chunk := src.read(download.CHUNK):
                    size += len(chunk)
                    if size > a.max_size:
                        return f"sent more than {a.max_size:,} bytes: not this archive"
                    out.write(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        return None
    except download.DOWNLOAD_ERRORS as e:
        return download.download_error(e)


def _escapes_folder(name: str) -> bool:
    """A member path that could land outside the folder it is taken out into."""
    p = PurePosixPath(name.replace("\\", "/"))
    drive = len(name) > 1 and name[0].isalpha() and name[1] == ":"  # C:... on Windows
    return p.is_absolute() or ".." in p.parts or drive


def _extract_checked(
    a: RemoteArchive,
    manifest: dict[str, str],
    archive: Path,
    staging: Path,
    where: str,
) -> str | None:
    """Write the archive's members that the manifest lists into `staging`, under the
    manifest's names (never the archive's paths: nothing else is written), each checked by
    sha256. None when every listed member is there and right, else why not (one line)."""
    bad: list[str] = []
    good: set[str] = set()
    try:
        with tarfile.open(archive, "r:*") as tar:
            for m in tar:
                if _escapes_folder(m.name):
                    return (
                        f"member {m.name!r} of the archive at {where} has an unsafe path "
                        "(absolute or with ..): refused"
                    )
                if not m.name.startswith(a.prefix):
                    continue
                member = m.name[len(a.prefix) :]
                if member not in manifest:
                    continue  # the rest of the repository: not extracted
                if not m.isreg():
                    return f"{member} is not a plain file in the archive at {where}: refused"
                src = tar.extractfile(m)
                h = hashlib.sha256()
                dest = staging / member.split("/", 1)[1]
                with src, open(dest, "wb") as out:  # fsynced once all are checked
                    while chunk := src.read(download.CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                if h.hexdigest() != manifest[member] or member in bad:
                    good.discard(member)
                    if member not in bad:
                        bad.append(member)
                else:
                    good.add(member)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        return f"not a readable tar archive at {where} ({download.one_line(e)})"
    if bad:
        more = f" (and {len(bad) - 1:,} more)" if len(bad) > 1 else ""
        return (
            f"{bad[0]}{more} does not match its published sha256: tampered or corrupt copy "
            f"at {where}"
        )
    missing = [m for m in manifest if m not in good]
    if missing:
        more = f" (and {len(missing) - 1:,} more)" if len(missing) > 1 else ""
        return f"{missing[0]}{more} missing from the archive at {where}"
    return None
