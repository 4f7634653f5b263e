"""Find cuts between shots with PySceneDetect's detectors, fed one decoded frame at a time.

The detectors run on small copies of the frames that the decoder hands out, so scene
detection and frame grabbing share a single decoding pass (see ``app.pipeline.frames``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scenedetect import FrameTimecode
from scenedetect.common import Timecode
from scenedetect.detector import SceneDetector
from scenedetect.detectors import (
    AdaptiveDetector,
    ContentDetector,
    HashDetector,
    HistogramDetector,
    ThresholdDetector,
)

from app.registry import Registry

logger = logging.getLogger(__name__)

_MICROSECOND = Fraction(1, 1_000_000)


def adaptive_detector(threshold: float | None, min_len: float) -> SceneDetector:
    if threshold is None:
        return AdaptiveDetector(min_scene_len=min_len)
    return AdaptiveDetector(adaptive_threshold=threshold, min_scene_len=min_len)


def content_detector(threshold: float | None, min_len: float) -> SceneDetector:
    if threshold is None:
        return ContentDetector(min_scene_len=min_len)
    return ContentDetector(threshold=threshold, min_scene_len=min_len)


def hash_detector(threshold: float | None, min_len: float) -> SceneDetector:
    if threshold is None:
        return HashDetector(min_scene_len=min_len)
    return HashDetector(threshold=threshold, min_scene_len=min_len)


def histogram_detector(threshold: float | None, min_len: float) -> SceneDetector:
    if threshold is None:
        return HistogramDetector(min_scene_len=min_len)
    return HistogramDetector(threshold=threshold, min_scene_len=min_len)


def fades_detector(threshold: float | None, min_len: float) -> SceneDetector:
    """ThresholdDetector: cuts on fades to and from black."""
    # The cut goes in the middle of the dark run (fade_bias 0): where one shot hands over
    # to the next; the frame one second later is then past a typical one-second fade-in.
    if threshold is None:
        return ThresholdDetector(min_scene_len=min_len)
    return ThresholdDetector(threshold=threshold, min_scene_len=min_len)


DetectorFactory = Callable[[float | None, float], SceneDetector]

DETECTORS: Registry[DetectorFactory] = Registry(
    "scene detector",
    {
        "adaptive": "app.pipeline.scenes:adaptive_detector",
        "content": "app.pipeline.scenes:content_detector",
        "hash": "app.pipeline.scenes:hash_detector",
        "histogram": "app.pipeline.scenes:histogram_detector",
        "threshold": "app.pipeline.scenes:fades_detector",
    },
)
"""Detectors by name, each a factory ``(threshold, min_scene_len)``. ``adaptive`` ranks first
for F1 in PySceneDetect's own benchmark. A new detector: a factory (here or in a module of its
own) and a line here."""


@dataclass(frozen=True)
class SceneOptions:
    """How cuts are detected."""

    detector: str = "adaptive"
    """Name of the main detector, one of ``DETECTORS``."""
    threshold: float | None = None
    """The detector's own threshold; None keeps PySceneDetect's default for it."""
    min_scene_len: float = 0.6
    """Seconds that must pass after a cut before another one is accepted."""
    fades: bool = True
    """Also cut on fades to and from black (ThresholdDetector beside the main detector)."""
    analysis_width: int = 256
    """Frames are scaled to this width before detection (0 keeps full size)."""
    skip_nonref_frames: bool = True
    """Decode only the frames other frames refer to (``app.pipeline.video``): cuts and the
    chosen frames stay within two frames of exact, decoding and detection do less work."""
    decode_device: str = "cpu"
    """``cpu``, or ``cuda`` / ``cuda:N`` to decode with the GPU's video decoder (NVDEC)."""

    def __post_init__(self) -> None:
        DETECTORS.check(self.detector)


class CutDetector:
    """Feeds frames to the configured detectors and reports each new cut once.

    Cuts are reported a few frames late (the detectors look ahead), always in increasing
    order; a cut closer than ``min_scene_len`` to the previous one is dropped.
    """

    def __init__(self, options: SceneOptions, frame_rate: Fraction) -> None:
        self.options = options
        self._rate = frame_rate
        factory = DETECTORS.load(options.detector)
        self._detectors = [factory(options.threshold, options.min_scene_len)]
        if options.fades and options.detector != "threshold":
            self._detectors.append(fades_detector(None, options.min_scene_len))
        self._last_cut = 0.0

    def _timecode(self, seconds: float) -> FrameTimecode:
        return FrameTimecode(
            Timecode(pts=round(seconds * 1_000_000), time_base=_MICROSECOND), self._rate
        )

    def _accept(self, found: list[FrameTimecode]) -> list[float]:
        cuts: list[float] = []
        for timecode in sorted(found, key=lambda t: t.seconds):
            cut = timecode.seconds
            if cut - self._last_cut >= self.options.min_scene_len:
                cuts.append(cut)
                self._last_cut = cut
            else:
                logger.debug("cut at %.3f s dropped: too close to %.3f s", cut, self._last_cut)
        return cuts

    def feed(self, time: float, small_bgr: np.ndarray) -> list[float]:
        """Process one frame; returns the cut times (seconds) confirmed by it."""
        timecode = self._timecode(time)
        found: list[FrameTimecode] = []
        for detector in self._detectors:
            found.extend(detector.process_frame(timecode, small_bgr))
        return self._accept(found)

    def finish(self, end_time: float) -> list[float]:
        """Flush the detectors at the end of the video; returns any last cuts."""
        timecode = self._timecode(end_time)
        found: list[FrameTimecode] = []
        for detector in self._detectors:
            found.extend(detector.post_process(timecode))
        return [cut for cut in self._accept(found) if cut < end_time]
