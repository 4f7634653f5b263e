"""Decode ahead: iterate frames and prepare each in a thread of their own while the caller
works on the ones before.

The full scan decodes (FFmpeg's frame threads), scales each frame down and runs the cut
detectors on it. The detectors are Python and run one frame at a time: on 16 cores they
held the scan to 0.64 of the decoder's speed (`bench/results/scenes-real-2026-11-26.md`).
With the decoding and scaling in a thread of their own, the detectors run while the next
frames are decoded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class _End:
    """The thread is done: ``error`` is what ended it, None at the end of the items."""

    error: BaseException | None


@dataclass(frozen=True)
class _Item(Generic[T, U]):
    item: T
    prepared: U


def read_ahead(
    items: Iterator[T], prepare: Callable[[T], U], *, depth: int
) -> Generator[tuple[T, U], None, None]:
    """Yield ``(item, prepare(item))`` for each of ``items``, in order, produced by a thread
    of their own up to ``depth`` items ahead of the caller.

    What iterating ``items`` or ``prepare`` raises is raised here, after the items before
    it. While the caller holds the generator unfinished, the thread goes on reading up to
    ``depth`` items ahead: whatever ``items`` reads (a decoder) must stay open until the
    generator is closed. Closing it (or dropping it) stops the thread and waits for it.
    ``VideoReader.read_ahead`` ties one to its reader: closing the reader closes it first.

    Args:
        items: Iterated in the thread only.
        prepare: Called in the thread on each item.
        depth: Items produced ahead at most (memory: each is a decoded frame).
    """
    ready: queue.Queue[_Item[T, U] | _End] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        error: BaseException | None = None
        try:
            for item in items:
                if stop.is_set():
                    break
                ready.put(_Item(item, prepare(item)))
        except BaseException as exc:  # handed to the caller, who raises it
            error = exc
        finally:
            ready.put(_End(error))

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    ended = False
    try:
        while True:
            got = ready.get()
            if isinstance(got, _End):
                ended = True
                if got.error is not None:
                    raise got.error
                return
            yield got.item, got.prepared
    finally:
        if not ended:
            stop.set()
            # Take what it has put, so that it reaches the stop flag and says it ended.
            while not isinstance(ready.get(), _End):
                pass
        thread.join()
