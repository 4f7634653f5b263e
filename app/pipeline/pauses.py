"""Decide where in a scene a description can be heard without covering dialogue.

The rule: the *free windows* of a scene ``[s, e)`` are the maximal parts of it that no
speech interval overlaps. A scene is described in its earliest free window that lasts at
least ``min_gap`` seconds; the description starts where that window starts (never before
``s``) and carries the window's end (never after ``e``), so descriptions of different
scenes never overlap. Speech intervals may overlap each other, arrive unsorted, or run past
the end of the video; they are merged and clipped first. A window that touches a scene
boundary counts in full, up to that boundary. Without speech information (``None``) the
whole scene is the window, whatever its length.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

from app.pipeline.types import Interval, Scene

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


class PauseFinder:
    """Finds the free window of each scene against a fixed set of speech intervals.

    Args:
        speech: When someone speaks, or None when unknown (every scene is then free).
        min_gap: Shortest usable window, seconds.
    """

    def __init__(self, speech: Sequence[Interval] | None, min_gap: float) -> None:
        if min_gap < 0:
            raise ValueError("min_gap must be >= 0 seconds")
        self.min_gap = min_gap
        self._speech = None if speech is None else merge_intervals(speech)
        self._ends = [] if self._speech is None else [i.end for i in self._speech]

    def window(self, scene: Scene) -> Interval | None:
        """The earliest free window of ``scene`` of at least ``min_gap`` s, or None."""
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
