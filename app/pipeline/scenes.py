"""Find cuts between shots with PySceneDetect's detectors, fed one decoded frame at a time.

The detectors run on small copies of the frames that the decoder hands out, so scene
detection and frame grabbing share a single decoding pass (see ``app.pipeline.frames``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from typing import Any

import cv2
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
from scenedetect.stats_manager import StatsManager

from app.registry import Registry

logger = logging.getLogger(__name__)

_MICROSECOND = Fraction(1, 1_000_000)


class _QuickScore(ContentDetector):
    """ContentDetector's frame score in two OpenCV calls per frame instead of a dozen NumPy
    passes: the sums of absolute differences of hue, saturation and value
    (``cv2.absdiff``, ``cv2.sumElems``) are the same integers as the library's, so the
    score is the same number (``tests/test_scenes.py`` checks it against the library's own
    on every frame). On many cores the detectors, on one, bound the scan: this was about
    0.2 of the 0.34 ms AdaptiveDetector took per 256x144 frame. With an edge weight or a
    stats manager the library's own code runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_hsv: np.ndarray | None = None

    def _calculate_frame_score(self, timecode: FrameTimecode, frame_img: np.ndarray) -> float:
        weights = self._weights
        if weights.delta_edges != 0.0 or self.stats_manager is not None:
            return float(super()._calculate_frame_score(timecode, frame_img))
        hsv = cv2.cvtColor(frame_img, cv2.COLOR_BGR2HSV)
        last, self._last_hsv = self._last_hsv, hsv
        if last is None:
            return 0.0
        pixels = float(hsv.shape[0] * hsv.shape[1])
        hue, sat, lum, _ = cv2.sumElems(cv2.absdiff(hsv, last))
        components = (hue / pixels, sat / pixels, lum / pixels, 0.0)
        # As the library sums them, in this order.
        return sum(
            component * weight for component, weight in zip(components, weights, strict=True)
        ) / sum(abs(weight) for weight in weights)


class QuickContentDetector(_QuickScore, ContentDetector):
    """ContentDetector with its frame score computed faster (``_QuickScore``)."""


class QuickAdaptiveDetector(_QuickScore, AdaptiveDetector):
    """AdaptiveDetector with its frame score computed faster (``_QuickScore``)."""


def adaptive_detector(threshold: float | None, min_len: float) -> SceneDetector:
    if threshold is None:
        return QuickAdaptiveDetector(min_scene_len=min_len)
    return QuickAdaptiveDetector(adaptive_threshold=threshold, min_scene_len=min_len)


def content_detector(threshold: float | None, min_len: float) -> SceneDetector:
    if threshold is None:
        return QuickContentDetector(min_scene_len=min_len)
    return QuickContentDetector(threshold=threshold, min_scene_len=min_len)


def hash_detector(threshold: float | None, min_len: float) -> SceneDetector:
    if threshold is None:
        return HashDetector(min_scene_len=min_len)
    return HashDetector(threshold=threshold, min_scene_len=min_len)


def histogram_detector(threshold: float | None, min_len: float) -> SceneDetector:
    if threshold is None:
        return HistogramDetector(min_scene_len=min_len)
    return HistogramDetector(threshold=threshold, min_scene_len=min_len)


def brightness(frame: np.ndarray) -> float:
    """The mean of a frame's pixels (0-255): the number ``numpy.mean`` gives, since OpenCV
    sums each channel exactly (integers, as NumPy's float64 sum of them is), about twenty
    times faster on a 256x144 frame and outside the GIL. Up to four channels."""
    return sum(cv2.sumElems(frame)) / frame.size


