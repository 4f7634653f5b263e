"""Fetch a video or subtitles file: a local path as is, an http(s) URL into a temporary file.

Downloads stream to disk with a size limit and a timeout, and the temporary file is removed
when the ``fetch`` context exits, whatever happened. With a ``guard``, every request (each
redirect too) connects to the address the guard vetted, never to a second DNS answer, and
proxy settings from the environment (``HTTP_PROXY``...) are not used.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import httpx

from app.errors import InputError, InputTooLarge

logger = logging.getLogger(__name__)

URLGuard = Callable[[httpx.URL], str]
"""Called with every URL about to be requested, redirects included: returns the IP address
to connect to, which it has checked, or raises InputError to refuse the URL."""


class _PinnedTransport(httpx.BaseTransport):
    """Connects each request to the address its guard returned for the URL.

    The request keeps its host name for the Host header and for TLS (SNI and certificate
    check); only the TCP connection goes to the vetted address. So a DNS server cannot answer
    the guard with a public address and the connection with an internal one (DNS rebinding).
    """

    def __init__(self, guard: URLGuard) -> None:
        self._guard = guard
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        address = self._guard(request.url)
        pinned = httpx.Request(
            request.method,
            request.url.copy_with(host=address),
            headers=request.headers,
            stream=request.stream,
            extensions={**request.extensions, "sni_hostname": request.url.host},
        )
        return self._inner.handle_request(pinned)

    def close(self) -> None:
        self._inner.close()


@dataclass(frozen=True)
class FetchOptions:
    """Limits on downloads."""

    max_bytes: int = 20 * 1024**3
    """Largest file accepted, bytes."""
    timeout: float = 600.0
    """Seconds for the whole download."""
    connect_timeout: float = 15.0
    """Seconds to connect or to wait for the next chunk."""
    max_redirects: int = 5
    """Redirects followed before giving up."""


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
) -> Iterator[Path]:
    """Make ``source`` available as a local file for the duration of the context.

    Args:
        source: A local path or an http(s) URL.
        what: What the file is, for error messages ("video", "subtitles").
        options: Download limits.
        guard: Checks each URL requested (e.g. refuses private addresses).

    Raises:
        InputError: the file is missing, the URL is not http(s), unreachable, or answers
            with an error status.
        InputTooLarge: the download exceeds ``options.max_bytes``.
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
    suffix = Path(urlsplit(source).path).suffix[:16]
    handle, name = tempfile.mkstemp(prefix=f"describer-{what}-", suffix=suffix)
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            _download(source, out, what=what, options=options, guard=guard)
        yield path
    finally:
        path.unlink(missing_ok=True)


def _download(
    url: str, out: BinaryIO, *, what: str, options: FetchOptions, guard: URLGuard | None
) -> None:
    timeout = httpx.Timeout(options.connect_timeout)
    size = 0
    try:
        with (
            httpx.Client(
                timeout=timeout,
                follow_redirects=True,
                max_redirects=options.max_redirects,
                transport=None if guard is None else _PinnedTransport(guard),
                # A proxy from the environment would resolve names itself, past the guard.
                trust_env=guard is None,
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise InputError(
                    f"{what} URL answered HTTP {response.status_code} "
                    f"{response.reason_phrase}: {url}"
                )
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > options.max_bytes:
                raise InputTooLarge(
                    f"{what} is {int(declared)} bytes, over the limit of {options.max_bytes}"
                )
            deadline = time.monotonic() + options.timeout
            for chunk in response.iter_bytes(1 << 20):
                size += len(chunk)
                if size > options.max_bytes:
                    raise InputTooLarge(
                        f"{what} download passed the limit of {options.max_bytes} bytes"
                    )
                if time.monotonic() > deadline:
                    raise InputError(
                        f"{what} download took longer than {options.timeout:g} s: {url}"
                    )
                out.write(chunk)
    except httpx.TooManyRedirects as exc:
        raise InputError(f"{what} URL redirects too many times: {url}") from exc
    except httpx.TimeoutException as exc:
        raise InputError(f"{what} URL timed out: {url}") from exc
    except httpx.HTTPError as exc:
        raise InputError(f"{what} URL unreachable ({exc}): {url}") from exc
    if size == 0:
        raise InputError(f"{what} URL returned an empty file: {url}")
    logger.info("downloaded %s: %d bytes from %s", what, size, url)
