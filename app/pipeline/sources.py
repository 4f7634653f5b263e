"""Fetch a video or subtitles file: a local path as is, an http(s) URL into a temporary file
(``download.py``, imported for URLs only).

Downloads stream to disk with a size limit and a wall-clock limit on the whole download,
enforced however slowly the bytes come (a watchdog thread shuts the connection down at the
deadline, or as soon as the caller's stop signal is set), and the downloaded file is removed
when the ``fetch`` context exits, whatever happened; one that outlives its process (killed
with ``kill -9``) is removed by a later download. With a ``guard``, every request (each
redirect too) connects to the address the guard vetted, never to a second DNS answer, and
proxy settings from the environment (``HTTP_PROXY``...) are not used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from app.errors import InputError
from app.pipeline.types import StopSignal

if TYPE_CHECKING:
    import httpx

URLGuard = Callable[["httpx.URL"], str]
"""Called with every URL about to be requested, redirects included: returns the IP address
to connect to, which it has checked, or raises InputError to refuse the URL."""


@dataclass(frozen=True)
class FetchOptions:
    """Limits on downloads."""

    max_bytes: int = 20 * 1024**3
    """Largest video accepted, bytes."""
    max_subtitles_bytes: int = 10 * 1024**2
    """Largest subtitles file accepted, bytes (they are read into memory whole)."""
    timeout: float = 600.0
    """Seconds for the whole download."""
    connect_timeout: float = 15.0
    """Seconds to connect or to wait for the next chunk."""
    max_redirects: int = 5
    """Redirects followed before giving up."""
    directory: Path | None = None
    """Folder the downloads go to while in use (created if missing); None:
    ``describer-downloads-<uid>`` in the system's temporary folder. Files there that no
    process holds, left by one killed in the middle of a job, are removed by the next
    download (``download.sweep``)."""


def is_url(source: str) -> bool:
    """Whether ``source`` names a remote resource (has a URL scheme) rather than a path."""
    scheme = urlsplit(source).scheme
    # A Windows drive letter ("C:\\film.mp4") parses as a one-letter scheme.
    return len(scheme) > 1


@contextmanager
def fetch(
    source: str,
    *,
    what: str = "video",
    options: FetchOptions | None = None,
    guard: URLGuard | None = None,
    stop: StopSignal | None = None,
) -> Iterator[Path]:
    """Make ``source`` available as a local file for the duration of the context.

    Args:
        source: A local path or an http(s) URL.
        what: What the file is, for error messages ("video", "subtitles").
        options: Download limits.
        guard: Checks each URL requested (e.g. refuses private addresses).
        stop: Set by the caller to abandon the download at once.

    Raises:
        InputError: the file is missing, the URL is not http(s), cannot be parsed, is
            unreachable, answers with an error status, or takes longer than
            ``options.timeout``.
        InputTooLarge: the download exceeds the size limit of ``what`` (``max_bytes``, or
            ``max_subtitles_bytes`` for subtitles).
        DiskFull: the downloads' disk filled up.
        DownloadFolderError: the folder downloads go to cannot be used.
        Stopped: ``stop`` was set during the download.
    """
    options = options or FetchOptions()
    if not is_url(source):
        path = Path(source).expanduser()
        if not path.is_file():
            raise InputError(f"{what} file not found: {source}")
        if path.stat().st_size == 0:
            raise InputError(f"{what} file is empty: {source}")
        yield path
        return
    scheme = urlsplit(source).scheme.lower()
    if scheme not in ("http", "https"):
        raise InputError(f"{what} URL must be http or https, not {scheme}: {source}")
    # The HTTP client is imported for URLs only: a local file needs none of it.
    from app.pipeline.download import check_url, download, download_file

    check_url(source, what)
    max_bytes = options.max_subtitles_bytes if what == "subtitles" else options.max_bytes
    suffix = Path(urlsplit(source).path).suffix[:16]
    with download_file(options.directory, what, suffix) as path:
        download(source, path, what, max_bytes, options, guard, stop)
        yield path
