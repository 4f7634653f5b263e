"""Download an http(s) URL to a file (``sources.fetch`` for URLs), with its size and time
limits, the caller's stop signal and the guard's vetted addresses; imported only when a URL
is fetched, so that a local file needs no HTTP client.

Downloads go to one folder (``FetchOptions.directory``). Each file is held, with an
exclusive ``flock``, from just after it is made until it is removed; the kernel lets go of
it when its process ends, however it ends. So a file there that no process holds was left
by a process killed in the middle of a job, and each download first removes those
(``sweep``): a service that is killed and started again does not fill its disk.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from app.errors import (
    DescriberError,
    DiskFull,
    DownloadFolderError,
    InputError,
    InputTooLarge,
    Stopped,
)
from app.pipeline.types import StopSignal

if TYPE_CHECKING:
    from app.pipeline.sources import FetchOptions, URLGuard

logger = logging.getLogger(__name__)


def check_url(source: str, what: str) -> None:
    """Raise InputError for an http(s) URL that cannot be parsed."""
    try:
        httpx.URL(source)
    except httpx.InvalidURL as exc:
        raise InputError(f"{what} URL cannot be parsed ({exc}): {source!r}") from exc


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


PREFIX = "describer-"
"""How the names of the downloads' files begin."""

ABANDONED_AFTER = 60.0
"""Seconds since a file was last written before ``sweep`` may take it for abandoned, when no
process holds it: a download holds its file from a moment after making it."""


def default_directory() -> Path:
    """Where downloads go unless told: a folder of this user's in the temporary folder."""
    return Path(tempfile.gettempdir()) / f"describer-downloads-{os.getuid()}"


def download_folder(directory: Path | None) -> Path:
    """The folder downloads go to (``directory``, default ``default_directory()``), made if
    missing and checked: a folder this process can write; the default one, in the shared
    temporary folder, also no link, this user's own and closed to others (another user
    could otherwise swap the films the jobs read).

    Raises:
        DownloadFolderError: it cannot be used; the message says why and what to set.
    """
    folder = directory or default_directory()
    fix = "set DESCRIBER_DOWNLOAD_DIR to a folder of this service's own"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat() if directory is not None else folder.lstat()
    except OSError as exc:
        raise DownloadFolderError(
            f"the download folder {folder} cannot be made ({exc.strerror or exc}); {fix}"
        ) from exc
    if not stat.S_ISDIR(info.st_mode):
        raise DownloadFolderError(f"the download folder {folder} is not a folder; {fix}")
    if directory is None and (info.st_uid != os.getuid() or info.st_mode & 0o077):
        raise DownloadFolderError(
            f"the download folder {folder} belongs to another user or is open to others "
            f"(owner uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o}), who could swap "
            f"the films the jobs read; remove it, or {fix}"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DownloadFolderError(f"the download folder {folder} cannot be written; {fix}")
    return folder


@contextmanager
def download_file(directory: Path | None, what: str, suffix: str) -> Iterator[Path]:
    """A new empty file for a download of ``what`` in ``download_folder(directory)``, held
    for the context and removed after it. Abandoned files there go first (``sweep``).

    Raises:
        DownloadFolderError: the folder cannot be used.
        DiskFull: its disk is full.
    """
    folder = download_folder(directory)
    sweep(folder)
    try:
        handle, name = tempfile.mkstemp(prefix=f"{PREFIX}{what}-", suffix=suffix, dir=folder)
    except OSError as exc:
        raise disk_problem(exc, what, 0, folder) from exc
    path = Path(name)
    try:
        # Held through a descriptor of its own, never written through.
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield path
    finally:
        path.unlink(missing_ok=True)
        os.close(handle)


def sweep(folder: Path) -> None:
    """Remove the downloads in ``folder`` that no process holds and none has written for
    ``ABANDONED_AFTER`` seconds: those of a process killed in the middle of a job
    (``kill -9``, the OOM killer, a power cut), which nothing else would remove. Anything
    else there that matches (a link, a folder, another user's file) is left as it is.

    ``flock`` holds across processes on a local file system. Over NFS Linux emulates it
    with POSIX locks, which a process does not hold against itself: a sweep there could
    remove a download of a job of its own process, so the folder must be local."""
    now = time.time()
    for path in folder.glob(f"{PREFIX}*"):
        try:
            # Not waiting on a FIFO, not following a link.
            handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:  # removed by its process meanwhile
            continue
        except OSError as exc:
            logger.info("left %s in the download folder: %s", path, exc.strerror or exc)
            continue
        try:
            info = os.fstat(handle)
            if not stat.S_ISREG(info.st_mode) or now - info.st_mtime < ABANDONED_AFTER:
                continue
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # held: a download in use
                continue
            path.unlink(missing_ok=True)
        except OSError as exc:
            logger.info("left %s in the download folder: %s", path, exc.strerror or exc)
            continue
        finally:
            os.close(handle)
        logger.warning(
            "removed %s, a download left by a process that ended in the middle of a job", path
        )


def disk_problem(exc: OSError, what: str, written: int, folder: Path) -> DescriberError:
    """A clear error for a download that cannot be written to ``folder``: a full disk, or
    another problem of the folder's."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(
            f"no space left on the downloads' disk ({folder}) while downloading the {what}, "
            f"after {written} bytes; free space there or point DESCRIBER_DOWNLOAD_DIR at a "
            "larger disk"
        )
    return DownloadFolderError(
        f"cannot write the {what} download to {folder} ({exc.strerror or exc}) after "
        f"{written} bytes; set DESCRIBER_DOWNLOAD_DIR to a folder of this service's own"
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


def download(
    url: str,
    path: Path,
    what: str,
    max_bytes: int,
    options: FetchOptions,
    guard: URLGuard | None,
    stop: StopSignal | None,
) -> None:
    timeout = httpx.Timeout(options.connect_timeout)
    size = 0
    too_slow = InputError(f"{what} download took longer than {options.timeout:g} s: {url}")
    with (
        _Watchdog(time.monotonic() + options.timeout, stop) as watchdog,
        open(path, "wb", buffering=0) as out,
    ):
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
                        raise disk_problem(exc, what, size - len(chunk), path.parent) from exc
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
