"""Choose, during the single decoding pass, the frame that represents each scene, and for
captioners that look at several, frames spread over the scene.

The frame of a scene is the one on screen ``offset`` seconds after the scene starts, or,
for a scene shorter than twice the offset, the one on screen at its middle. "On screen at
time t" means the last frame whose presentation time is at or before t, so the choice is
exact to the frame, whatever the keyframe layout or frame rate of the file.

The spread frames of a scene of length d, n of them, are the kept samples nearest to
``start + (i + 0.5) * d / n``. The scene's end is known only at its cut, so a bounded set of
samples is kept as it goes: every frame until the set is full, then every other one, and so
on, which leaves them evenly spaced over the scene so far whatever its length.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from app.pipeline.types import Scene

T = TypeVar("T")

#: Cut times come back from the detectors to the microsecond (``scenes.CutDetector``), frame
#: times do not: a frame this close to a cut or a target is at it.
TIME_TOLERANCE = 1e-6


@dataclass
class ClosedScene(Generic[T]):
    """A finished scene and the decoded frame chosen for it."""

    scene: Scene
    frame_time: float
    frame: T
    spread: list[tuple[float, T]] = field(default_factory=list)
    """Frames spread over the scene, ``(time, frame)`` in time order, when the selector was
    asked for more than one; fewer when the scene has fewer frames."""
    exact: bool = True
    """Whether ``frame`` is the frame on screen at the scene's target. False when that frame
    was let go before a cut of the scene was known (a fade's cut, reported when a long dark
    run ends): the caller decodes it again (``scan.FrameGrab``)."""


@dataclass(slots=True)
class _Held(Generic[T]):
    """A frame the selector holds, with the times of the frames pushed just before and after
    it (None: none yet): whether a frame was let go between it and a target is then known."""

    time: float
    frame: T
    before: float | None
    after: float | None = None


def frame_target(start: float, end: float | None, offset: float) -> float:
    """The time whose frame represents the scene ``[start, end)``.

    ``start + offset``, clamped to the middle of scenes shorter than ``2 * offset``;
    ``end`` is None while the scene's end is still unknown.
    """
    if end is None:
        return start + offset
    return start + min(offset, (end - start) / 2)


class FrameSelector(Generic[T]):
    """Keeps just enough decoded frames to pick each scene's frame once its cut is known.

    Frames are pushed in presentation order; cuts arrive a few frames late (detectors look
    ahead), so the last ``lookback`` frames are always kept. Of the current scene it keeps
    the frames up to ``start + offset`` until ``start + 2 * offset`` has left those last
    frames, then only the chosen one: memory does not grow with the length of the video. A
    cut that comes later than that (a fade's, reported when its dark run ends) may find the
    frame it needs let go: the scene is then marked not ``exact``, which each frame held
    knows from the frames pushed just before and after it.
    """

    def __init__(
        self, offset: float, lookback: int = 8, spread: int = 1, start: float = 0.0
    ) -> None:
        """Args:
        offset: Seconds into a scene of its frame.
        lookback: Frames always kept, for cuts that arrive late.
        spread: Frames per scene spread over it besides its frame; 1 keeps none.
        start: Where the current scene started (a scan that decodes part of the video
            pushes frames from a later time on).
        """
        if offset < 0:
            raise ValueError("frame offset must be >= 0 seconds")
        if spread < 1:
            raise ValueError("spread must be >= 1 frame")
        if lookback < 1:
            raise ValueError("lookback must be >= 1 frame")
        self.offset = offset
        self.lookback = lookback
        self.spread = spread
        self._start = start
        self._index = 0
        self._frames: deque[_Held[T]] = deque()
        self._pushed: float | None = None
        """The time of the last frame pushed."""
        # Evenly spaced samples of the current scene (and of what follows a cut not yet
        # known), for the spread frames; at most ``_capacity``, ``_spacing`` seconds apart.
        self._capacity = 4 * spread
        self._samples: list[tuple[float, T]] = []
        self._spacing = 0.0

    def push(self, time: float, frame: T) -> None:
        """Add the next decoded frame."""
        if self._frames and self._frames[-1].time == self._pushed:
            self._frames[-1].after = time
        self._frames.append(_Held(time, frame, before=self._pushed))
        self._pushed = time
        self._trim()
        if self.spread > 1:
            self._sample(time, frame)

    def _sample(self, time: float, frame: T) -> None:
        if self._samples and time - self._samples[-1][0] < self._spacing:
            return
        self._samples.append((time, frame))
        if len(self._samples) > self._capacity:
            self._samples = self._samples[::2]
            self._spacing = max(2 * self._spacing, self._samples[1][0] - self._samples[0][0])

    def _spread(self, end: float) -> list[tuple[float, T]]:
        """The samples nearest to ``spread`` times evenly spaced over ``[start, end)``."""
        samples = [(t, f) for t, f in self._samples if self._in_scene(t, end)]
        if self.spread == 1 or not samples:
            return []
        step = (end - self._start) / self.spread
        chosen: dict[float, T] = {}
        for i in range(self.spread):
            target = self._start + (i + 0.5) * step
            time, frame = min(samples, key=lambda sample: abs(sample[0] - target))
            chosen[time] = frame
        return sorted(chosen.items(), key=lambda item: item[0])

    def _trim(self) -> None:
        target = self._start + self.offset
        recent_from = max(0, len(self._frames) - self.lookback)
        best = self._best_index(target)
        # A scene shorter than twice the offset takes its middle frame, which lies in
        # [start, start + offset]: those frames are needed until that can no longer be, that
        # is until a cut before ``start + 2 * offset``, which comes up to ``lookback`` frames
        # late, can no longer be reported.
        short_possible = self._frames[recent_from].time <= self._start + 2 * self.offset
        window_from, window_to = self._start - TIME_TOLERANCE, target + TIME_TOLERANCE
        self._frames = deque(
            held
            for i, held in enumerate(self._frames)
            if i >= recent_from
            or i == best
            or (short_possible and window_from <= held.time < window_to)
        )

    def _best_index(self, target: float) -> int | None:
        """Index of the frame on screen at ``target`` within the current scene."""
        best = None
        for i, held in enumerate(self._frames):
            if held.time < self._start - TIME_TOLERANCE:
                continue
            if held.time <= target + TIME_TOLERANCE or best is None:
                best = i
            else:
                break
        return best

    def cut(self, time: float) -> ClosedScene[T] | None:
        """Close the current scene at a cut; returns it with its frame (None if it has none)."""
        closed = self._close(time)
        self._start = time
        self._frames = deque(held for held in self._frames if held.time >= time - TIME_TOLERANCE)
        # The new scene's samples start afresh from the frames kept since the cut (the last
        # ``lookback`` at least), not from the old scene's, whose spacing depends on how
        # long that scene ran: the choice is then the same wherever a scan started decoding
        # (``app.pipeline.chunks``).
        self._samples = []
        self._spacing = 0.0
        if self.spread > 1:
            for held in self._frames:
                self._sample(held.time, held.frame)
        return closed

    def finish(self, end: float) -> ClosedScene[T] | None:
        """Close the last scene at the end of the video."""
        closed = self._close(end)
        self._frames.clear()
        self._samples.clear()
        return closed

    def _close(self, end: float) -> ClosedScene[T] | None:
        target = frame_target(self._start, end, self.offset)
        candidates = [held for held in self._frames if self._in_scene(held.time, end)]
        if not candidates:
            return None
        chosen = candidates[0]
        for held in candidates:
            if held.time <= target + TIME_TOLERANCE:
                chosen = held
        if chosen.time <= target + TIME_TOLERANCE:
            # Right unless a frame pushed after it, at or before the target, was let go.
            exact = chosen.after is None or chosen.after > target + TIME_TOLERANCE
        else:
            # Right if no frame of the scene came before it: none at or before the target.
            exact = chosen.before is None or chosen.before < self._start - TIME_TOLERANCE
        scene = Scene(index=self._index, start=self._start, end=end)
        self._index += 1
        return ClosedScene(
            scene=scene,
            frame_time=chosen.time,
            frame=chosen.frame,
            spread=self._spread(end),
            exact=exact,
        )

    def _in_scene(self, time: float, end: float) -> bool:
        """Whether a frame at ``time`` lies in the current scene, were it to end at ``end``."""
        return self._start - TIME_TOLERANCE <= time < end - TIME_TOLERANCE
