"""The low-level pieces of a download, shared by the fetch chain (fetch.py) and the archive
sets (archive_sets.py): where the mirror is, how a source is opened and labelled, a progress
bar, and the one-line reasons and warnings the chain prints.

    with open_source("https://example.org/a.gz", None) as src:   # or a local path
        chunk = src.read(CHUNK)

Nothing here knows the named sets or where the cache is: `genlab.data.fetch` is the chain.
"""

from __future__ import annotations

import http.client
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from genlab.errors import DataError

TIMEOUT_S = 30
CHUNK = 1 << 16  # bytes read at a time from a source
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
    "mirror_setting",
    "mirror_url_source",
    "official_source",
    "one_line",
    "open_source",
    "progress_bar",
    "unwritable_cache",
    "warn",
]
