"""Find the scenes of a video and the frame that represents each: the full scan or the
keyframe-guided one (``SceneOptions.scan``).

The full scan decodes every (reference) frame once, runs the detectors on all of them and
keeps each scene's frame as it goes by (``app.pipeline.frames``).

The keyframe scan works coarse to fine. Encoders put keyframes at cuts, and a keyframe
decodes on its own, so:

1. one pass demuxes every packet and decodes only the keyframes (a few percent of a full
   decode), comparing each keyframe with the next with the detector's content metric;
2. a group of pictures (a keyframe to the next) is decoded fully, with the detectors
   running on every frame, only where a cut may lie (``KeyframeRule``): the keyframes
   differ, the encoder coded a frame inside as intra (it saw a scene change there; where
   the stream does not tell, a packet inside is a spike), the group is long, or it is the
   last one; neighbouring groups form one stretch, so a cut
   on the keyframe between them is seen with the frames before it. Where x264 or x265
   ended a group by the clock (``GroupOfPictures.clock``) it saw no scene change after
   its last intra frame: such a group is skipped, or its stretch stops once the frames
   after that intra frame are quiet (``Stretch.quiet_from``); the next stretch starts
   cold on the keyframe, so a cut exactly there between shots of like colours is missed;
3. each scene's frame is the one a stretch decoded when one did (every frame from before
   its target to after it); the others are decoded when asked for, from the keyframe
   before their target, or ahead of the scan where the scene lies between two cuts on
   keyframes (``_GrabsAhead``: beside a long stretch before it, not after).

The stretches are decoded several at once, on threads of the reader's
(``VideoReader.in_parallel``), each as if the scenes before it ended as the plan suggests;
one whose scenes before it ended otherwise (a cut found near its start, non-reference frames
no longer skipped) is decoded again, so the scenes and frames are those of one stretch
decoded after another (``_Stretches``). The first of them start while the keyframe pass
goes on, as soon as it has seen their groups (``_EarlyStretches``).

A stream that cannot guide it goes to the full scan at once: a codec that does not tell
which frames are intra (VP9, AV1...), x264 or x265 with scene-cut detection off
(``VideoReader.encoder_settings``: its keyframes fall by the clock), or a raw stream without
timestamps to seek by (``VideoReader.timed``). When the rule would
decode most of the video anyway, the full scan runs instead; when the
keyframe pass finds that out part-way (``KeyframeRule.most_refined``), it stops there, the
part it saw is scanned as planned and every frame after it is decoded. So is every frame
after a stretch that finds an abrupt cut inside a group the encoder coded without an intra
frame: that encoder did not key every scene change (``_unkeyed_cut``).
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import itertools
import logging
import math
import threading
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, wait
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from app.errors import VideoIncomplete, VideoTooLong
from app.pipeline.chunks import chunk_bounds, scan_in_chunks
from app.pipeline.frames import TIME_TOLERANCE, ClosedScene, FrameSelector, frame_target
from app.pipeline.letterbox import WHOLE_FRAME, Bars, PictureArea
from app.pipeline.scenes import CutDetector, KeyframeRule, ScanMode, SceneOptions, brightness
from app.pipeline.types import Scene, StopSignal
from app.pipeline.video import (
    INTRA_CODECS,
    KEYFRAME_FOLLOWERS,
    PARALLEL_DECODES,
    DecodedFrame,
    GroupOfPictures,
    KeyframePass,
    Picture,
    VideoReader,
    cores,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ScannedScene:
    """A scene found by a scan; its frame, where the scan did not keep it, is decoded when
    first asked for, or from ``prefetch`` on in the background."""

    def __init__(
        self,
        scene: Scene,
        *,
        frame: tuple[float, Picture] | None = None,
        grab: FrameGrab | None = None,
        reader: VideoReader | None = None,
        spread: tuple[Picture, ...] = (),
        grabbing: Future[Grabbed] | None = None,
    ) -> None:
        self.scene = scene
        self._frame = frame
        self._grab = grab
        self._reader = reader
        self._grabbing = grabbing
        """The decode of ``grab`` under way, where one was started (``prefetch``, or by the
        scan before the scene was found: ``_GrabsAhead``)."""
        self.spread = spread
        """Frames spread over the scene, in time order, for captioners that look at several
        (the full scan keeps them; the keyframe scan does not: its scenes have one frame)."""

    def prefetch(self) -> None:
        """Start decoding the frame in the background (``VideoReader.in_background``) where
        the scan did not keep it, for a caller that will ask for it once it has taken the
        next scenes: the decode then runs beside the scan and beside other scenes'. The
        frame is the one ``frame`` gives without it (``FrameGrab``), provided the scenes
        are taken in order."""
        if self._grab is not None and self._reader is not None and self._grabbing is None:
            self._grabbing = self._reader.in_background(self._grab)

    @property
    def decoding(self) -> bool:
        """Whether its frame is being decoded in the background (``prefetch``)."""
        return self._grabbing is not None and not self._grabbing.done()

    def frame(self) -> tuple[float, Picture] | None:
        """The frame on screen ``frame_offset`` into the scene (or at its middle) and its
        time; None when the scene holds no decodable frame. Asked for in the order of the
        scenes (``FrameGrab.settle``)."""
        if self._grab is not None:
            grabbed = self._grab() if self._grabbing is None else self._grabbing.result()
            self._frame = self._grab.settle(grabbed)
        self._grab = self._grabbing = None
        return self._frame


PREFETCH_DEPTH = 4
"""Scenes ``prefetched`` takes at most ahead of the one it hands out."""


def prefetched(items: Iterator[T], scene_of: Callable[[T], ScannedScene]) -> Iterator[T]:
    """``items`` in order, the frame of each one's scene prefetched as it comes
    (``ScannedScene.prefetch``); one whose frame is still being decoded is handed out once
    ``PREFETCH_DEPTH`` more have come, or at the end, so that its decode runs beside the
    scan rather than in its way. Where ``items`` raises, the ones that came before are
    handed out first."""
    waiting: collections.deque[T] = collections.deque()
    while True:
        try:
            item = next(items)
        except StopIteration:
            break
        except Exception:
            yield from waiting
            raise
        scene_of(item).prefetch()
        waiting.append(item)
        while waiting and (len(waiting) > PREFETCH_DEPTH or not scene_of(waiting[0]).decoding):
            yield waiting.popleft()
    yield from waiting


def content_difference(a: np.ndarray, b: np.ndarray) -> float:
    """PySceneDetect's ``content_val`` between two BGR frames: the mean absolute difference
    of hue, saturation and value, averaged (ContentDetector's default weights)."""
    hsv_a = cv2.cvtColor(a, cv2.COLOR_BGR2HSV).astype(np.int16)
    hsv_b = cv2.cvtColor(b, cv2.COLOR_BGR2HSV).astype(np.int16)
    return float(np.abs(hsv_a - hsv_b).mean())


@dataclass
class KeyframeLook:
    """What the keyframe pass saw of one keyframe and the frames right after it."""

    brightness: float
    """Mean of the keyframe's pixels, 0-255 (ThresholdDetector's metric)."""
    histogram: np.ndarray = field(repr=False)
    """Hue-saturation histogram of the keyframe inside its black bars (``colour_histogram``
    of ``area``)."""
    area: PictureArea = WHOLE_FRAME
    """The picture inside the video's black bars, as the keyframes up to the next one show
    them (``letterbox.Bars``): where ``histogram``, ``difference``, ``colour_distance`` and
    ``motion`` are measured (``_Looking``). ``brightness`` is the whole frame's, as
    ThresholdDetector sees it. A look is measured again inside new bars once, when the next
    keyframe comes, and never after: the plan's stretches, which read the look of the
    keyframe after them (``_quiet``), start only once the keyframe after that has come."""
    difference: float | None = None
    """Content difference to the next keyframe (inside the bars); None for the last one."""
    colour_distance: float | None = None
    """Bhattacharyya distance of the colour histograms to the next keyframe (inside the
    bars), 0-1."""
    motion: list[float] = field(default_factory=list)
    """Content differences between the adjacent frames shown right after the keyframe: how
    fast the shot moves there."""
    following: list[float] = field(default_factory=list)
    """Brightness of those frames, in order (after the keyframe's own)."""

    def fading(self, step: float) -> bool:
        """Whether the keyframe and the frames after it brighten or darken steadily, by
        ``step`` a frame on average (a frame may stand still, within half a step): a fade
        (``KeyframeRule.fade_step``)."""
        levels = [self.brightness, *self.following]
        changes = np.diff(levels)
        if len(changes) == 0:
            return False
        still = step / 2
        steady = bool(np.all(changes >= -still) or np.all(changes <= still))
        return steady and abs(levels[-1] - levels[0]) >= step * len(changes)


def colour_histogram(small: np.ndarray) -> np.ndarray:
    """A 16x8 hue-saturation histogram of a BGR frame, normalised to sum 1: it changes little
    while a shot moves or zooms, and much at a cut to another set or light."""
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    histogram = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
    return histogram / max(float(histogram.sum()), 1.0)


@dataclass(frozen=True)
class Stretch:
    """Groups of pictures in a row to be decoded fully."""

    start: float
    end: float
    last: bool
    """It reaches the end of the video."""
    quiet_from: float | None = None
    """The last intra frame of its final group, which the encoder ended by the clock
    (``GroupOfPictures.clock``): it saw no scene change after that frame. Once the frames
    past it (and past the frame of the scene it may start) are neither dark nor fading and
    their colours are not a cut apart from the next keyframe's, the rest is not decoded."""
    next_key: KeyframeLook | None = field(default=None, compare=False, repr=False)
    """The look of the keyframe after it, for ``quiet_from``."""


@dataclass(frozen=True)
class KeyframeCut:
    """A cut on a keyframe, seen from the keyframes and the frames right after them."""

    time: float


def _key(time: float) -> float:
    return round(time, 6)


def _clean_cut(
    group: GroupOfPictures, before: KeyframeLook, after: KeyframeLook, options: SceneOptions
) -> bool:
    """Whether the keyframes show a hard cut on the second one, as AdaptiveDetector would
    see it: a change well past ContentDetector's threshold, several times the motion of
    either shot, in colour too or between shots that hold still (``KeyframeRule.still_ratio``),
    between two frames that are neither dark nor fading (so it is no fade)."""
    rule = options.keyframes
    if before.difference is None or not after.motion:
        return False
    busy = max(float(np.mean(look.motion)) for look in (before, after) if look.motion)
    keyed_early = group.interval_share is not None and group.interval_share <= rule.still_share
    still = (
        keyed_early
        and before.difference >= rule.cut_threshold
        and before.difference >= rule.still_ratio * busy
    )
    return (
        (
            still
            or (
                _apart(before, rule.cut_threshold, rule.cut_colour)
                and before.difference >= rule.cut_ratio * busy
            )
        )
        and min(before.brightness, after.brightness) >= rule.dark
        and not any(look.fading(rule.fade_step) for look in (before, after))
    )


def _apart(look: KeyframeLook, threshold: float, colour: float) -> bool:
    """Whether a keyframe and the next differ by ``threshold`` or more in structure and by
    ``colour`` or more in colour: as much as two sides of a cut (``KeyframeRule.cut_threshold``
    and ``cut_colour``), or more than one shot's ends do (``clock_threshold`` and
    ``clock_colour``)."""
    return (
        look.difference is not None
        and look.difference >= threshold
        and look.colour_distance is not None
        and look.colour_distance >= colour
    )


GREY_SHARE = 0.8
"""Share of a keyframe's pixels inside its bars with almost no colour (saturation under 32
of 256, the lowest bin of ``colour_histogram``) from which it counts as grey (``_grey``):
0.83-0.92 for the keyframes of a black-and-white clip with a little colour, 0.01-0.27 for
most of a colour trailer's and 0.61 at most for the Sintel trailer's that are not black.
Those were measured over the whole frame, before bars were cropped; inside them a
letterboxed colour trailer's fall (the Sintel trailer's from 12 to 22 s, 0.24-0.27 to
0.01-0.05) and Nosferatu's stay at 0.95 or more."""


def _grey(look: KeyframeLook) -> bool:
    """Whether the keyframe is (nearly) grey, as a black-and-white film's are: its colour
    histogram cannot tell a cut from a change of light (``GREY_SHARE``)."""
    return float(look.histogram[:, 0].sum()) >= GREY_SHARE


def _keyed_late(group: GroupOfPictures, rule: KeyframeRule) -> bool:
    """Whether the last ``rule.late_run`` packets of the group are all big, for the group or
    next to the keyframe that ends it: the new shot began before that keyframe
    (``KeyframeRule.late_run``)."""
    sizes = group.sizes
    if len(sizes) <= rule.late_run:
        return False
    last = sizes[-rule.late_run :]
    usual = float(np.percentile(sizes, 75))
    if all(size >= rule.late_size * usual for size in last):
        return True
    key = group.next_key_size
    return key is not None and all(size >= rule.late_key * key for size in last)


def _froze(group: GroupOfPictures, rule: KeyframeRule) -> bool:
    """Whether the group's picture changed after the first frames past its keyframe, then
    stood still up to the next keyframe: its last ``rule.frozen_run`` packets or more each
    under ``rule.frozen_bytes`` and ``rule.frozen_key`` of the next keyframe's, a bigger
    one among the packets before them (``KeyframeRule.frozen_run``)."""
    key = group.next_key_size
    if key is None:
        return False
    later = group.sizes[KEYFRAME_FOLLOWERS:]
    limit = min(rule.frozen_bytes, rule.frozen_key * key)
    still = sum(1 for _ in itertools.takewhile(lambda size: size < limit, reversed(later)))
    return rule.frozen_run <= still < len(later)


def _long_clock(group: GroupOfPictures, rule: KeyframeRule) -> bool:
    """Whether the encoder ended ``group`` by the clock after ``rule.clock_frames`` frames or
    more (``GroupOfPictures.clock``, ``KeyframeRule.clock_frames``)."""
    return group.clock and len(group.sizes) + 1 >= rule.clock_frames


def _periodic_lengths(groups: list[GroupOfPictures]) -> set[float]:
    """Group lengths (seconds, to the hundredth) that say the encoder placed the keyframe
    by the clock, not at a cut: the longest (its keyframe interval) and any length shared
    by a quarter of the groups (a fixed GOP). Only a keyframe placed early can be taken as
    a cut on the keyframe itself."""
    return _periodic(Counter(round(group.duration, 2) for group in groups[:-1]), len(groups))


def _periodic(lengths: Counter[float], groups: int) -> set[float]:
    """``_periodic_lengths`` of ``groups`` groups whose lengths but the last's are counted
    in ``lengths``."""
    if not lengths:
        return set()
    periodic = {max(lengths)}
    periodic.update(
        length for length, count in lengths.items() if count >= 2 and count >= groups / 4
    )
    return periodic


def plan_keyframe_scan(
    groups: list[GroupOfPictures], looks: dict[float, KeyframeLook], options: SceneOptions
) -> list[Stretch | KeyframeCut]:
    """What the keyframe scan does between each keyframe and the next (``KeyframeRule``):
    nothing (no cut can lie there), take a cut on the next keyframe, or decode fully.

    Args:
        groups: Every group of pictures of the video, in order.
        looks: What the keyframe pass saw, by keyframe time (rounded to the microsecond).
        options: The scene options; ``options.keyframes`` is the rule.
    """
    return _plan(groups, looks, options, _periodic_lengths(groups))


def _plan(
    groups: list[GroupOfPictures],
    looks: dict[float, KeyframeLook],
    options: SceneOptions,
    periodic: set[float],
) -> list[Stretch | KeyframeCut]:
    rule = options.keyframes
    steps: list[Stretch | KeyframeCut] = []
    for index, group in enumerate(groups):
        last = index == len(groups) - 1
        look = looks.get(_key(group.start))
        after = None if last else looks.get(_key(groups[index + 1].start))
        if not (
            last
            or look is None
            or after is None
            or look.difference is None
            or (group.intra > 0 if group.intra is not None else group.spike >= rule.spike)
            or group.duration > rule.longest_gop
        ):
            # Keyframes alike skip the group, unless they are dark (black at both ends may
            # hold a whole shot faded in and out again) or the encoder keyed the second for
            # a scene change it saw: the frame before it was unlike it.
            dark = min(look.brightness, after.brightness) < rule.dark
            if look.difference < rule.threshold and not dark and not group.scene_change:
                continue
            # Ended by the clock with no intra frame inside: the encoder saw no scene change
            # in it. Skipped, unless a fade may hide in it or its keyframes differ like a cut
            # (a cut may fall on the clock's keyframe; between grey keyframes, whose colours
            # tell nothing, a difference past the threshold is enough: a light switched on
            # in a black-and-white shot, which x264 codes as a change of brightness), or
            # differ more than one shot does (``KeyframeRule.clock_threshold``).
            if (
                _long_clock(group, rule)
                and group.intra == 0
                and not dark
                and not any(end.fading(rule.fade_step) for end in (look, after))
                and not _apart(look, rule.cut_threshold, rule.cut_colour)
                and not (look.difference >= rule.cut_threshold and _grey(look) and _grey(after))
                and not _apart(look, rule.clock_threshold, rule.clock_colour)
            ):
                continue
            # Only where the encoder tells its intra frames: elsewhere a cut it put no
            # keyframe on may lie inside the group, before the clean cut on its end (a WMV
            # trailer: a cut 0.9 s before one, its packet 1.9x the group's usual size).
            if (
                group.intra is not None
                and round(group.duration, 2) not in periodic
                and _clean_cut(group, look, after, options)
                and not _keyed_late(group, rule)
                and not _froze(group, rule)
            ):
                steps.append(KeyframeCut(group.end))
                continue
        # A group the encoder ended by the clock after a scene change it saw inside: past
        # its last intra frame it saw none, and the rest may need no decoding.
        quiet = (
            group.last_intra
            if _long_clock(group, rule)
            and after is not None
            and after.brightness >= rule.dark
            and not after.fading(rule.fade_step)
            else None
        )
        # A stretch whose rest may go undecoded ends there: the next starts at its keyframe.
        previous = steps[-1] if steps else None
        if (
            isinstance(previous, Stretch)
            and previous.quiet_from is None
            and abs(previous.end - group.start) < 1e-6
        ):
            start = previous.start
            steps.pop()
        else:
            start = group.start
        steps.append(Stretch(start, group.end, last, quiet, after if quiet is not None else None))
    return steps


def _quiet(recent: list[float], small: np.ndarray, stretch: Stretch, rule: KeyframeRule) -> bool:
    """Whether the frames decoded last (``recent``: their mean pixels, the last ``small``)
    show that nothing is left to find before the keyframe after ``stretch``
    (``Stretch.quiet_from``): no dark frame, no fade, no cut-like change of colour."""
    following = stretch.next_key
    assert following is not None
    here = KeyframeLook(
        recent[0],
        colour_histogram(following.area.crop(small)),
        area=following.area,
        following=recent[1:],
    )
    distance = cv2.compareHist(here.histogram, following.histogram, cv2.HISTCMP_BHATTACHARYYA)
    return (
        min(recent) >= rule.dark and not here.fading(rule.fade_step) and distance < rule.cut_colour
    )


def scan_scenes(
    reader: VideoReader,
    options: SceneOptions,
    frame_offset: float,
    *,
    stop: StopSignal,
    on_time: Callable[[float], None],
    spread: int = 1,
    frame_side: int | None = None,
) -> Iterator[ScannedScene]:
    """Yield the video's scenes in order, each as soon as its end is known.

    Args:
        reader: The open video.
        options: Detection options; ``options.scan`` picks the scan.
        frame_offset: Seconds into a scene of the frame that represents it.
        stop: When set, the scan ends at the next frame.
        on_time: Called with the time reached in the video as the scan goes; what it
            raises ends the scan (a video too long).
        spread: Frames per scene for captioners that look at several (``ScannedScene.spread``;
            the full scan only: the keyframe scan gives each scene its one frame).
        frame_side: The long side the caller will scale the frames to
            (``Picture.to_image``): worker processes hand them over at that size.
    """
    if options.scan == ScanMode.FULL:
        yield from _full_scan(reader, options, frame_offset, stop, on_time, spread, frame_side)
    else:
        yield from _keyframe_scan(reader, options, frame_offset, stop, on_time, spread, frame_side)


def _scanned(
    closed: ClosedScene[DecodedFrame], reader: VideoReader, frame_offset: float
) -> ScannedScene:
    spread = tuple(frame for _, frame in closed.spread)
    if not closed.exact:
        return _to_grab(reader, closed.scene, frame_offset, spread)
    return ScannedScene(closed.scene, frame=(closed.frame_time, closed.frame), spread=spread)


def _full_scan(
    reader: VideoReader,
    options: SceneOptions,
    frame_offset: float,
    stop: StopSignal,
    on_time: Callable[[float], None],
    spread: int,
    frame_side: int | None,
) -> Iterator[ScannedScene]:
    """Every (reference) frame: in chunks by worker processes where ``options.workers`` asks
    for them and the video is long enough for two chunks, else here."""
    duration = reader.info.duration
    if options.workers == 1 or (
        duration is not None and len(chunk_bounds(duration, options.chunk_length)) <= 2
    ):
        yield from _scan_every_frame(reader, options, frame_offset, stop, on_time, spread)
        return
    if duration is None:
        logger.info("%s: the duration is unknown; scanning in one process", reader.name)
        yield from _scan_every_frame(reader, options, frame_offset, stop, on_time, spread)
        return
    for chunked in scan_in_chunks(
        reader,
        options,
        frame_offset,
        stop=stop,
        on_time=on_time,
        spread=spread,
        frame_side=frame_side,
    ):
        if stop.is_set():
            return
        found = chunked.scene
        if chunked.frame is None:
            yield _to_grab(reader, found, frame_offset, chunked.spread)
        else:
            yield ScannedScene(found, frame=chunked.frame, spread=chunked.spread)


def _scan_every_frame(
    reader: VideoReader,
    options: SceneOptions,
    frame_offset: float,
    stop: StopSignal,
    on_time: Callable[[float], None],
    spread: int,
) -> Iterator[ScannedScene]:
    rate = reader.info.frame_rate
    cuts = CutDetector(options, rate)
    selector: FrameSelector[DecodedFrame] = FrameSelector(frame_offset, spread=spread)
    last_time = 0.0
    frames = reader.analysed(reader.frames(), options.analysis_width)
    with closing(frames):
        for decoded, small in frames:
            if stop.is_set():
                return
            last_time = decoded.time
            on_time(decoded.time)
            selector.push(decoded.time, decoded)
            for cut in cuts.feed(decoded.time, small):
                closed = selector.cut(cut)
                if closed is not None:
                    yield _scanned(closed, reader, frame_offset)
    end = last_time + 1 / float(rate)
    for cut in cuts.finish(end):
        closed = selector.cut(cut)
        if closed is not None:
            yield _scanned(closed, reader, frame_offset)
    closed = selector.finish(end)
    if closed is not None:
        yield _scanned(closed, reader, frame_offset)


@dataclass
class KeyframePlan:
    """The keyframe pass's plan, and what the pass saw (``look_at_keyframes``)."""

    steps: list[Stretch | KeyframeCut]
    end: float
    """The end of the video, seconds."""
    stopped: bool
    """Whether the pass stopped early: the plan then decodes every frame after what it saw."""
    groups: list[GroupOfPictures]
    """The groups of pictures the pass saw (up to where it stopped)."""
    looks: dict[float, KeyframeLook]
    """What it saw of each keyframe, by ``_key`` of its time."""


class _Looking:
    """What the keyframe pass sees of each keyframe (``KeyframeLook``), from the frames it
    decodes in order (``see``): keyframes, and the frames right after each.

    A keyframe and the next are measured inside the video's bars as the second shows them
    (``letterbox.Bars``); where that differs from the first's, what was measured of the
    first alone (its colours, the motion after it) is measured again inside them, so that
    its difference to the next and its motion are taken in the same picture."""

    def __init__(self, step: float) -> None:
        self.looks: dict[float, KeyframeLook] = {}
        """Each keyframe's look so far, by ``_key`` of its time."""
        self._step = step
        self._bars = Bars()
        self._last: tuple[float, np.ndarray, KeyframeLook] | None = None
        self._after: list[tuple[np.ndarray, np.ndarray]] = []
        """The pairs of adjacent frames after the last keyframe its motion was measured on."""
        self._previous: tuple[float, np.ndarray] | None = None

    def see(self, time: float, small: np.ndarray, key: bool) -> bool:
        """Take the next frame the pass decoded (its small copy); whether it is a keyframe."""
        last, previous = self._last, self._previous
        self._previous = (time, small)
        if key:
            area = self._bars.see(small)
            look = self.looks[_key(time)] = KeyframeLook(
                brightness=brightness(small),
                histogram=colour_histogram(area.crop(small)),
                area=area,
            )
            if last is not None:
                _, before_small, before = last
                if before.area != area:
                    before.area = area
                    before.histogram = colour_histogram(area.crop(before_small))
                    before.motion = [
                        content_difference(area.crop(a), area.crop(b)) for a, b in self._after
                    ]
                before.difference = content_difference(area.crop(before_small), area.crop(small))
                before.colour_distance = cv2.compareHist(
                    before.histogram, look.histogram, cv2.HISTCMP_BHATTACHARYYA
                )
            self._last, self._after = (time, small, look), []
            return True
        if (
            previous is not None
            and last is not None
            and time > last[0]
            and 0 < time - previous[0] <= 1.5 * self._step
        ):
            look, area = last[2], last[2].area
            look.motion.append(content_difference(area.crop(previous[1]), area.crop(small)))
            look.following.append(brightness(small))
            self._after.append((previous[1], small))
        return False


def look_at_keyframes(
    reader: VideoReader,
    options: SceneOptions,
    stop: StopSignal,
    on_time: Callable[[float], None],
    early: _EarlyStretches | None = None,
) -> KeyframePlan | None:
    """The keyframe pass and the plan made from it; None when stopped, or where the pass
    finds keyframes too close together to guide a scan (``SHORT_GROUP``). ``early`` is shown
    each keyframe's look as it comes, to start the plan's first stretches."""
    keyframes = reader.keyframes()
    seeing = _Looking(step=1 / float(reader.info.frame_rate))
    looks = seeing.looks
    duration = reader.info.duration
    # Checked a few times during the pass: once more than ``most_refined`` of what it has
    # seen needs a full decode, the rest most likely does too, and the rest of the pass is
    # not worth its cost. Where the stream tells its intra frames, from a third of the video
    # on (an opening of titles and fades is no sample of a film), against all the time seen;
    # where it does not, from a tenth on, against the groups judged: packet spikes stand in
    # for intra frames there, and had 97-100 % of real footage decoded (VP9, AV1, fixed-GOP
    # x264; scenes-real-2026-11-26.md).
    most_refined = options.keyframes.most_refined
    check_every = duration / _CHECKS if duration else math.inf
    next_check = check_every
    for decoded in keyframes:
        if stop.is_set():
            return None
        on_time(decoded.time)
        time = decoded.time
        if seeing.see(time, decoded.to_small_bgr(options.analysis_width), decoded.frame.key_frame):
            if early is not None:
                early.seen(keyframes, looks)
            if time >= next_check and duration is not None:
                next_check = time + check_every
                groups = keyframes.groups_so_far()
                if _short(groups):
                    logger.info(
                        "%s: a keyframe every %.1f frames on average; the keyframe pass "
                        "decodes nearly every frame, so every frame is scanned",
                        reader.name,
                        sum(len(group.sizes) + 1 for group in groups) / len(groups),
                    )
                    return None
                seen, judged, refined = _seen_plan(groups, looks, options)
                if keyframes.tells_intra:
                    ready, span = time >= duration / 3, time
                else:
                    ready, span = judged > 0, judged
                if ready and refined > most_refined * span:
                    # What the pass has seen is scanned as planned, the rest in full.
                    rest = seen[-1]
                    assert isinstance(rest, Stretch)  # the last group seen (``_seen_plan``)
                    logger.info(
                        "%s: %.1f s of the first %.1f s need a full decode; the keyframe "
                        "pass stops there, and every frame from %.1f s on is decoded",
                        reader.name,
                        refined,
                        span,
                        rest.start,
                    )
                    return KeyframePlan(
                        [*seen[:-1], Stretch(rest.start, duration, last=True)],
                        duration,
                        stopped=True,
                        groups=groups,
                        looks=looks,
                    )
    return KeyframePlan(
        plan_keyframe_scan(keyframes.groups, looks, options),
        keyframes.end,
        stopped=False,
        groups=keyframes.groups,
        looks=looks,
    )


_QUIET_FRAMES = 5
"""Frames whose brightness tells whether a stretch's rest is quiet (``Stretch.quiet_from``):
a keyframe and the four after it, as the keyframe pass sees them."""

_CHECKS = 10
"""How many times the keyframe pass checks whether the full scan is likely to be cheaper."""

SHORT_GROUP = 12
"""Frames: keyframes closer than this on average (an all-intra stream, one keyed every few
frames) leave the keyframe scan nothing to skip: its pass decodes the keyframes and the
frames after each, nearly all, and stretches of a frame or two are too short for the
detectors to see a cut at their end (an all-intra H.264 encode: every cut missed). Such a
video gets the full scan, whatever ``KeyframeRule.most_refined`` says."""


def _short(groups: list[GroupOfPictures]) -> bool:
    """Whether ``groups`` (ten at least) are ``SHORT_GROUP`` frames long or less on average."""
    frames = sum(len(group.sizes) + 1 for group in groups)
    return len(groups) >= 10 and frames < SHORT_GROUP * len(groups)


def _seen_plan(
    groups: list[GroupOfPictures], looks: dict[float, KeyframeLook], options: SceneOptions
) -> tuple[list[Stretch | KeyframeCut], float, float]:
    """The plan of ``groups`` (those seen so far by the keyframe pass) whose next keyframe
    has been decoded (the demuxer runs ahead of the decoder's threads), with the group
    lengths periodic among them; the seconds it judged, and of those the seconds it decodes
    fully. Its last step is a stretch with the last of those groups, taken as the end of the
    video (which the plan always decodes): that group is not judged."""
    seen = list(itertools.takewhile(lambda group: _key(group.end) in looks, groups))
    if not seen:
        return [], 0.0, 0.0
    steps = _plan(seen, looks, options, _periodic_lengths(seen))
    refined = sum(s.end - s.start for s in steps if isinstance(s, Stretch))
    last = seen[-1].duration
    return steps, seen[-1].start - seen[0].start, refined - last


def _keyframe_scan(
    reader: VideoReader,
    options: SceneOptions,
    frame_offset: float,
    stop: StopSignal,
    on_time: Callable[[float], None],
    spread: int,
    frame_side: int | None,
) -> Iterator[ScannedScene]:
    if not reader.timed:
        logger.info(
            "%s: the video has no timestamps to seek by (a raw %s stream); scanning every frame",
            reader.name,
            reader.codec,
        )
        yield from _full_scan(reader, options, frame_offset, stop, on_time, spread, frame_side)
        return
    if reader.codec not in INTRA_CODECS and options.keyframes.most_refined < 1:
        # Its groups are judged by packet spikes, and the keyframe scan never paid: on six
        # VP9, AV1, VC-1 and MPEG-4 clips it took 1.1-1.4x the full scan's CPU, never handing
        # over, and its pass came on top where it did (keyframe-bound-2026-11-27.md).
        logger.info(
            "%s: a %s stream does not tell which frames its encoder coded as intra, so the "
            "keyframe scan would decode most of it anyway; scanning every frame",
            reader.name,
            reader.codec,
        )
        yield from _full_scan(reader, options, frame_offset, stop, on_time, spread, frame_side)
        return
    settings = reader.encoder_settings
    if settings is not None and settings.keyint is not None and settings.keyint < SHORT_GROUP:
        logger.info(
            "%s: %s put a keyframe at least every %d frames; the keyframe pass would decode "
            "nearly every frame, so every frame is scanned",
            reader.name,
            settings.encoder,
            settings.keyint,
        )
        yield from _full_scan(reader, options, frame_offset, stop, on_time, spread, frame_side)
        return
    if settings is not None and not settings.scene_cuts and options.keyframes.most_refined < 1:
        # Keyframes by the clock alone tell nothing of the cuts: on the fixed-group bench
        # encode the pass came on top of decoding nearly all of it, 9.3 CPU s against the
        # full scan's 6.8 (scenes-keyframes-2026-11-26.md).
        logger.info(
            "%s: %s placed its keyframes by the clock (scene-cut detection off), so they "
            "tell nothing of the cuts; scanning every frame",
            reader.name,
            settings.encoder,
        )
        yield from _full_scan(reader, options, frame_offset, stop, on_time, spread, frame_side)
        return
    # The plan's first stretches start while the pass goes on; _follow closes them.
    stretches = _Stretches(reader, options, frame_offset, stop)
    try:
        plan = look_at_keyframes(
            reader,
            options,
            stop,
            on_time,
            _EarlyStretches(stretches, options) if EARLY_START else None,
        )
    except VideoIncomplete as exc:
        # The full scan hands out the scenes before the damage, then raises the same error.
        logger.info("%s: %s; scanning every frame up to the damage", reader.name, exc)
        plan = None
    except BaseException:
        stretches.close()
        raise
    if plan is None:
        stretches.close()
        if not stop.is_set():
            yield from _full_scan(reader, options, frame_offset, stop, on_time, spread, frame_side)
        return
    steps, end = plan.steps, plan.end
    decoded = [s for s in steps if isinstance(s, Stretch)]
    refined = sum(s.end - s.start for s in decoded)
    share = refined / end if end > 0 else 1.0
    logger.info(
        "%s: %d cuts on keyframes; %d stretches to decode fully, %.1f of %.1f s (%.0f%%)",
        reader.name,
        len(steps) - len(decoded),
        len(decoded),
        refined,
        end,
        100 * share,
    )
    # A plan that stopped early is worth following: its pass is paid for.
    if (not plan.stopped and share > options.keyframes.most_refined) or steps == [
        Stretch(0.0, end, last=True)
    ]:
        logger.info(
            "%s: more than %.0f%% of the video to decode fully; scanning every frame",
            reader.name,
            100 * options.keyframes.most_refined,
        )
        stretches.close()
        yield from _full_scan(reader, options, frame_offset, stop, on_time, spread, frame_side)
        return
    if spread > 1:
        # Frames spread over a scene would have most of it decoded: what the plan skips.
        logger.warning(
            "%s: the keyframe scan decodes one frame of each scene; the captioner is shown "
            "that one, not %d spread over the scene (the full scan shows them)",
            reader.name,
            spread,
        )
    yield from _follow(reader, options, frame_offset, plan, end, stop, on_time, stretches)


_UNKEYED_AFTER = 3
_UNKEYED_BEFORE = 8
"""Frames after a group's keyframe and before the next inside which a hard cut the
stretches find shows that the encoder did not key every scene change (``_unkeyed_cut``): a
detector may place a cut on a keyframe a frame or two off, and an encoder keys a cut as
much as its B-frames and one late (x264 one in the bench video's grain four frames late,
``KeyframeRule.late_run``)."""


def _unkeyed_cut(
    cuts: list[float], groups: list[GroupOfPictures], frame_rate: float
) -> float | None:
    """The first of ``cuts`` (abrupt cuts found by decoding) inside a group in which the
    encoder coded no intra frame, more than ``_UNKEYED_AFTER`` frames after its keyframe and
    more than ``_UNKEYED_BEFORE`` before the next; None where there is none.

    Such a cut says that the encoder did not key every scene change of this film (x265 with
    its defaults keyed 14 of the 29 cuts of a trailer), and the groups it ended on a cut it
    did key, or skipped as ended by the clock, may hold others."""
    after, before = _UNKEYED_AFTER / frame_rate, _UNKEYED_BEFORE / frame_rate
    starts = [group.start for group in groups]
    for cut in cuts:
        at = bisect.bisect_right(starts, cut) - 1
        if at < 0:
            continue
        group = groups[at]
        if group.intra == 0 and group.start + after < cut < group.end - before:
            return cut
    return None


def _decodes_on(steps: list[Stretch | KeyframeCut], start: float) -> bool:
    """Whether ``steps`` decode every frame from ``start`` on: stretches one after the other,
    none that may stop once quiet (``Stretch.quiet_from``), the last reaching the end."""
    for step in steps:
        if (
            not isinstance(step, Stretch)
            or abs(step.start - start) > TIME_TOLERANCE
            or step.quiet_from is not None
        ):
            return False
        start = step.end
    return not steps or (isinstance(steps[-1], Stretch) and steps[-1].last)


def _follow(
    reader: VideoReader,
    options: SceneOptions,
    frame_offset: float,
    plan: KeyframePlan,
    end: float,
    stop: StopSignal,
    on_time: Callable[[float], None],
    started: _Stretches | None = None,
) -> Generator[ScannedScene, None, None]:
    """The scenes of the plan: its cuts on keyframes, and those its stretches find, decoded
    several at once (``_Stretches``, ``started`` during the keyframe pass where given) and
    taken in order. Once a stretch finds a cut that the
    encoder did not key (``_unkeyed_cut``), every frame after that stretch is decoded: the
    plan's cuts on keyframes and skipped groups trusted it to."""
    steps = plan.steps
    cuts = CutDetector(options, reader.info.frame_rate)
    stretches = started or _Stretches(reader, options, frame_offset, stop)
    stretches.follow(steps, end)
    grabs = _GrabsAhead(reader, steps, options, frame_offset)
    scene_start = 0.0
    index = 0
    # The last stretch decoded and, while the open scene began in the stretch before it,
    # that one: a scene whose frame one of them decoded is not decoded again.
    run: _DecodedRun | None = None
    earlier: _DecodedRun | None = None

    def scene(until: float, kept: tuple[float, DecodedFrame] | None) -> ScannedScene:
        """The scene up to ``until``, with its frame if ``run`` kept it (``kept``)."""
        nonlocal scene_start, index, earlier
        found = Scene(index=index, start=scene_start, end=until)
        index += 1
        scene_start = until
        if kept is None and earlier is not None:
            kept = earlier.close(found.start, found.end)
        earlier = None
        if kept is not None:
            return ScannedScene(found, frame=kept)
        return _to_grab(reader, found, frame_offset, ahead=grabs)

    def closing_run(until: float) -> tuple[float, DecodedFrame] | None:
        return None if run is None else run.close(scene_start, until)

    try:
        position = -1
        while position + 1 < len(steps):
            position += 1
            planned = steps[position]
            if isinstance(planned, KeyframeCut):
                for cut in cuts.add(planned.time):
                    if scene_start < cut < end:
                        yield scene(cut, closing_run(cut))
                continue
            decode = stretches.take(position, scene_start, cuts.last_cut)
            earlier = run if run is not None and run.covers(scene_start) else None
            run = decode.run
            taken = 0
            while True:
                done = decode.poll()
                if stop.is_set():
                    return
                if not done:
                    grabs.start_after(position)
                # Read before the cuts: every cut confirmed before it is among them.
                reached = decode.reached
                found = decode.cuts[taken:]
                taken += len(found)
                # Read after the cuts (the decode notes where it stopped skipping before the
                # cuts after that), applied before their scenes: their frames skip as the
                # scan's reader did (``_to_grab``).
                if decode.skipping_stopped_at is not None:
                    reader.stop_skipping(decode.skipping_stopped_at)
                for stretch_cut in found:
                    on_time(stretch_cut.seen_at)
                    yield scene(stretch_cut.time, stretch_cut.frame)
                    decode.handed_out()
                    reached = max(reached, stretch_cut.seen_at)
                on_time(reached)
                if done:
                    break
            decode.outcome()  # what the decode raised (a file cut short), after its scenes
            cuts.restart(decode.last_cut_after)
            if decode.end is not None:
                end = decode.end
            else:
                on_time(planned.end)
            unkeyed = _unkeyed_cut(decode.hard_cuts, plan.groups, float(reader.info.frame_rate))
            if unkeyed is not None and not _decodes_on(steps[position + 1 :], planned.end):
                logger.info(
                    "%s: a cut at %.2f s inside a group its encoder coded without an intra "
                    "frame; it did not key every scene change, so every frame from %.1f s "
                    "on is decoded",
                    reader.name,
                    unkeyed,
                    planned.end,
                )
                stretches.close()
                grabs.close()
                steps = [*steps[: position + 1], Stretch(planned.end, end, last=True)]
                stretches = _Stretches(reader, options, frame_offset, stop)
                stretches.follow(steps, end)
                grabs = _GrabsAhead(reader, steps, options, frame_offset)
        yield scene(end, closing_run(end))
    finally:
        stretches.close()
        grabs.close()


@dataclass(frozen=True)
class _StretchCut:
    """A cut a stretch found."""

    time: float
    seen_at: float
    """The frame whose detection confirmed it."""
    frame: tuple[float, DecodedFrame] | None
    """The frame of the scene it ends, where the stretch decoded it."""


_ABRUPT_FRAMES = 2
"""Frames decoded on either side of a cut among which one changes abruptly from the one
before it for the cut to be hard (``_StretchDecode.hard_cuts``): the detectors place a cut
to black a frame or two into the black."""

_RECENT_FRAMES = 16
"""Frames a stretch keeps to look back at when a cut is confirmed (``_abrupt``): the cut
detector confirms a hard cut two frames after it; a cut confirmed further on (a fade's,
once the fade is over) is not taken for abrupt."""


def _abrupt(
    cut: float, recent: Sequence[tuple[float, np.ndarray]], threshold: float, frame_rate: float
) -> bool:
    """Whether among the frames ``recent`` (time, small copy) within ``_ABRUPT_FRAMES`` of
    ``cut`` one differs from the one before it by ``threshold`` or more in brightness, pixel
    by pixel (mean absolute difference of grey levels, per frame duration between them where
    frames were skipped): a change no encoder that keys scene changes lets pass, unlike the
    frames of a fade, each a little darker or lighter than the last. (ContentDetector's
    metric would not do: near black, hue and saturation jump from one frame of a fade to the
    next.) False where the frame before the cut is no longer among ``recent``."""
    times = [time for time, _ in recent]
    at = bisect.bisect_left(times, cut - TIME_TOLERANCE)
    if at == 0:
        return False
    first, last = max(1, at - _ABRUPT_FRAMES + 1), min(len(recent), at + _ABRUPT_FRAMES + 1)
    pairs = itertools.pairwise(list(recent)[first - 1 : last])
    return any(_grey_step(before, after, frame_rate) >= threshold for before, after in pairs)


def _grey_step(
    before: tuple[float, np.ndarray], after: tuple[float, np.ndarray], frame_rate: float
) -> float:
    """The mean absolute difference of grey levels between two frames (time, small copy),
    divided by the frame durations between them."""
    frames = max(1, round((after[0] - before[0]) * frame_rate))
    first, second = (
        cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.int16) for _, small in (before, after)
    )
    return float(np.abs(second - first).mean()) / frames