class _FrameMean(StatsManager):
    """ThresholdDetector reads a frame's mean from its stats manager where one holds it, and
    computes it with ``numpy.mean`` otherwise: this one holds the mean of the frame at hand,
    computed with ``brightness`` (the same number), and keeps nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.mean = 0.0

    def metrics_exist(self, timecode: int | FrameTimecode, metric_keys: Iterable[str]) -> bool:
        return True

    def get_metrics(self, timecode: int | FrameTimecode, metric_keys: Iterable[str]) -> list[Any]:
        return [self.mean]


class FadesDetector(ThresholdDetector):
    """ThresholdDetector that counts a dark start as the start of a shot, not a fade.

    PySceneDetect's detector starts "faded out" when the first frame is dark, so a film
    that opens with a fade-in from black gets a cut in the middle of that fade (seen at
    0.8 s on an open movie). Here the detector always starts "in" a shot: only a fade out
    and back in counts, so fades through black between shots are still cuts. It takes each
    frame's mean from ``brightness`` (``_FrameMean``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mean = _FrameMean()
        self.stats_manager: StatsManager | None = self._mean

    def process_frame(self, timecode: FrameTimecode, frame_img: np.ndarray) -> list[FrameTimecode]:
        first = not self.processed_frame
        self._mean.mean = brightness(frame_img)
        cuts = super().process_frame(timecode, frame_img)
        if first:
            self.last_fade["type"] = "in"
        return cuts


def fades_detector(threshold: float | None, min_len: float) -> SceneDetector:
    """ThresholdDetector: cuts on fades to and from black (``FadesDetector``)."""
    # The cut goes in the middle of the dark run (fade_bias 0): where one shot hands over
    # to the next; the frame one second later is then past a typical one-second fade-in.
    if threshold is None:
        return FadesDetector(min_scene_len=min_len)
    return FadesDetector(threshold=threshold, min_scene_len=min_len)


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


class ScanMode(StrEnum):
    """How much of the video is decoded to find its cuts."""

    KEYFRAMES = "keyframes"
    """Decode the keyframes, then fully only the stretches where a cut may lie
    (``app.pipeline.scan``); each scene's frame comes from a short decode."""
    FULL = "full"
    """Decode every (reference) frame once and run the detectors on all of them."""


