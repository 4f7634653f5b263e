"""Fetching inputs: local paths and real HTTP downloads with limits and cleanup."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import httpx
import pytest

from app.errors import DiskFull, DownloadFolderError, InputError, InputTooLarge, Stopped
from app.pipeline.sources import FetchOptions, fetch, is_url
from tests.fixtures.servers import TrickleServer, wait_until


def test_local_file_is_used_in_place(tmp_path: Path) -> None:
    path = tmp_path / "film.mp4"
    path.write_bytes(b"data")
    with fetch(str(path)) as fetched:
        assert fetched == path
    assert path.exists()


def test_missing_local_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="video file not found"), fetch(str(tmp_path / "no.mp4")):
        pass


def test_zero_length_local_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(InputError, match="empty"), fetch(str(path)):
        pass


def test_download_streams_to_a_temporary_file_that_is_removed(
    file_server: tuple[str, Path],
) -> None:
    base, root = file_server
    (root / "film.mp4").write_bytes(b"x" * 300_000)
    with fetch(f"{base}/film.mp4") as path:
        assert path.read_bytes() == b"x" * 300_000
        assert path.suffix == ".mp4"
    assert not path.exists()


def test_http_404(file_server: tuple[str, Path]) -> None:
    base, _ = file_server
    with pytest.raises(InputError, match="HTTP 404"), fetch(f"{base}/missing.mp4"):
        pass


def test_unreachable_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more.
    with pytest.raises(InputError, match="unreachable"), fetch(f"http://127.0.0.1:{port}/v.mp4"):
        pass


def test_other_schemes_are_refused() -> None:
    with pytest.raises(InputError, match="http or https"), fetch("ftp://example.com/v.mp4"):
        pass


def test_oversize_download_is_stopped_and_cleaned(
    file_server: tuple[str, Path], tmp_path: Path
) -> None:
    base, root = file_server
    (root / "big.mp4").write_bytes(b"x" * 5000)
    with (
        pytest.raises(InputTooLarge, match="over the limit of 1000"),
        fetch(f"{base}/big.mp4", options=FetchOptions(max_bytes=1000)),
    ):
        pass


def test_guard_sees_every_request(file_server: tuple[str, Path]) -> None:
    base, root = file_server
    (root / "v.mp4").write_bytes(b"1")
    seen: list[httpx.URL] = []

    def refuse(url: httpx.URL) -> str:
        seen.append(url)
        raise InputError(f"refused {url.host}")

    with (
        pytest.raises(InputError, match=r"refused 127\.0\.0\.1"),
        fetch(f"{base}/v.mp4", guard=refuse),
    ):
        pass
    assert [str(u) for u in seen] == [f"{base}/v.mp4"]


def test_requests_connect_to_the_address_the_guard_returns(file_server: tuple[str, Path]) -> None:
    base, root = file_server
    (root / "films").mkdir()
    (root / "films" / "index.html").write_bytes(b"video bytes")
    port = httpx.URL(base).port
    seen: list[str] = []

    def pin(url: httpx.URL) -> str:
        seen.append(str(url))
        return "127.0.0.1"

    # A .invalid name never resolves: only the address the guard returned can be reached.
    with fetch(f"http://video.invalid:{port}/films", guard=pin) as path:
        assert path.read_bytes() == b"video bytes"
    # The server's relative redirect to /films/ is resolved against the name, and checked.
    assert seen == [f"http://video.invalid:{port}/films", f"http://video.invalid:{port}/films/"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [("http://a/b.mp4", True), ("https://a/b", True), ("/tmp/x.mp4", False), ("C:\\x.mp4", False)],
)
def test_is_url(source: str, expected: bool) -> None:
    assert is_url(source) is expected


@pytest.mark.parametrize(
    "byte_every",
    [0.1, None],
    ids=["a byte every 0.1 s, so no read ever times out", "headers, then nothing at all"],
)
def test_a_slow_or_stalled_server_cannot_hold_a_download_past_its_timeout(
    trickle_server: Callable[[float | None], TrickleServer], byte_every: float | None
) -> None:
    server = trickle_server(byte_every)
    options = FetchOptions(timeout=1.0, connect_timeout=30.0)
    started = time.monotonic()
    with (
        pytest.raises(InputError, match="took longer than 1 s"),
        fetch(server.url, options=options),
    ):
        pass
    assert time.monotonic() - started < 5


def test_the_stop_signal_interrupts_a_download_at_once(
    trickle_server: Callable[[float | None], TrickleServer],
) -> None:
    server = trickle_server(None)
    stop = threading.Event()
    threading.Thread(target=lambda: server.headers_sent.wait(30) and stop.set()).start()
    options = FetchOptions(timeout=60.0, connect_timeout=60.0)
    started = time.monotonic()
    with pytest.raises(Stopped), fetch(server.url, options=options, stop=stop):
        pass
    assert stop.is_set()
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "url",
    [
        "http://0177.0.0.1/film.mp4",  # octal
        "http://\uff11\uff12\uff17.0.0.1/film.mp4",  # fullwidth digits
        "http://example.org/film\r\nX-Injected: 1",
        "http://example.org/film\x00.mp4",
    ],
)
def test_a_url_that_cannot_be_parsed_is_an_input_error(url: str) -> None:
    with pytest.raises(InputError, match="cannot be parsed"), fetch(url):
        pass


def test_subtitles_have_their_own_size_limit(file_server: tuple[str, Path]) -> None:
    base, root = file_server
    (root / "film.srt").write_bytes(b"1\n00:00:01,000 --> 00:00:02,000\nhello\n\n" * 200)
    options = FetchOptions(max_bytes=10**9, max_subtitles_bytes=1000)
    too_large = pytest.raises(InputTooLarge, match="limit of 1000")
    with too_large, fetch(f"{base}/film.srt", what="subtitles", options=options):
        pass
    with fetch(f"{base}/film.srt", what="video", options=options) as path:
        assert path.stat().st_size > 1000


def test_a_full_download_disk_says_so_and_where(
    file_server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, root = file_server
    (root / "film.mp4").write_bytes(b"x" * 300_000)

    def full_disk(_path: Path, mode: str, buffering: int) -> IO[bytes]:
        # /dev/full answers every write with ENOSPC, as a full disk does.
        return open("/dev/full", mode, buffering=buffering)

    monkeypatch.setattr("app.pipeline.download.open", full_disk, raising=False)
    folder = tmp_path / "downloads"
    full = pytest.raises(
        DiskFull, match=rf"no space left on the downloads' disk \({folder}\).*DOWNLOAD_DIR"
    )
    with full, fetch(f"{base}/film.mp4", options=FetchOptions(directory=folder)):
        pass
    assert list(folder.iterdir()) == []


def _held_download(url: str, folder: Path) -> subprocess.Popen[bytes]:
    """Another process downloading ``url`` into ``folder``, as a worker of the service."""
    script = (
        "import sys; from pathlib import Path; "
        "from app.pipeline.sources import FetchOptions, fetch; "
        "options = FetchOptions(directory=Path(sys.argv[2]), timeout=300, connect_timeout=300); "
        "fetch(sys.argv[1], options=options).__enter__()"
    )
    return subprocess.Popen([sys.executable, "-c", script, url, str(folder)])


def test_a_download_left_by_a_killed_process_is_removed_by_the_next(
    trickle_server: Callable[[float | None], TrickleServer],
    file_server: tuple[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Before, each service killed with kill -9 during a job left its download in /tmp for
    # good (62 files from one day of test runs).
    folder = tmp_path / "downloads"
    server = trickle_server(None)
    killed = _held_download(server.url, folder)
    try:
        left = wait_until(lambda: list(folder.glob("describer-video-*")), what="a download")
        alive = _held_download(server.url, folder)
        try:
            both = wait_until(
                lambda: len(files := list(folder.glob("describer-video-*"))) == 2 and files,
                what="a second download",
            )
            killed.kill()
            killed.wait()
            assert all(path.exists() for path in both)
            monkeypatch.setattr("app.pipeline.download.ABANDONED_AFTER", 0.0)
            base, root = file_server
            (root / "film.mp4").write_bytes(b"x" * 1000)
            with fetch(f"{base}/film.mp4", options=FetchOptions(directory=folder)) as path:
                assert path.parent == folder
                assert not left[0].exists(), "the killed process's download is gone"
                (held,) = set(both) - set(left)
                assert held.exists(), "the download of a live process stays"
            assert sorted(folder.iterdir()) == [held]
        finally:
            alive.kill()
            alive.wait()
    finally:
        killed.kill()
        killed.wait()
    assert "a download left by a process that ended in the middle of a job" in caplog.text


def test_a_download_is_not_taken_for_abandoned_while_it_is_new(
    file_server: tuple[str, Path], tmp_path: Path
) -> None:
    # Made a moment before its process holds it: a file written in the last minute stays.
    folder = tmp_path / "downloads"
    folder.mkdir()
    fresh, stale = folder / "describer-video-fresh.mp4", folder / "describer-video-stale.mp4"
    fresh.write_bytes(b"x")
    stale.write_bytes(b"x")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    base, root = file_server
    (root / "film.mp4").write_bytes(b"x" * 1000)
    with fetch(f"{base}/film.mp4", options=FetchOptions(directory=folder)):
        pass
    assert sorted(folder.iterdir()) == [fresh]


def test_the_default_download_folder_must_be_this_users_own(
    file_server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In the shared temporary folder another user could make it first, open to all, and
    # swap the film a job reads (mkdir accepted any folder already there).
    shared = tmp_path / "describer-downloads"
    monkeypatch.setattr("app.pipeline.download.default_directory", lambda: shared)
    base, root = file_server
    (root / "film.mp4").write_bytes(b"x" * 1000)
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(DownloadFolderError, match=r"open to others \(owner uid \d+, mode 777\)"):
        fetch(f"{base}/film.mp4").__enter__()
    shared.rmdir()
    shared.symlink_to(tmp_path)
    with pytest.raises(DownloadFolderError, match="is not a folder"):
        fetch(f"{base}/film.mp4").__enter__()
    shared.unlink()
    with fetch(f"{base}/film.mp4") as path:
        assert path.parent == shared
    assert stat.S_IMODE(shared.stat().st_mode) == 0o700


def test_the_sweep_leaves_what_is_not_a_download(
    file_server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A FIFO made the sweep wait for ever; a folder or a link made every download fail.
    folder = tmp_path / "downloads"
    folder.mkdir()
    os.mkfifo(folder / "describer-fifo")
    (folder / "describer-folder").mkdir()
    (folder / "describer-link").symlink_to(tmp_path / "elsewhere")
    monkeypatch.setattr("app.pipeline.download.ABANDONED_AFTER", 0.0)
    base, root = file_server
    (root / "film.mp4").write_bytes(b"x" * 1000)
    with fetch(f"{base}/film.mp4", options=FetchOptions(directory=folder)) as path:
        assert path.read_bytes() == b"x" * 1000
    assert sorted(p.name for p in folder.iterdir()) == [
        "describer-fifo",
        "describer-folder",
        "describer-link",
    ]