class _StretchDecode:
    """One stretch of the plan decoded on a thread of the reader's (``VideoReader.in_parallel``)
    from an aside reader, as if the scenes before it ended as assumed: the last at
    ``scene_start``, the detectors' last cut at ``last_cut``, non-reference frames skipped
    or not (``skipping``). What it finds shows as it goes (``cuts``, ``reached``)."""

    def __init__(
        self,
        reader: VideoReader,
        planned: Stretch,
        scan: _ScanSetting,
        *,
        scene_start: float,
        last_cut: float,
        skipping: bool,
    ) -> None:
        self.planned = planned
        self.scene_start = scene_start
        self.last_cut = last_cut
        self.skipping = skipping
        self.run = _DecodedRun(scan.frame_offset, scene_start)
        self.cuts: list[_StretchCut] = []
        self.reached = planned.start
        """The time of the last frame decoded."""
        self.last_cut_after = last_cut
        """The detectors' last cut once done."""
        self.end: float | None = None
        """The end of the video, for the last stretch, once done."""
        self.skipping_stopped_at: float | None = None
        """Where its reader met a long run of non-reference frames and stopped skipping."""
        self.hard_cuts: list[float] = []
        """Its cuts where the picture changed abruptly (``_abrupt``): no fade, which an
        encoder does not key, seeing no single frame change much."""
        self.dropped = threading.Event()
        """Set when its result is no longer wanted: it stops at the next frame."""
        self._scan = scan
        self._owner = reader
        self._handed_out = 0
        self._future = reader.in_parallel(lambda: self._decode(reader.aside(threads=0)))

    def poll(self) -> bool:
        """Wait up to ``_POLL`` seconds for it to finish; whether it has."""
        done, _ = wait([self._future], timeout=_POLL)
        return bool(done)

    def outcome(self) -> None:
        """Raise what the decode raised, if anything (once finished)."""
        self._future.result()

    def handed_out(self) -> None:
        """One more of its cuts' scenes has been taken (``_frames_kept``)."""
        self._handed_out += 1

    def drop(self) -> None:
        self.dropped.set()
        self._future.cancel()

    def _stopping(self) -> bool:
        """Whether the scan stopped, its result is no longer wanted, or the reader is closing
        (a caller that gave up on the scan without closing it)."""
        return self._scan.stop.is_set() or self.dropped.is_set() or self._owner.closing

    def _found(self, cut: _StretchCut) -> None:
        """Note ``cut``; without its frame once ``_frames_kept`` noted are waiting to be handed
        out: that scene's frame is decoded again when asked for (``_to_grab``: the same one)."""
        waiting = len(self.cuts) - self._handed_out
        if cut.frame is not None and waiting >= _frames_kept(cut.frame[1]):
            cut = _StretchCut(cut.time, cut.seen_at, None)
        self.cuts.append(cut)

    def _decode(self, reader: VideoReader) -> None:
        scan, planned = self._scan, self.planned
        options, rule = scan.options, scan.options.keyframes
        rate = reader.info.frame_rate
        reader.set_skipping(self.skipping)
        cuts = CutDetector(options, rate)
        cuts.restart(self.last_cut)
        scene_start = self.scene_start
        end = scan.end
        # The last stretch reads to the end of the file, which may be cut short or damaged
        # where the keyframe pass stopped before it (``VideoReader.frames``).
        decoding = (
            reader.frames(planned.start)
            if planned.last
            else _past_end(
                reader.frames_between(planned.start, math.inf), planned.end, rule.lookahead
            )
        )
        frames = reader.analysed(decoding, options.analysis_width)
        # Judged at each frame past the frame of a scene that starts there and the
        # lookahead, until the frames are quiet (a fade in from black may last a while).
        judge_at = (
            None
            if planned.quiet_from is None
            else planned.quiet_from + max(scan.frame_offset, rule.lookahead)
        )
        recent: collections.deque[float] = collections.deque(maxlen=_QUIET_FRAMES)
        recent_frames: collections.deque[tuple[float, np.ndarray]] = collections.deque(
            maxlen=_RECENT_FRAMES
        )
        last_time = planned.start
        with closing(frames):
            for decoded, small in frames:
                if self._stopping():
                    return
                last_time = self.reached = decoded.time
                if self.skipping and not reader.skip_nonref:
                    self.skipping_stopped_at = reader.skipping_stopped_at
                self.run.push(decoded)
                recent_frames.append((decoded.time, small))
                for cut in cuts.feed(decoded.time, small):
                    if scene_start < cut < end:
                        kept = self.run.close(scene_start, cut)
                        self._found(_StretchCut(cut, decoded.time, kept))
                        if _abrupt(cut, recent_frames, rule.cut_threshold, float(rate)):
                            self.hard_cuts.append(cut)
                        scene_start = cut
                if judge_at is None:
                    continue
                recent.append(brightness(small))
                if (
                    decoded.time > judge_at
                    and len(recent) == recent.maxlen
                    and _quiet(list(recent), small, planned, rule)
                ):
                    logger.info(
                        "%s: no scene change after %.2f s; not decoding on to %.2f s",
                        reader.name,
                        decoded.time,
                        planned.end,
                    )
                    break
        # The frame after the stretch, decoded but not handed out, may end a long run.
        if self.skipping and not reader.skip_nonref:
            self.skipping_stopped_at = reader.skipping_stopped_at
        if planned.last:
            # As the full scan ends: after the last frame decoded (a declared duration may
            # be the container's, with a longer audio track).
            end = last_time + 1 / float(rate)
            for cut in cuts.finish(end):
                if scene_start < cut < end:
                    kept = self.run.close(scene_start, cut)
                    self._found(_StretchCut(cut, last_time, kept))
                    scene_start = cut
            self.end = end
        self.last_cut_after = cuts.last_cut


