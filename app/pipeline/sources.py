"""Fetch a video or subtitles file: a local path as is, an http(s) URL into a temporary file.

Downloads stream to disk with a size limit and a wall-clock limit on the whole download,
enforced however slowly the bytes come (a watchdog thread shuts the connection down at the
deadline, or as soon as the caller's stop signal is set), and the temporary file is removed
when the ``fetch`` context exits, whatever happened. With a ``guard``, every request (each
redirect too) connects to the address the guard vetted, never to a second DNS answer, and
proxy settings from the environment (``HTTP_PROXY``...) are not used.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import httpx

from app.errors import DescriberError, DiskFull, InputError, InputTooLarge, Stopped
from app.pipeline.types import StopSignal

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
    """Largest video accepted, bytes."""
    max_subtitles_bytes: int = 10 * 1024**2
    """Largest subtitles file accepted, bytes (they are read into memory whole)."""
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
        DiskFull: the temporary disk filled up.
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
    try:
        httpx.URL(source)
    except httpx.InvalidURL as exc:
        raise InputError(f"{what} URL cannot be parsed ({exc}): {source!r}") from exc
    max_bytes = options.max_subtitles_bytes if what == "subtitles" else options.max_bytes
    suffix = Path(urlsplit(source).path).suffix[:16]
    try:
        handle, name = tempfile.mkstemp(prefix=f"describer-{what}-", suffix=suffix)
    except OSError as exc:
        raise _disk_problem(exc, what, 0) from exc
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            _download(source, out, what, max_bytes, options, guard, stop)
        yield path
    finally:
        path.unlink(missing_ok=True)


def _disk_problem(exc: OSError, what: str, written: int) -> DescriberError | OSError:
    """A clear error for a full temporary disk; other OS errors stay as they are."""
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return exc
    return DiskFull(
        f"no space left on the temporary disk ({tempfile.gettempdir()}) while downloading the "
        f"{what}, after {written} bytes; free space there or point TMPDIR at a larger disk"
    )


class _Watchdog:
    """Shuts a download's connections down at its deadline or when ``stop`` is set.

    A blocked read then returns at once, whatever the server does: a slow server cannot
    hold the download past its deadline, nor a worker past a stop. The sockets are learnt
    from httpcore's ``trace`` extension as they connect (TLS ones too).
    """

    #: Seconds between two looks at the clock and the stop signal.
    TICK = 0.05

    def __init__(self, deadline: float, stop: StopSignal | None) -> None:
        self.deadline = deadline
        self.fired: str | None = None
        """``"stopped"`` or ``"timeout"`` once it has shut the connections down."""
        self._stop = stop
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._watch, name="download-watchdog", daemon=True)

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        sock = info["return_value"].get_extra_info("socket")
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.fired is not None:
                _shut(sock)

    def _watch(self) -> None:
        while not self._done.wait(self.TICK):
            if self._stop is not None and self._stop.is_set():
                self._fire("stopped")
                return
            if time.monotonic() >= self.deadline:
                self._fire("timeout")
                return

    def _fire(self, why: str) -> None:
        with self._lock:
            self.fired = why
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed by its owner: nothing left to interrupt
        return


def _download(
    url: str,
    out: BinaryIO,
    what: str,
    max_bytes: int,
    options: FetchOptions,
    guard: URLGuard | None,
    stop: StopSignal | None,
) -> None:
    timeout = httpx.Timeout(options.connect_timeout)
    size = 0
    too_slow = InputError(f"{what} download took longer than {options.timeout:g} s: {url}")
    with _Watchdog(time.monotonic() + options.timeout, stop) as watchdog:
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
                client.stream("GET", url, extensions={"trace": watchdog.trace}) as response,
            ):
                if response.status_code != 200:
                    raise InputError(
                        f"{what} URL answered HTTP {response.status_code} "
                        f"{response.reason_phrase}: {url}"
                    )
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                    raise InputTooLarge(
                        f"{what} is {int(declared)} bytes, over the limit of {max_bytes}"
                    )
                # Each chunk is what one read returned: the clock is looked at however few
                # bytes come, and the watchdog cuts a read that waits past the deadline.
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise InputTooLarge(
                            f"{what} download passed the limit of {max_bytes} bytes"
                        )
                    if watchdog.fired is not None or time.monotonic() > watchdog.deadline:
                        break
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise _disk_problem(exc, what, size - len(chunk)) from exc
        except httpx.TooManyRedirects as exc:
            raise InputError(f"{what} URL redirects too many times: {url}") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            if watchdog.fired == "stopped":
                raise Stopped(f"{what} download stopped") from exc
            if watchdog.fired == "timeout":
                raise too_slow from exc
            if isinstance(exc, httpx.TimeoutException):
                raise InputError(f"{what} URL timed out: {url}") from exc
            raise InputError(f"{what} URL unreachable ({exc}): {url}") from exc
    if watchdog.fired == "stopped":
        raise Stopped(f"{what} download stopped")
    if watchdog.fired == "timeout" or time.monotonic() > watchdog.deadline:
        raise too_slow
    if size == 0:
        raise InputError(f"{what} URL returned an empty file: {url}")
    logger.info("downloaded %s: %d bytes from %s", what, size, url)