@dataclass(frozen=True)
class KeyframeRule:
    """What the keyframe scan does with each group of pictures (a keyframe to the next).

    It is decoded fully when it is the last, when the encoder coded a frame in it as intra
    (``GroupOfPictures.intra``: it saw a scene change there) or, where that is unknown, when
    a packet in it is a ``spike``, when it is longer than ``longest_gop``, or when its
    keyframes differ by ``threshold`` or more without showing a clean cut
    (``cut_threshold``, ``cut_colour``, ``cut_ratio``, ``still_ratio``, ``dark``,
    ``fade_step``, ``late_run``, ``late_key``, ``frozen_run``) or without the stream
    telling its intra frames; a clean cut where the stream tells them is taken as it is,
    on the second keyframe. Groups whose keyframes differ less are skipped: no cut lies in
    them, unless the encoder keyed the second for a scene change
    (``GroupOfPictures.scene_change``) or they are dark. So is a group the encoder ended by
    the clock with no intra frame inside (``GroupOfPictures.clock``: it saw no scene change
    there) and a keyframe interval of ``clock_frames`` or more, unless a keyframe is
    ``dark`` or fading or the keyframes differ like a cut (``cut_threshold`` and
    ``cut_colour``, the threshold alone between grey keyframes, or ``clock_threshold`` and
    ``clock_colour``: a cut may fall on the clock's keyframe). The numbers come from
    ``bench/scenes.py`` and the real clips of ``bench/results/keyframe-bound-2026-11-27.md``.
    """

    threshold: float = 10.0
    """The detector's content metric (mean HSV difference, 0-255, PySceneDetect's
    ``content_val``) between a keyframe and the next at or above which a cut may lie
    between them. Permissive: ContentDetector cuts at 27 between two adjacent frames."""
    cut_threshold: float = 27.0
    """A keyframe at least this different from the one before (ContentDetector's default
    threshold) may be taken as a cut without decoding the frames between them, if also
    ``cut_colour`` apart, ``cut_ratio`` times the motion of both shots, and neither
    keyframe is ``dark``."""
    cut_colour: float = 0.7
    """...and if their colours differ by this much (Bhattacharyya distance of hue-saturation
    histograms, 0-1): a shot that zooms or pans changes its structure between keyframes
    seconds apart, much less its colours (0.60 for a five-second zoom of the bench video,
    0.74 and more at its cuts)."""
    cut_ratio: float = 3.0
    """How many times the content difference between two adjacent frames right after each
    keyframe the keyframes' difference must be (AdaptiveDetector's default ratio)."""
    still_ratio: float = 30.0
    still_share: float = 0.75
    """A keyframe whose colours do not differ like a cut is still taken as a clean cut where
    both shots hold still around it, and the encoder keyed it for a scene change in the
    first ``still_share`` of its keyframe interval (``GroupOfPictures.interval_share``):
    the keyframes differ by ``cut_threshold`` or more and by ``still_ratio`` times the
    motion right after either. A shot that moves between its keyframes (a camera move in
    Big Buck Bunny: 24 apart, 27 times the motion, keyed 86 % into the interval; a zoom of
    the bench video: 16 times) is decoded. Cuts between shots of one set (two of Big Buck
    Bunny's, colours 0.48 and 0.61 apart: 45-99 times the motion) are taken. Replayed over
    the keyframe facts of 27 clips (``keyframe-bound-2026-11-27.md``, session 21): 17
    cuts taken, none wrong; the nearest group without a cut at 16 times."""
    dark: float = 24.0
    """A keyframe darker than this (mean pixel, 0-255; twice ThresholdDetector's 12) may
    be in a fade: the groups on both sides of it are decoded, however alike the keyframes
    (two black keyframes may hold a shot that fades in and out between them)."""
    fade_step: float = 2.0
    """A keyframe whose next frames brighten or darken steadily, by this much a frame on
    average (mean pixel, 0-255), lies in a fade: not taken as a clean cut, its groups are
    decoded. In the Sintel trailer (x264, scenes-real-2026-11-26.md) a keyframe 3 a frame
    into a fade to black looked like a clean cut after one in a shot clearing from fog, and
    in a 29.97 fps advert one 7 a frame into a flash of light did; at the cuts of Big Buck
    Bunny the frames after the keyframe move 0.3 at most, in the bench video's moving
    shots 1 at most."""
    late_run: int = 3
    late_size: float = 1.5
    late_key: float = 0.2
    """A clean cut is not taken on a keyframe when the ``late_run`` packets right before it
    are each at least ``late_size`` times the group's upper quartile, or each at least
    ``late_key`` times the keyframe's own packet: the encoder keyed the cut late and coded
    the new shot's first frames as big, mostly intra P-frames (x264 on a grainy shot of the
    bench video, four frames late: in a shot that busy they stand out of the group by 1.4x
    only, but cost 0.30-0.53 of the keyframe, where the frames before the 16 clean cuts
    taken on five clips cost 0.11 of it at most: Big Buck Bunny in three encodings, a film
    trailer and the bench video); the group is decoded. A single
    big packet (a flash, a source's periodic quality refresh) does not count."""
    frozen_run: int = 5
    frozen_bytes: int = 64
    frozen_key: float = 0.02
    """Nor is it taken when the group's last ``frozen_run`` packets or more each cost under
    ``frozen_bytes`` and under ``frozen_key`` of the keyframe's own (a frame that repeats
    the one before: x264 codes one in 13-25 bytes, x265 in 40-53), after a bigger one past
    the first few: the picture changed inside the group and then stood still, and what it
    changed to, black or a still title, the keyframes do not show. The Joker trailer in
    x264 veryfast coded a cut to a second of black (14-25-byte P-frames, the keyframe after
    it 10,977 bytes) and one to a title card (a 4,337-byte P-frame, then 13-15 bytes) so,
    and x265 veryfast the title card (40-53 bytes, the keyframe 4,250): each cut was taken
    on the keyframe after it, 0.5-0.8 s late, and missed. Without ``frozen_bytes`` the
    quiet end of a shot of Big Buck Bunny (70-982 bytes before a keyframe of 125,151)
    counted too. Where keyframes are small (under 3,200 bytes: small pictures) the bound
    falls under what a repeated frame costs, and such a tail is not seen."""
    spike: float = 2.0
    """Where the stream does not say which frames its encoder coded as intra (a codec other
    than H.264 and HEVC, or no such frame anywhere in it), a packet at least this many times
    the group's upper quartile (``GroupOfPictures.spike``) has the group decoded: it may be
    a cut the encoder put no keyframe on. Flashes and quality pulses make such packets too,
    so on those streams much more is decoded."""
    longest_gop: float = 12.0
    """Seconds: a longer group may hold a cut and a return to the first shot (A-B-A) that
    the keyframes cannot show. x264's default keyframe interval is 250 frames (10 s)."""
    clock_frames: int = 100
    """A group the encoder ended by the clock is skipped as above only where its keyframe
    interval is at least this many frames: a cut after a shot longer than that falls on a
    clock keyframe about once in that many, and one between shots of alike colours there is
    missed (a few in a thousand cuts at 100 frames, by that reckoning). x264's default
    (250) qualifies. A streaming encode keyed every 2 s with scene-cut detection on (48
    frames) has its groups judged like any other: Big Buck Bunny so encoded went from 14 %
    to 84 % decoded fully (the full scan, then), the same cuts. An all-intra one (1), whose
    every frame is such a keyframe, lost every cut before this (``scan.SHORT_GROUP``)."""
    clock_threshold: float = 54.0
    clock_colour: float = 0.35
    """Keyframes at least ``clock_threshold`` apart (twice ``cut_threshold``) and
    ``clock_colour`` in colour (half ``cut_colour``) have the group the clock ended
    decoded: a cut between shots of alike colours may lie in it or on its end. In the
    keyframe facts of 37 clips and encodings (``keyframe-bound-2026-11-27.md``, session
    22), of the groups that the rule above skips, the four with a cut inside or on the end
    (x264 and x265 veryfast with keyint 120, which keyed no cut there) differ by 66-76 and
    0.53-0.67; the fifteen without one by 48.6 at most where their colours differ by 0.35
    or more (camera moves of Big Buck Bunny), and one by 70 with colours 0.09 (a camera
    move over a street, 10 s between keyframes)."""
    lookahead: float = 0.25
    """Seconds decoded past the end of a stretch: the detectors confirm a cut a few frames
    after it."""
    most_refined: float = 0.7
    """Share of the video to decode fully above which the full scan is used instead (below
    1, a codec other than H.264 and HEVC goes to the full scan at once: it does not tell
    which frames its encoder coded as intra, and the keyframe scan never paid on one): the
    keyframe pass, the seeks and the scene frames no stretch decoded cost more than they
    save. ``bench/scenes.py`` (CPU s, this 2-core machine, scenes-keyframes-2026-11-26.md,
    scenes-real-2026-11-26.md): at 38-67 % decoded fully the keyframe scan costs less than
    the full scan, at 72-77 % as much or a little more. The keyframe pass stops as soon as
    more than this share of what it has seen needs it: from a third of the video on where
    the stream tells its intra frames, from a tenth on where it does not (VP9, AV1,
    scene-cut detection off); what it saw is then scanned as planned, the rest in full."""

    def __post_init__(self) -> None:
        if self.threshold < 0 or self.longest_gop <= 0 or self.late_run < 1 or self.spike <= 1:
            raise ValueError(
                "keyframe threshold must be >= 0, longest GOP > 0, late run >= 1, spike > 1"
            )
        if self.fade_step <= 0:
            raise ValueError("fade step must be > 0")
        if self.late_key <= 0:
            raise ValueError("late key must be > 0")
        if self.frozen_run < 1 or self.frozen_bytes < 1 or self.frozen_key <= 0:
            raise ValueError("frozen run and frozen bytes must be >= 1, frozen key > 0")
        if self.clock_threshold < 0 or not 0 <= self.clock_colour <= 1:
            raise ValueError("clock threshold must be >= 0 and clock colour in [0, 1]")
        if self.still_ratio <= 0 or not 0 <= self.still_share <= 1:
            raise ValueError("still ratio must be > 0 and still share in [0, 1]")
        if self.clock_frames < 1:
            raise ValueError("clock frames must be >= 1")
        if self.lookahead < 0 or not 0 <= self.most_refined <= 1:
            raise ValueError("lookahead must be >= 0 and most_refined in [0, 1]")


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
    scan: ScanMode = ScanMode.FULL
    """Decode every (reference) frame, or the keyframes and only the stretches that may
    hold a cut. Full by default: on the bench videos (``bench/scenes.py``) the keyframe scan
    finds the same cuts but costs more CPU time so far (see ``KeyframeRule.most_refined``)."""
    keyframes: KeyframeRule = field(default_factory=KeyframeRule)
    """How the keyframe scan picks the stretches it decodes fully."""
    workers: int = 1
    """Processes that scan every frame, each a chunk of the video at a time
    (``app.pipeline.chunks``): one runs the detectors on one core, so on a machine with
    more cores the full scan is faster in more. 1 scans in the caller's process."""
    chunk_length: float = 60.0
    """Seconds of video a worker scans at a time (about: the video is cut into equal
    chunks). Each costs ``chunks.warm_up`` seconds and a scene more."""

    def __post_init__(self) -> None:
        DETECTORS.check(self.detector)
        if self.workers < 1 or self.chunk_length <= 0:
            raise ValueError("scan workers must be >= 1 and the chunk length > 0")