_FRAMES_PAST_END = 3
"""Frames a stretch decodes past its end at least, however far apart the reader's skipping
leaves them: AdaptiveDetector confirms a cut on the keyframe that ends a stretch two frames
after it (its window), and a third leaves a margin."""


def _past_end(
    frames: Iterator[DecodedFrame], end: float, lookahead: float
) -> Iterator[DecodedFrame]:
    """``frames`` until both ``lookahead`` seconds and ``_FRAMES_PAST_END`` frames lie past
    ``end`` (a stream of four B-frames in a row, skipped, leaves two frames in 0.25 s)."""
    past = 0
    for decoded in frames:
        if decoded.time > end + TIME_TOLERANCE:
            if past >= _FRAMES_PAST_END and decoded.time > end + lookahead:
                return
            past += 1
        yield decoded


@dataclass(frozen=True)
class _ScanSetting:
    """What every stretch of one keyframe scan is decoded with."""

    options: SceneOptions
    frame_offset: float
    end: float
    """The end of the video as the keyframe pass found it."""
    stop: StopSignal


STRETCHES_AHEAD = PARALLEL_DECODES
"""Stretches started ahead of the one whose scenes are being handed out: one per thread of
the reader's ``in_parallel``, so that none is idle meanwhile. 0 decodes one stretch after
another, each knowing how the scenes before it ended."""


