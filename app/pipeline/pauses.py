"""Decide where in a scene a description can be heard without covering dialogue.

The rule: the *free windows* of a scene ``[s, e)`` are the maximal parts of it that no
speech interval overlaps. A scene is described in its earliest free window that lasts at
least ``min_gap`` seconds; the description starts where that window starts (never before
``s``) and carries the window's end (never after ``e``), so descriptions of different
scenes never overlap. Speech intervals may overlap each other, arrive unsorted, or run past
the end of the video; they are merged and clipped first. A window that touches a scene
boundary counts in full, up to that boundary. Without speech information (``None``) the
whole scene is the window, whatever its length.

Speech can also arrive while the video is scanned (``SpeechTrack``, fed by a detector in
another thread): a scene's window is then decided once the speech under it is known.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Sequence

from app.pipeline.types import Interval, Scene, StopSignal

# Seconds of float slack when comparing a window with ``min_gap``: cut times come from
# frame timestamps and a 2.0 s pause measured between frames can read 1.9999999.
_EPSILON = 1e-6


def merge_intervals(intervals: Iterable[Interval], gap: float = 0.0) -> list[Interval]:
    """Sort intervals, drop empty ones, and join those that overlap or lie <= ``gap`` s apart."""
    merged: list[Interval] = []
    for item in sorted(i for i in intervals if i.end > i.start):
        if merged and item.start <= merged[-1].end + gap:
            if item.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, item.end)
        else:
            merged.append(item)
    return merged


class SpeechTrack:
    """Speech intervals that arrive over time, from a detector running in another thread.

    The detector ``add``s intervals with how far it has listened and ``finish``es, with its
    error if it failed; readers ``wait`` until the speech before a time is known.
    """

    def __init__(self, known: Iterable[Interval] = ()) -> None:
        """Start with ``known`` intervals (e.g. from subtitles) and nothing listened to."""
        self._condition = threading.Condition()
        self._intervals = merge_intervals(known)
        self._version = 0
        self._known_until = 0.0
        self._finished = False
        self._error: BaseException | None = None

    def add(self, intervals: Iterable[Interval], known_until: float) -> None:
        """Record new speech; all speech before ``known_until`` seconds is now known."""
        new = list(intervals)
        with self._condition:
            if new:
                self._intervals = merge_intervals([*self._intervals, *new])
                self._version += 1
            self._known_until = max(self._known_until, known_until)
            self._condition.notify_all()

    def finish(self, error: BaseException | None = None) -> None:
        """No more speech will come (the detector ended, or failed with ``error``)."""
        with self._condition:
            self._finished = True
            self._error = error
            self._condition.notify_all()

    @property
    def error(self) -> BaseException | None:
        """What the detector failed with, if it did."""
        with self._condition:
            return self._error

    def wait(self, until: float, stop: StopSignal, poll: float = 0.5) -> bool:
        """Block until the speech before ``until`` seconds is known.

        Returns:
            True when it is; False if ``stop`` was set first (checked every ``poll`` s).

        Raises:
            The detector's error, if it failed before getting that far.
        """
        with self._condition:
            while self._known_until < until and not self._finished:
                if stop.is_set():
                    return False
                self._condition.wait(poll)
            if self._known_until < until and self._error is not None:
                raise self._error
            return True

    def snapshot(self) -> tuple[int, list[Interval]]:
        """A version number that changes with every addition, and the merged intervals."""
        with self._condition:
            return self._version, self._intervals


class PauseFinder:
    """Finds the free window of each scene against the speech intervals.

    Args:
        speech: When someone speaks: fixed intervals, a ``SpeechTrack`` still being filled
            (call ``window`` only once the track is known up to the scene's end), or None
            when unknown (every scene is then free).
        min_gap: Shortest usable window, seconds.
    """

    def __init__(self, speech: Sequence[Interval] | SpeechTrack | None, min_gap: float) -> None:
        if min_gap < 0:
            raise ValueError("min_gap must be >= 0 seconds")
        self.min_gap = min_gap
        self._track: SpeechTrack | None = None
        self._version = -1
        self._speech: list[Interval] | None = None
        if isinstance(speech, SpeechTrack):
            self._track = speech
        elif speech is not None:
            self._speech = merge_intervals(speech)
        self._ends = [] if self._speech is None else [i.end for i in self._speech]

    def ready(self, scene: Scene, stop: StopSignal) -> bool:
        """Wait until the speech under ``scene`` is known (at once without a track).

        Returns False if ``stop`` was set first; raises the track's detector error.
        """
        return self._track is None or self._track.wait(scene.end, stop)

    def _refresh(self) -> None:
        """Take the intervals the track holds now, if they changed."""
        assert self._track is not None
        version, speech = self._track.snapshot()
        if version != self._version:
            self._version, self._speech = version, speech
            self._ends = [i.end for i in speech]

    def window(self, scene: Scene) -> Interval | None:
        """The earliest free window of ``scene`` of at least ``min_gap`` s, or None."""
        if self._track is not None:
            self._refresh()
        if self._speech is None:
            return Interval(scene.start, scene.end)
        cursor = scene.start
        # First speech interval that ends after the scene starts.
        for speech in self._speech[bisect.bisect_right(self._ends, scene.start) :]:
            if speech.start >= scene.end:
                break
            if speech.start - cursor >= self.min_gap - _EPSILON:
                return Interval(cursor, speech.start)
            cursor = max(cursor, speech.end)
            if cursor >= scene.end:
                return None
        if scene.end - cursor >= self.min_gap - _EPSILON:
            return Interval(cursor, scene.end)
        return None
