"""Named sets that arrive as archives whose bytes are not pinned (GitHub's archive of a tag,
an npm package): each member genlab keeps is checked instead, against a manifest of sha256s
shipped inside genlab. Today: fsdd (the Free Spoken Digit Dataset, one archive) and emoji
(two npm packages: Google's and Twitter's images, and emoji.json).

    folder = fetch("fsdd")      # genlab.data.fetch routes here: CACHE/fsdd/recordings/*.wav
    folder = fetch("emoji")     # CACHE/emoji/emoji.json, google/*.png, twitter/*.png

Sources, in order, each filling the whole set: the mirror folder, the mirror URL (each
archive at its path in the mirror layout), then the official copy: each archive from its
official URLs or, where the publisher serves the files one by one (jsDelivr over an npm
package), file by file in parallel threads. An archive is streamed to a temporary file and
only the members the manifest names are read, never extracted with tarfile's own functions;
a member path that is absolute or holds ".." refuses the whole archive. Every file is hashed
as it is written into a staging folder beside the set's folder (CACHE/.NAME.*.part), which
is fsynced and renamed into place, so the cache holds all of them, checked, or none; a failed
fetch leaves the folder that was there as it was.
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
import urllib.parse
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from genlab.data import download
from genlab.data.catalogue import NamedSet, RemoteArchive
from genlab.errors import DataError
from genlab.fsutil import fsync_dir

# one way to fill an archive's part of the set: (label for messages, URL or path, by_file),
# by_file meaning `where` is a base URL serving the archive's files one by one
_Way = tuple[str, str, bool]


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
        if (
            len(digest) != 64
            or digest.strip("0123456789abcdef")
            or any(p in ("", ".", "..") for p in member.split("/"))
            or "\\" in member
            or member in entries
            or _archive_path(a, member) is None
        ):
            raise DataError(f"{name}: the manifest {path} is damaged ({line[:80]!r}); {reinstall}")
        entries[member] = digest
    if len(entries) != a.count:
        raise DataError(
            f"{name}: the manifest {path} is damaged ({len(entries)} entries, expected "
            f"{a.count}); {reinstall}"
        )
    return entries


def _manifest_name(a: RemoteArchive, rest: str) -> str | None:
    """The manifest's name for the archive path `rest` (after the prefix), or None."""
    for inside, named in a.members:
        if rest.startswith(inside):
            return named + rest[len(inside) :]
    return None


def _archive_path(a: RemoteArchive, member: str) -> str | None:
    """The path after the prefix, in the archive (and under `files_url`), of a manifest name."""
    for inside, named in a.members:
        if member.startswith(named):
            return inside + member[len(named) :]
    return None


def archive_complete(s: NamedSet, home: Path) -> bool:
    """Every member the manifests list is a file under `home`, and their sizes add up to the
    published totals (cheap: no hashing; the hashes were checked before they were put there)."""
    for a in s.archives:
        total = 0
        for member in _manifest(s.name, a):
            try:
                st = os.stat(home / member)
            except OSError:
                return False
            if not stat.S_ISREG(st.st_mode):
                return False
            total += st.st_size
        if total != a.total_bytes:
            return False
    return True


def verify_cached(s: NamedSet, home: Path, progress: bool = True) -> int:
    """Hash every file of the set under `home` again; the number checked. DataError (one line)
    naming the first file that is missing or no longer matches its published sha256."""
    members = [(m, d) for a in s.archives for m, d in _manifest(s.name, a).items()]
    for member, digest in tqdm(
        members, desc=f"checking {s.name}", unit=" files", disable=not progress, leave=False
    ):
        try:
            ok = hashlib.sha256((home / member).read_bytes()).hexdigest() == digest
        except OSError:
            ok = False
        if not ok:
            raise DataError(
                f"{s.name}: {home / member} is missing or does not match its published sha256; "
                f"delete {home} and fetch {s.name} again"
            )
    return len(members)