class _Stretches:
    """The plan's stretches, decoded ahead of the scan's place in the plan (``STRETCHES_AHEAD``),
    each as if the scenes before it ended as the plan
    suggests: a cut on the keyframe it starts from is taken as the last, else the last lies
    further back than the detectors or the frame of the scene open there look
    (``_reach``). One whose scenes before it ended otherwise is decoded again: it is what
    one decode after another finds.

    The first may start before the plan is whole, while the keyframe pass goes on
    (``early``, ``_EarlyStretches``); the plan's steps are given once it is (``follow``)."""

    def __init__(
        self,
        reader: VideoReader,
        options: SceneOptions,
        frame_offset: float,
        stop: StopSignal,
    ) -> None:
        self._reader = reader
        self._steps: list[Stretch | KeyframeCut] = []
        # The end of the video matters to the last stretch alone, never started early.
        self._scan = _ScanSetting(options, frame_offset, math.inf, stop)
        self._clock = CutDetector(options, reader.info.frame_rate)
        """Tells how a cut on a keyframe is reported, and whether it is too close to the
        last."""
        self._reach = max(options.min_scene_len, frame_offset) + 2 / float(reader.info.frame_rate)
        self._ahead: collections.deque[tuple[int, _StretchDecode]] = collections.deque()
        self._next = 0
        """The step after the last one started."""
        self._taken: _StretchDecode | None = None

    def early(self, steps: list[Stretch | KeyframeCut]) -> bool:
        """Start the first stretches among ``steps``, the plan's first steps as the keyframe
        pass has settled them so far; whether more may be started."""
        self._steps = steps
        self._start_ahead(0, 0.0, 0.0)
        return len(self._ahead) <= STRETCHES_AHEAD

    def follow(self, steps: list[Stretch | KeyframeCut], end: float) -> None:
        """Follow the plan ``steps`` of a video that ends at ``end``: of the stretches started
        early, those the plan begins with (the same steps before them) go on, the others
        are dropped."""
        kept = 0
        for position, _ in self._ahead:
            if steps[: position + 1] != self._steps[: position + 1]:
                break
            kept += 1
        dropped = list(itertools.islice(self._ahead, kept, None))
        for _, decode in dropped:
            decode.drop()
        self._ahead = collections.deque(itertools.islice(self._ahead, kept))
        self._next = self._ahead[-1][0] + 1 if self._ahead else 0
        self._steps = steps
        self._scan = dataclasses.replace(self._scan, end=end)

    def take(self, position: int, scene_start: float, last_cut: float) -> _StretchDecode:
        """The decode of the stretch at ``position`` in the plan, where the scenes before it
        ended at ``scene_start`` and the detectors' last cut was ``last_cut``."""
        self._next = max(self._next, position)
        self._start_ahead(position, scene_start, last_cut)
        at, decode = self._ahead.popleft()
        assert at == position
        if not (
            decode.skipping == self._reader.skip_nonref
            and self._same_past(decode.scene_start, scene_start, decode.planned.start)
            and self._same_past(decode.last_cut, last_cut, decode.planned.start)
        ):
            logger.debug(
                "%s: the stretch from %.2f s was decoded for other scenes before it; again",
                self._reader.name,
                decode.planned.start,
            )
            # Again before those started ahead, which the reader's threads would take first
            # (and which may wait for their cuts to be handed out, after this one's).
            self._ahead.appendleft((at, decode))
            self.close()
            self._next = position
            self._start_ahead(position, scene_start, last_cut)
            at, decode = self._ahead.popleft()
        self._taken = decode
        return decode

    def close(self) -> None:
        """Stop the decodes still under way."""
        for _, decode in self._ahead:
            decode.drop()
        self._ahead.clear()
        if self._taken is not None:
            self._taken.drop()

    def _start_ahead(self, position: int, scene_start: float, last_cut: float) -> None:
        """Start the stretches from ``position`` on, up to the limit, assuming the plan's cuts
        on keyframes are taken."""
        known: float | None = last_cut
        start: float | None = scene_start
        for index in range(position, len(self._steps)):
            if len(self._ahead) > STRETCHES_AHEAD:
                return
            planned = self._steps[index]
            if isinstance(planned, KeyframeCut):
                if known is None:
                    known = start = self._clock.reported(planned.time)
                else:
                    self._clock.restart(known)
                    for cut in self._clock.add(planned.time):
                        known = start = cut
                continue
            if index >= self._next:
                assumed = self._far(planned) if known is None else known
                begun = self._far(planned) if start is None else start
                self._ahead.append((index, self._start(planned, begun, assumed)))
                self._next = index + 1
            known = start = None

    def _start(
        self, planned: Stretch, scene_start: float, last_cut: float, skipping: bool | None = None
    ) -> _StretchDecode:
        return _StretchDecode(
            self._reader,
            planned,
            self._scan,
            scene_start=scene_start,
            last_cut=last_cut,
            skipping=self._reader.skip_nonref if skipping is None else skipping,
        )

    def _far(self, planned: Stretch) -> float:
        """A last cut further back than the stretch's decode can tell from any other."""
        return max(0.0, planned.start - self._reach - 1.0)

    def _same_past(self, assumed: float, actual: float, start: float) -> bool:
        """Whether a stretch from ``start`` decoded as if the last cut (or scene start) were
        at ``assumed`` finds what it finds after one at ``actual``: the same time, or both
        so far back that neither ``min_scene_len`` nor the frame of the scene open at its
        start (its offset) reaches the stretch."""
        return abs(assumed - actual) < 1e-9 or max(assumed, actual) <= start - self._reach


