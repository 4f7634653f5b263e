"""Decoding ahead in a thread of its own (app.pipeline.readahead), as the scans use it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from app.pipeline.readahead import read_ahead
from app.pipeline.scan import scan_scenes
from app.pipeline.scenes import ScanMode, SceneOptions
from app.pipeline.video import VideoReader
from tests.fixtures.media import MadeVideo


def _threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name == "read-ahead"]


def test_items_come_in_order_prepared_in_another_thread() -> None:
    caller = threading.current_thread().name
    got = list(
        read_ahead(iter(range(50)), lambda n: (n * n, threading.current_thread().name), depth=4)
    )
    assert [item for item, _ in got] == list(range(50))
    assert [square for _, (square, _) in got] == [n * n for n in range(50)]
    assert {name for _, (_, name) in got} == {"read-ahead"} != {caller}
    assert _threads() == []


def test_an_error_comes_after_the_items_before_it() -> None:
    def source() -> Iterator[int]:
        yield from range(3)
        raise ValueError("damaged at 3")

    seen: list[int] = []
    with pytest.raises(ValueError, match="damaged at 3"):
        for item, _ in read_ahead(source(), str, depth=8):
            seen.append(item)
    assert seen == [0, 1, 2]
    assert _threads() == []


def test_an_error_in_prepare_is_raised_in_the_caller() -> None:
    def prepare(n: int) -> int:
        if n == 5:
            raise RuntimeError("cannot scale frame 5")
        return n

    seen = []
    with pytest.raises(RuntimeError, match="frame 5"):
        for item, _ in read_ahead(iter(range(10)), prepare, depth=2):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


def test_closing_stops_the_thread_before_it_reads_much_further() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for n in range(10_000):
            produced.append(n)
            yield n

    frames = read_ahead(source(), lambda n: n, depth=3)
    assert [next(frames)[0] for _ in range(2)] == [0, 1]
    frames.close()
    # The thread has ended (close waits for it) after at most the queue's depth and the
    # item it held more; the source was left where it was, not read to the end.
    assert _threads() == []
    assert len(produced) <= 2 + 3 + 2


def test_an_error_that_is_no_exception_still_ends_the_caller_s_wait() -> None:
    def source() -> Iterator[int]:
        yield 1
        raise SystemExit(3)

    seen = []
    with pytest.raises(SystemExit):
        for item, _ in read_ahead(source(), str, depth=2):
            seen.append(item)
    assert seen == [1]
    assert _threads() == []


def test_closing_the_reader_mid_scan_stops_its_read_ahead_first(six_scene_video: MadeVideo) -> None:
    reader = VideoReader(six_scene_video.path)
    scenes = scan_scenes(
        reader,
        SceneOptions(scan=ScanMode.FULL),
        1.0,
        stop=threading.Event(),
        on_time=lambda _: None,
    )
    first = next(scenes)
    assert first.scene.index == 0
    assert _threads() == ["read-ahead"]  # decoding on while the caller holds the scan
    reader.close()
    assert _threads() == []
    scenes.close()