def fetch_archive_set(s: NamedSet, home: Path, progress: bool) -> Path:
    """`fetch` for a set that arrives as archives, into `home` (CACHE/<its folder>), which it
    returns: see the module docstring."""
    manifests = [_manifest(s.name, a) for a in s.archives]
    if archive_complete(s, home):
        return home
    if home.exists():
        download.warn(f"{home} is incomplete (files missing or of the wrong size); re-fetching it")
    count = sum(a.count for a in s.archives)
    noun = s.archives[0].noun
    tried: list[str] = []
    for ways in _sources(s, download.mirror_setting(), tried):
        if _install(s, manifests, ways, home, tried, progress):
            if progress:
                print(
                    f"genlab: {s.name}: verified {count:,} {noun} (sha256, against genlab's "
                    "manifest)",
                    file=sys.stderr,
                    flush=True,
                )
            return home
    official = s.archives[0].urls[:1] or (s.archives[0].files_url,)
    paths = " and ".join(a.path for a in s.archives)
    raise DataError(
        f"cannot fetch {s.name}: no source gave {count:,} good {noun}; tried "
        f"{'; '.join(tried) or 'nothing'}; set GENLAB_DATA_MIRROR to a folder or URL holding "
        f"{paths} (a download of {official[0]})"
    )


def _sources(
    s: NamedSet, mirror: tuple[str, str] | None, tried: list[str]
) -> list[list[list[_Way]]]:
    """The sources in order; each gives, per archive of the set, the ways to try in order. A
    folder mirror that lacks an archive is noted in `tried` and skipped."""
    sources: list[list[list[_Way]]] = []
    if mirror and mirror[0] == "folder":
        folder = Path(mirror[1])
        missing = [a.path for a in s.archives if not (folder / a.path).is_file()]
        if not folder.is_dir():
            tried.append(f"mirror folder {folder} (does not exist)")
        elif missing:
            tried.append(f"mirror folder ({missing[0]} missing)")
        else:
            sources.append([[("mirror folder", str(folder / a.path), False)] for a in s.archives])
    if mirror and mirror[0] == "url":
        sources.append(
            [[(*download.mirror_url_source(mirror[1], a.path), False)] for a in s.archives]
        )
    official = [
        [(*download.official_source(u), False) for u in a.urls]
        + ([(*download.official_source(a.files_url), True)] if a.files_url else [])
        for a in s.archives
    ]
    if all(official):
        sources.append(official)
    return sources