EARLY_START = cores() >= 4
"""Whether the plan's first stretches start while the keyframe pass goes on
(``_EarlyStretches``): where the pass, which keeps about one and a half cores busy, leaves
some idle. On two cores they only compete with it: the scan of Big Buck Bunny in H.264 took
0.77-0.93 s with them against 0.79-0.88 s without, and a stretch started for a step the
finished plan judges otherwise is decoded in vain."""

_EARLY_WINDOW = 64
"""Groups that ``_EarlyStretches`` plans at a keyframe at most: past that, it settles no
more. A long run of groups to decode fully is one stretch, left open until it ends, and a
keyframe the pass never saw holds the window where it is; each keyframe would plan them
all again (3,000 groups: 84 s of planning)."""


class _EarlyStretches:
    """The plan's first steps, settled while the keyframe pass goes on, so that its first
    stretches start decoding before the pass ends (``_Stretches.early``): on many cores the
    pass, on one thread, would otherwise come before them all (on 16 cores, 0.1 s of the
    keyframe scan's 0.46 s of Big Buck Bunny in H.264).

    At each keyframe the groups seen since the last settled step are planned
    (``_plan``); every step but the last (whose group may still grow into a longer stretch)
    is settled. The plan as a whole may still judge a group otherwise: the lengths that
    tell keyframes placed by the clock (``_periodic_lengths``) are known only at the end,
    so a step counts as settled only where a plan with no such length agrees with one with
    those seen so far; at the first where they do not, no more are settled. A stretch
    started for a step the final plan does not begin with is dropped
    (``_Stretches.follow``): over 45 H.264 and HEVC clips the keyframe scan follows, this
    started 62 stretches early and none in vain; a length that becomes periodic only later
    (x265 with ``keyint=50`` keying groups of 1 and 2 s) can have one decoded in vain.
    """

    def __init__(self, stretches: _Stretches, options: SceneOptions) -> None:
        self._stretches = stretches
        self._options = options
        self._steps: list[Stretch | KeyframeCut] = []
        self._since: float | None = None
        """The start of the first group not settled (None: from the start)."""
        self._lengths: Counter[float] = Counter()
        """The lengths of the groups before it (``_periodic``)."""
        self._groups = 0
        self._wanted = True

    def seen(self, keyframes: KeyframePass, looks: dict[float, KeyframeLook]) -> None:
        """Settle what the groups the pass has seen so far allow, and start the stretches
        among them that ``_Stretches`` takes first."""
        if not self._wanted:
            return
        groups = keyframes.groups_so_far(self._since)
        if len(groups) > _EARLY_WINDOW:
            self._wanted = False
            return
        window = list(itertools.takewhile(lambda group: _key(group.end) in looks, groups))
        if len(window) < 2:
            return
        lengths = self._lengths + Counter(round(group.duration, 2) for group in window[:-1])
        steps = _plan(window, looks, self._options, _periodic(lengths, self._groups + len(window)))
        unsure = _plan(window, looks, self._options, set())
        settled = steps[:-1]
        if unsure != steps:
            # Settled up to the first step the plans judge otherwise; nothing after it.
            self._wanted = False
            agreed = itertools.takewhile(
                lambda pair: pair[0] == pair[1], zip(settled, unsure, strict=False)
            )
            settled = [step for step, _ in agreed]
        else:
            # The next window starts with the group of the stretch left open: those before
            # it are settled, or skipped.
            left_open = steps[-1]
            assert isinstance(left_open, Stretch)  # the window's last group (``_plan``)
            done = [group for group in window if group.start < left_open.start - TIME_TOLERANCE]
            self._lengths.update(round(group.duration, 2) for group in done)
            self._groups += len(done)
            self._since = left_open.start
        self._steps.extend(settled)
        if any(isinstance(step, Stretch) for step in settled):
            self._wanted = self._stretches.early(list(self._steps)) and self._wanted