class CutDetector:
    """Feeds frames to the configured detectors and reports each new cut once.

    Cuts are reported a few frames late (the detectors look ahead), always in increasing
    order; a cut closer than ``min_scene_len`` to the previous one is dropped.
    """

    def __init__(self, options: SceneOptions, frame_rate: Fraction) -> None:
        self.options = options
        self._rate = frame_rate
        self._detectors = self._build()
        self._last_cut = 0.0

    def _build(self) -> list[SceneDetector]:
        options = self.options
        factory = DETECTORS.load(options.detector)
        detectors = [factory(options.threshold, options.min_scene_len)]
        if options.fades and options.detector != "threshold":
            detectors.append(fades_detector(None, options.min_scene_len))
        return detectors

    @property
    def dark_below(self) -> float | None:
        """The mean pixel below which the fades detector counts a frame as faded out; None
        without one."""
        for detector in self._detectors:
            if isinstance(detector, ThresholdDetector):
                return float(detector.threshold)
        return None

    def reported(self, time: float) -> float:
        """``time`` as a cut at it is reported (to the detectors' microsecond clock)."""
        return self._timecode(time).seconds

    def add(self, time: float) -> list[float]:
        """Take a cut found without the detectors (``min_scene_len`` still applies);
        returns it, or nothing when it is too close to the last one."""
        return self._accept([self._timecode(time)])

    @property
    def last_cut(self) -> float:
        """Seconds: the last cut reported (0 before the first)."""
        return self._last_cut

    def restart(self, last_cut: float | None = None) -> None:
        """Forget the frames seen so far, to be fed frames that do not follow them.

        The new detectors are told where the last cut was (``last_cut``, found elsewhere, or
        the last one reported), as if they had seen every frame since: PySceneDetect's
        detectors otherwise count ``min_scene_len`` from the first frame they are fed and
        would drop a cut that close to it.
        """
        if last_cut is not None:
            self._last_cut = last_cut
        self._detectors = self._build()
        last_cut = self._timecode(self._last_cut)
        for detector in self._detectors:
            # The attribute each detector starts its min_scene_len count from.
            if isinstance(detector, AdaptiveDetector):
                detector._last_cut = last_cut
            elif isinstance(detector, ThresholdDetector):
                detector.last_scene_cut = last_cut
            flash_filter = getattr(detector, "_flash_filter", None)
            if flash_filter is not None:
                flash_filter._last_above = last_cut

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
