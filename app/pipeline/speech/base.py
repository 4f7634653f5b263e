"""What every speech detector shares: options, the contract, and the streaming helpers."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from app.pipeline.pauses import merge_intervals
from app.pipeline.types import Interval

SAMPLE_RATE = 16_000
"""Rate in Hz at which audio is decoded and analysed (what Silero VAD expects)."""

Samples = npt.NDArray[np.float32]
"""Mono audio, 1-D float32 in [-1, 1]."""

AudioInput = Samples | Iterable[Samples]
"""All the audio at once, or consecutive chunks of any length."""


@dataclass(frozen=True)
class SpeechOptions:
    """How speech is told apart from the rest; durations in seconds.

    Attributes:
        threshold: Speech score (0..1) from which a frame is speech: Silero's probability, or
            for WebRTC the share of voiced 30 ms frames in the 150 ms around a frame.
        min_speech: Speech shorter than this is dropped (coughs, clicks, door slams).
        min_silence: Pauses shorter than this do not split speech; no narration fits in them.
        padding: Added before and after each stretch of speech, to keep narration off its edges.
    """

    threshold: float = 0.5
    min_speech: float = 0.25
    min_silence: float = 0.3
    padding: float = 0.05

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold}")
        for name in ("min_speech", "min_silence", "padding"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more seconds, got {getattr(self, name)}")


@dataclass(frozen=True)
class SpeechUpdate:
    """Speech found so far in a stream of audio."""

    intervals: list[Interval]
    """New speech intervals, sorted, none reported before."""
    known_until: float
    """Seconds from the first sample: all speech before this time has been reported."""


@runtime_checkable
class SpeechDetector(Protocol):
    """Anything that finds speech in mono float32 audio.

    Implementations are stateful while they run: use one instance per thread.
    """

    def stream(self, audio: AudioInput, sample_rate: int) -> Iterator[SpeechUpdate]:
        """Report speech as the audio is analysed, in seconds from the first sample."""
        ...

    def detect(self, audio: AudioInput, sample_rate: int) -> list[Interval]:
        """Return the sorted, non-overlapping speech intervals, in seconds from the first sample."""
        ...


class _Segments:
    """Cuts a stream of per-frame speech scores where the audio has been quiet long enough.

    A detector's decisions before such a cut cannot depend on what follows it, so each segment
    can be turned into intervals on its own. The last ``keep`` quiet frames before the cut
    also start the next segment: room for the padding before speech that resumes right after
    the cut, and for a detector whose score at a frame looks at the frames after it.
    """

    def __init__(self, quiet_frames: float, keep: int) -> None:
        self._needed = quiet_frames + keep
        self._keep = keep
        self._scores: list[float] = []
        self._start = 0
        self._quiet = 0

    def push(self, score: float, quiet: bool) -> tuple[int, list[float]] | None:
        """Add one frame's score; returns a finished segment (first frame, scores), if any."""
        self._scores.append(score)
        self._quiet = self._quiet + 1 if quiet else 0
        if self._quiet < self._needed:
            return None
        cut = len(self._scores) - self._keep
        segment = (self._start, self._scores[:cut])
        self._start += cut
        self._scores = self._scores[cut:]
        self._quiet = self._keep
        return segment

    def rest(self) -> tuple[int, list[float]]:
        """The frames since the last cut."""
        return self._start, self._scores


class StreamingDetector(ABC):
    """``detect`` for detectors that implement ``stream``.

    Args:
        options: Threshold and durations; defaults to ``SpeechOptions()``.
        split_after: Seconds of quiet after which the speech before is reported
            (``math.inf``: only at the end).
    """

    def __init__(self, options: SpeechOptions | None = None, *, split_after: float = 1.0) -> None:
        self.options = options or SpeechOptions()
        self.split_after = split_after

    @abstractmethod
    def stream(self, audio: AudioInput, sample_rate: int) -> Iterator[SpeechUpdate]:
        """Report speech as the audio is analysed; see ``SpeechDetector.stream``."""

    def detect(self, audio: AudioInput, sample_rate: int) -> list[Interval]:
        """Find speech; see ``SpeechDetector.detect``."""
        return [i for update in self.stream(audio, sample_rate) for i in update.intervals]


def quiet_segments(
    options: SpeechOptions, split_after: float, frame_seconds: float, lookahead: int = 0
) -> _Segments:
    """Segments cut after ``split_after`` s of quiet: longer than any pause the detectors
    bridge plus the padding on both sides, so cutting changes no interval."""
    seconds = max(split_after, options.min_silence + 2 * options.padding + 0.1)
    quiet = math.ceil(seconds / frame_seconds) if math.isfinite(seconds) else math.inf
    return _Segments(quiet, keep=lookahead + math.ceil(options.padding / frame_seconds) + 1)


def fixed_blocks(audio: AudioInput, size: int) -> Iterator[tuple[Samples, int]]:
    """Re-cut audio into blocks of exactly ``size`` samples, the last one padded with zeros.

    Yields:
        Each block and how many of its samples are real audio.
    """
    chunks = [audio] if isinstance(audio, np.ndarray) else audio
    pending = np.zeros(0, dtype=np.float32)
    for chunk in chunks:
        if chunk.ndim != 1:
            raise ValueError(f"audio must be mono and 1-D, got a chunk of shape {chunk.shape}")
        data = np.concatenate((pending, chunk.astype(np.float32, copy=False)))
        whole = data.size - data.size % size
        for start in range(0, whole, size):
            yield data[start : start + size], size
        pending = data[whole:]
    if pending.size:
        yield np.pad(pending, (0, size - pending.size)), pending.size


def runs_to_intervals(
    speech: npt.NDArray[np.bool_], frame_seconds: float, duration: float, options: SpeechOptions
) -> list[Interval]:
    """Turn per-frame speech flags into intervals: bridge short pauses, drop short bursts, pad."""
    edges = np.flatnonzero(np.diff(np.concatenate(([False], speech, [False])).astype(np.int8)))
    runs = [
        Interval(float(start * frame_seconds), float(min(end * frame_seconds, duration)))
        for start, end in zip(edges[::2], edges[1::2], strict=True)
    ]
    bridged = merge_intervals(runs, gap=options.min_silence)
    padded = (
        Interval(max(0.0, s.start - options.padding), min(duration, s.end + options.padding))
        for s in bridged
        if s.duration >= options.min_speech
    )
    return merge_intervals(padded)