_POLL = 0.1
"""Seconds between looks at a stretch being decoded: the cuts it found so far are handed out,
the time it reached is reported (``on_time``)."""

_KEPT_BYTES = 256 * 2**20
"""Bytes of decoded frames (full size) the stretches of one scan keep for the scenes they
found while they wait to be handed out, shared equally by the stretch being handed out and
those started ahead (``STRETCHES_AHEAD``): on two cores about 62 frames of 720p each, on
16 cores 37 (and 4 of 4K). A decode runs on ahead
of a slow caller without waiting for it (a decode that waited would hold a thread the
interpreter joins at exit), and a stretch started ahead of the one being handed out finds
all its cuts before its first is taken (a trailer's last 88 s, 50 cuts); the scenes beyond
have their frames decoded again when asked for, each from the keyframe before it. Four
frames at most, as before, had 51 of a 144 s trailer's 83 frames decoded again, the scan
taking 8.7 CPU s against the full scan's 5.7."""


def _frames_kept(decoded: DecodedFrame) -> int:
    """How many frames like ``decoded`` fit in a stretch's share of ``_KEPT_BYTES`` (one at
    least)."""
    size = sum(plane.buffer_size for plane in decoded.frame.planes)
    return max(1, _KEPT_BYTES // (STRETCHES_AHEAD + 1) // max(size, 1))


class _DecodedRun:
    """The frames one stretch of the keyframe scan decoded, in a row, that may still be a
    scene's frame (``FrameSelector`` keeps them as the full scan does)."""

    def __init__(self, offset: float, start: float) -> None:
        self._offset = offset
        self._selector: FrameSelector[DecodedFrame] = FrameSelector(offset, start=start)
        self._first: float | None = None
        self._last = -math.inf

    def push(self, decoded: DecodedFrame) -> None:
        if self._first is None:
            self._first = decoded.time
        self._last = decoded.time
        self._selector.push(decoded.time, decoded)

    def covers(self, start: float) -> bool:
        """Whether it decoded the frame on screen at the target of a scene from ``start``,
        wherever that scene ends: every frame from the start to past the frame offset."""
        return (
            self._first is not None
            and self._first <= start + TIME_TOLERANCE
            and self._last > start + self._offset
        )

    def close(self, start: float, end: float) -> tuple[float, DecodedFrame] | None:
        """Close the scene from ``start`` (the selector's open scene) at ``end``; its frame
        and time when this run decoded the one the full scan chooses: the last frame at or
        before the target, with frames after the target decoded in the same run; else None."""
        closed = self._selector.cut(end)
        if closed is None:
            return None
        target = frame_target(start, end, self._offset)
        if closed.exact and closed.frame_time <= target + TIME_TOLERANCE < self._last:
            return closed.frame_time, closed.frame
        return None


def _to_grab(
    reader: VideoReader,
    scene: Scene,
    offset: float,
    spread: tuple[Picture, ...] = (),
    ahead: _GrabsAhead | None = None,
) -> ScannedScene:
    """``scene``, its frame to be decoded again when asked for (``FrameGrab``), or taken
    from the grab ``ahead`` started for the same scene and skipping."""
    grab = _frame_grab(reader, scene, offset)
    grabbing = None if ahead is None else ahead.take(grab)
    return ScannedScene(scene, grab=grab, reader=reader, spread=spread, grabbing=grabbing)


def _frame_grab(reader: VideoReader, scene: Scene, offset: float) -> FrameGrab:
    """The grab of ``scene``'s frame, skipping non-reference frames as the scan's reader did
    at the scene's target: until the long run of them where it stopped (read once: its
    read-ahead may meet one meanwhile)."""
    stopped = reader.skipping_stopped_at
    target = frame_target(scene.start, scene.end, offset)
    skipping = reader.skipping_at_open and (stopped is None or target < stopped)
    return FrameGrab(reader, scene, offset, skipping=skipping)


GRABS_AHEAD = PREFETCH_DEPTH
"""Scenes whose frames ``_GrabsAhead`` has grabbed or is grabbing and the scan not yet found."""


class _GrabsAhead:
    """The frames of the scenes that lie between two of the plan's cuts on keyframes
    (``KeyframeCut``, no stretch between them), grabbed in the background ahead of the scan
    (``start_after``): while it waits on a long stretch before them, a core its stretches
    leave idle decodes them, rather than one after another once the stretch is done. One at
    a time: the reader's background threads (one up to 7 cores) take work in order, and
    the frames of the scenes the stretch finds would wait behind several. Their
    bounds do not hang on what the stretches find, but for a cut found too close before the
    first (``min_scene_len``) or every frame decoded after a cut the encoder did not key
    (``_unkeyed_cut``): a grab is used only for a scene found with the same bounds and
    skipping non-reference frames as it did (``take``)."""

    def __init__(
        self,
        reader: VideoReader,
        steps: list[Stretch | KeyframeCut],
        options: SceneOptions,
        offset: float,
    ) -> None:
        self._reader = reader
        self._offset = offset
        clock = CutDetector(options, reader.info.frame_rate)
        self._scenes = [
            (position, Scene(index=-1, start=clock.reported(a.time), end=clock.reported(b.time)))
            for position, (a, b) in enumerate(itertools.pairwise(steps))
            if isinstance(a, KeyframeCut) and isinstance(b, KeyframeCut)
        ]
        """The step that starts each such scene, and its bounds (its index is not known
        before the scan finds it)."""
        self._started: dict[tuple[float, float], tuple[FrameGrab, Future[Grabbed]]] = {}

    def start_after(self, position: int) -> None:
        """Start grabbing the frame of the next such scene after the plan's step at
        ``position``, unless a grab started is still under way or ``GRABS_AHEAD`` wait to be
        taken."""
        if len(self._started) >= GRABS_AHEAD or any(
            not future.done() for _, future in self._started.values()
        ):
            return
        for at, scene in self._scenes:
            bounds = (_key(scene.start), _key(scene.end))
            if at > position and bounds not in self._started:
                grab = _frame_grab(self._reader, scene, self._offset)
                self._started[bounds] = (grab, self._reader.in_background(grab))
                return

    def take(self, grab: FrameGrab) -> Future[Grabbed] | None:
        """The grab started for ``grab``'s scene, if one was, with the same skipping; those
        started for scenes before it are dropped (the scan found others instead)."""
        found = None
        for bounds, (started, future) in list(self._started.items()):
            if bounds[0] > _key(grab.scene.start):
                continue
            del self._started[bounds]
            if bounds == (_key(grab.scene.start), _key(grab.scene.end)) and (
                started.skipping == grab.skipping
            ):
                found = future
            else:
                future.cancel()
        return found

    def close(self) -> None:
        """Drop the grabs not taken (those under way finish; their frames are let go)."""
        for _, future in self._started.values():
            future.cancel()
        self._started.clear()


@dataclass(frozen=True)
class Grabbed:
    """What one decode of a ``FrameGrab`` found."""

    frame: tuple[float, DecodedFrame] | None
    skipped: bool
    """Whether it skipped non-reference frames."""
    met_long_run: bool
    """Whether it met a long run of them (and decoded again, every frame)."""


@dataclass(frozen=True)
class FrameGrab:
    """The frame a full scan would have chosen for ``scene``: the last one shown at or
    before its target time, else its first; decoded from the keyframe before the target,
    from an aside reader of the scan's (the scan may be decoding a stretch meanwhile).

    Whether to skip non-reference frames is decided as one reader decoding the grabs one
    after another, in the order of their scenes, would: not where the scan's reader had
    stopped skipping before the scene's target (``skipping``), nor once an earlier grab met
    a long run of them (``VideoReader.asides_skip``). A grab may run in the background, ahead
    of the earlier ones being taken: ``settle``, called as the scenes are taken, in order,
    decodes it again where an earlier one met a long run meanwhile."""

    reader: VideoReader
    scene: Scene
    offset: float
    skipping: bool
    """Whether the scan's reader skipped non-reference frames at the scene's target."""

    def __call__(self) -> Grabbed:
        reader = self.reader
        target = frame_target(self.scene.start, self.scene.end, self.offset)
        aside = reader.aside()
        skip = self.skipping and reader.asides_skip
        aside.set_skipping(skip)
        chosen = _chosen(aside, self.scene, target)
        met = skip and not aside.skip_nonref
        if met:
            # It met a long run of non-reference frames and skipped the first of them, as
            # the full scan would not have: again, decoding every frame.
            chosen = _chosen(aside, self.scene, target)
        frame = None if chosen is None else (chosen.time, chosen)
        return Grabbed(frame, skipped=skip, met_long_run=met)

    def settle(self, grabbed: Grabbed) -> tuple[float, DecodedFrame] | None:
        """The frame, from ``grabbed`` (this grab's decode) or decoded again, as the grabs
        are taken in order."""
        if grabbed.skipped and not grabbed.met_long_run and not self.reader.asides_skip:
            grabbed = self()  # an earlier grab met a long run after this one had run
        if grabbed.met_long_run:
            self.reader.asides_skip = False
        return grabbed.frame


def _chosen(reader: VideoReader, scene: Scene, target: float) -> DecodedFrame | None:
    chosen: DecodedFrame | None = None
    for decoded in reader.frames_from(target):
        if decoded.time < scene.start - TIME_TOLERANCE:
            continue
        if decoded.time <= target + TIME_TOLERANCE:
            chosen = decoded
            continue
        if chosen is None and decoded.time < scene.end - TIME_TOLERANCE:
            chosen = decoded
        break
    return chosen


@dataclass(frozen=True)
class ListedScene:
    """A scene and the time of the frame that would be captioned for it."""

    scene: Scene
    frame_time: float | None
    """None when the scene holds no decodable frame."""


def list_scenes(
    video: Path,
    options: SceneOptions,
    frame_offset: float,
    *,
    name: str | None = None,
    max_duration: float | None = None,
) -> Iterator[ListedScene]:
    """The scenes of a local video, with the same scan as ``describe``.

    Args:
        video: The file.
        options: Detection options (``options.scan`` picks the scan).
        frame_offset: Seconds into a scene of the frame that would be captioned.
        name: What messages call the video; default the file's name.
        max_duration: Longest video accepted, seconds (None: no limit).

    Raises:
        VideoOpenFailure, VideoIncomplete, DecoderUnavailable: as ``VideoReader`` raises them.
        VideoTooLong: the video runs past ``max_duration``.
    """

    def reached(time: float) -> None:
        if max_duration is not None and time > max_duration:
            raise VideoTooLong(f"video runs past {max_duration:g} s, the longest accepted")

    with VideoReader(
        video,
        skip_nonref=options.skip_nonref_frames,
        decode_device=options.decode_device,
        name=name,
    ) as reader:
        scenes = scan_scenes(reader, options, frame_offset, stop=threading.Event(), on_time=reached)
        for found in prefetched(scenes, lambda found: found):
            chosen = found.frame()
            yield ListedScene(found.scene, None if chosen is None else chosen[0])
