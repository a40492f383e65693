"""The low-level pieces of a download, shared by the fetch chain (fetch.py) and the archive
sets (archive_sets.py): where the mirror is, how a source is opened and labelled, a progress
bar, many small files downloaded in parallel (each checked), and the one-line reasons and
warnings the chain prints.

    with open_source("https://example.org/a.gz", None) as src:   # or a local path
        chunk = src.read(CHUNK)
    error = download_files([(name, url, target, sha256), ...], limit, "emoji", progress=True)

Nothing here knows the named sets or where the cache is: `genlab.data.fetch` is the chain.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from genlab.errors import DataError

TIMEOUT_S = 30
CHUNK = 1 << 16  # bytes read at a time from a source
THREADS = 16  # files downloaded at once, many small files (download_files)
TRIES = 3  # per file, for errors that may pass (a timeout, a dropped connection, HTTP 5xx)
_USER_AGENT = "genlab/0.1 (+https://github.com/genlab)"

# what a download can fail with: each becomes one line naming why (download_error)
DOWNLOAD_ERRORS = (OSError, http.client.HTTPException, ValueError)


def mirror_setting() -> tuple[str, str] | None:
    """`$GENLAB_DATA_MIRROR` as ("url", base) or ("folder", path), or None when unset."""
    value = os.environ.get("GENLAB_DATA_MIRROR", "").strip()
    if not value:
        return None
    if value.lower().startswith(("http://", "https://")):
        return "url", value.rstrip("/") + "/"
    return "folder", str(Path(value).expanduser())


def mirror_url_source(base: str, path: str) -> tuple[str, str]:
    """(label, URL) of `path` (cache layout, "mnist/...") on the URL mirror at `base`."""
    return f"mirror {base}", base + urllib.parse.quote(path)


def official_source(url: str) -> tuple[str, str]:
    """(label, URL) of an official download, labelled by its host."""
    return urllib.parse.urlsplit(url).netloc or url, url


@contextmanager
def open_source(where: str, byte_range: tuple[int, int] | None) -> Iterator[BinaryIO]:
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
                chunk = response.read(min(CHUNK, to_skip))
                if not chunk:
                    break
                to_skip -= len(chunk)
        yield response


def progress_bar(total: int, name: str, label: str, progress: bool) -> tqdm:
    """A byte counter on stderr for one download, "NAME (LABEL)"; silent unless `progress`."""
    return tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=f"{name} ({label})",
        file=sys.stderr,
        disable=not progress,
        leave=False,
    )


def download_files(
    jobs: list[tuple[str, str, Path, str]], limit: int, desc: str, progress: bool
) -> str | None:
    """Download many small files in parallel threads: each job (name, URL, target, sha256)
    hashed as it is written to its target, tried again after an error that may pass. None
    when every file is right, else why not, naming the first that failed (once one has
    failed, those not started yet are skipped). A count of files on stderr if `progress`."""
    stop = threading.Event()

    def one(job: tuple[str, str, Path, str]) -> str | None:
        if stop.is_set():
            return None
        name, url, target, digest = job
        error = _get_checked(url, target, digest, limit)
        if error is not None:
            stop.set()
            return f"{name} {error}"
        return None

    errors = []
    bar = tqdm(total=len(jobs), desc=desc, unit=" files", file=sys.stderr, disable=not progress)
    with bar, ThreadPoolExecutor(max_workers=THREADS) as pool:
        for future in as_completed([pool.submit(one, job) for job in jobs]):
            if (error := future.result()) is not None:
                errors.append(error)
            bar.update(1)
    more = f" (and {len(errors) - 1:,} more)" if len(errors) > 1 else ""
    return f"{errors[0]}{more}" if errors else None


def _get_checked(url: str, target: Path, digest: str, limit: int) -> str | None:
    """Download one file to `target`, checked against `digest`; None on success, else why not
    (a phrase to follow the file's name)."""
    for attempt in range(TRIES):
        h = hashlib.sha256()
        size = 0
        try:
            with open(target, "wb") as out, open_source(url, None) as src:
                while chunk := src.read(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        return f"is more than {limit:,} bytes at {url}: not this file"
                    h.update(chunk)
                    out.write(chunk)
        except DOWNLOAD_ERRORS as e:
            if attempt + 1 < TRIES and _may_pass(e):
                time.sleep(0.5 * (attempt + 1))
                continue
            return f"failed ({download_error(e)}) at {url}"
        if h.hexdigest() != digest:
            return f"does not match its published sha256: tampered or corrupt copy at {url}"
        return None
    return None  # not reached: the last try returns


def _may_pass(e: BaseException) -> bool:
    """An error worth another try: a timeout, a dropped connection, HTTP 429 or 5xx."""
    if isinstance(e, urllib.error.HTTPError):
        return e.code == 429 or e.code >= 500
    if isinstance(e, urllib.error.URLError) and isinstance(e.reason, BaseException):
        e = e.reason
    return isinstance(
        e, (TimeoutError, ConnectionResetError, ConnectionAbortedError, http.client.HTTPException)
    )


def unwritable_cache(folder: Path, reason: object) -> DataError:
    """The one-line error for a cache folder genlab cannot write to (raise it `from None`)."""
    return DataError(
        f"cannot write to the cache {folder} ({reason}); set GENLAB_CACHE to a writable folder"
    )


def warn(message: str) -> None:
    """Print "genlab: warning: MESSAGE" on stderr (a bad copy skipped, a fetch redone)."""
    print(f"genlab: warning: {message}", file=sys.stderr, flush=True)


def download_error(e: BaseException) -> str:
    """Why a download failed, in a few words (for the one-line error naming each source)."""
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code}"
    if isinstance(e, urllib.error.URLError):
        return one_line(e.reason)
    if isinstance(e, http.client.IncompleteRead):
        return "connection closed mid-download"
    return one_line(e)


def one_line(reason: object) -> str:
    """`reason` (an exception or any object) as at most 120 characters on one line."""
    if isinstance(reason, OSError) and reason.strerror:
        reason = reason.strerror  # "Connection refused", not "[Errno 111] Connection refused"
    text = " ".join(str(reason).split()) or type(reason).__name__
    return text[:120]


__all__ = [
    "CHUNK",
    "DOWNLOAD_ERRORS",
    "TIMEOUT_S",
    "download_error",
    "download_files",
    "mirror_setting",
    "mirror_url_source",
    "official_source",
    "one_line",
    "open_source",
    "progress_bar",
    "unwritable_cache",
    "warn",
]