def _install(
    s: NamedSet,
    manifests: list[dict[str, str]],
    ways: list[list[_Way]],
    home: Path,
    tried: list[str],
    progress: bool,
) -> bool:
    """Fill a staging folder from one source (for each archive, the first of its ways that
    gives every member right), then put it in place of `home`. False (reasons in `tried`)
    when some archive had no good way; the cache is then as it was."""
    cache = home.parent
    try:
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache, prefix=f".{home.name}.", suffix=".part"))
    except OSError as e:
        raise download.unwritable_cache(cache, e.strerror or e) from None
    try:
        for a, manifest, options in zip(s.archives, manifests, ways):
            for folder in sorted({str(PurePosixPath(m).parent) for m in manifest}):
                (staging / folder).mkdir(parents=True, exist_ok=True)
            for label, where, by_file in options:
                fill = _fill_by_file if by_file else _fill_from_archive
                error = fill(a, manifest, where, label, staging, progress)
                if error is None:
                    break
                tried.append(f"{label} ({error})")
            else:
                return False
        _place(s, staging, home)
        return True
    except OSError as e:
        raise download.unwritable_cache(cache, download.one_line(e)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for old in cache.glob(f".{home.name}.*.old"):
            shutil.rmtree(old, ignore_errors=True)


def _place(s: NamedSet, staging: Path, home: Path) -> None:
    """fsync the staging folder's files and folders, then rename it to `home` (the folder
    there before, if any, moved aside first)."""
    _fsync_files([p for p in staging.rglob("*") if p.is_file()])
    for folder in sorted((p for p in staging.rglob("*") if p.is_dir()), reverse=True):
        os.chmod(folder, 0o755)
        fsync_dir(folder)
    os.chmod(staging, 0o755)
    fsync_dir(staging)
    if home.exists() or home.is_symlink():
        if archive_complete(s, home):
            return  # another fetch finished first: its copy is as good as this one
        old = Path(tempfile.mkdtemp(dir=home.parent, prefix=f".{home.name}.", suffix=".old"))
        os.replace(home, old / home.name)
    try:
        os.rename(staging, home)
    except OSError:
        if not archive_complete(s, home):  # not a race lost to another fetch
            raise
    fsync_dir(home.parent)


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


def _more(items: list) -> str:
    return f" (and {len(items) - 1:,} more)" if len(items) > 1 else ""


# ---- a whole archive -----------------------------------------------------------------------


def _fill_from_archive(
    a: RemoteArchive,
    manifest: dict[str, str],
    where: str,
    label: str,
    staging: Path,
    progress: bool,
) -> str | None:
    """Fetch the archive at `where` to a temporary file beside the staging folder and take
    the manifest's members out into it, checked (a local archive is read where it is). None
    on success, else why not (one line)."""
    if not where.lower().startswith(("http://", "https://")):
        if progress:
            print(f"genlab: reading {a.path} at {where}", file=sys.stderr, flush=True)
        return _extract_checked(a, manifest, Path(where), staging, where, progress)
    try:
        fd, name = tempfile.mkstemp(
            dir=staging.parent, prefix=f".{Path(a.path).name}.", suffix=".part"
        )
        os.close(fd)
    except OSError as e:
        raise download.unwritable_cache(staging.parent, e.strerror or e) from None
    archive = Path(name)
    try:
        error = _download_unpinned(a, where, archive, label, progress)
        if error is None:
            error = _extract_checked(a, manifest, archive, staging, where, progress)
        return error
    finally:
        archive.unlink(missing_ok=True)


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
    progress: bool,
) -> str | None:
    """Write the archive's members that the manifest lists into `staging`, under the
    manifest's names (never the archive's paths: nothing else is written), each checked by
    sha256. None when every listed member is there and right, else why not (one line)."""
    bad: list[str] = []
    good: set[str] = set()
    bar = tqdm(
        total=len(manifest),
        desc=f"checking {Path(a.path).name}",
        unit=" files",
        file=sys.stderr,
        disable=not progress,
        leave=False,
    )
    try:
        with bar, tarfile.open(archive, "r:*") as tar:
            for m in tar:
                if _escapes_folder(m.name):
                    return (
                        f"member {m.name!r} of the archive at {where} has an unsafe path "
                        "(absolute or with ..): refused"
                    )
                if not m.name.startswith(a.prefix):
                    continue
                member = _manifest_name(a, m.name[len(a.prefix) :])
                if member not in manifest:
                    continue  # the rest of the archive: not extracted
                if not m.isreg():
                    return f"{member} is not a plain file in the archive at {where}: refused"
                h = hashlib.sha256()
                with tar.extractfile(m) as src, open(staging / member, "wb") as out:
                    while chunk := src.read(download.CHUNK):  # fsynced once all are checked
                        h.update(chunk)
                        out.write(chunk)
                if h.hexdigest() != manifest[member] or member in bad:
                    good.discard(member)
                    if member not in bad:
                        bad.append(member)
                else:
                    good.add(member)
                bar.update(1)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        return f"not a readable tar archive at {where} ({download.one_line(e)})"
    if bad:
        return (
            f"{bad[0]}{_more(bad)} does not match its published sha256: tampered or corrupt "
            f"copy at {where}"
        )
    missing = [m for m in manifest if m not in good]
    if missing:
        return f"{missing[0]}{_more(missing)} missing from the archive at {where}"
    return None


# ---- file by file --------------------------------------------------------------------------


def _fill_by_file(
    a: RemoteArchive,
    manifest: dict[str, str],
    base: str,
    label: str,
    staging: Path,
    progress: bool,
) -> str | None:
    """Download every file of the manifest from `base` (+ its path in the archive), in
    parallel threads, each checked by sha256 as it is written into `staging`. None on success,
    else why not, naming the first file that failed."""
    if progress:
        print(
            f"genlab: fetching {len(manifest):,} files of {Path(a.path).name} from {base} "
            f"({download.THREADS} at a time)",
            file=sys.stderr,
            flush=True,
        )
    jobs = [
        (member, base + urllib.parse.quote(_archive_path(a, member)), staging / member, digest)
        for member, digest in manifest.items()
    ]
    return download.download_files(jobs, a.total_bytes, f"{Path(a.path).name} ({label})", progress)
