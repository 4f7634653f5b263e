"""The full scan of a long video in chunks, each decoded in a worker process of its own
(``SceneOptions.workers``).

One scan decodes with FFmpeg's threads but runs the detectors on one core, so on a machine
with many cores it leaves most of them idle; it takes as long for a film as one core takes
to run the detectors on every frame. Here the video is cut by time into chunks of
``SceneOptions.chunk_length``, each scanned by a worker as the full scan would scan it, and
the scenes are put back in order as the chunks finish:

- a chunk's detectors start ``WARM_UP`` seconds before the chunk (from the keyframe before
  that, further back while that keyframe is dark: a fade through black is then seen whole),
  so at the chunk's start they stand where the full scan's would;
- a chunk owns the scenes that start in it: it decodes past its end until its last scene is
  closed by the next cut, so each scene's frames (``FrameSelector``) come from one worker.
  It goes at most one more chunk length: a scene still open then is handed over open, with
  the frame at its target (the scene is longer than twice the frame offset) and its spread
  frames chosen over the part seen; the next cut any later chunk finds closes it;
- where two chunks disagree at a seam, the earlier one, which saw more, wins; a scene that
  no chunk chose a frame for comes out without one (the caller decodes it:
  ``scan._grab``).

Workers are spawned, not forked (the service runs threads), at most ``2 * workers`` chunks
are under way or waiting to be taken (a chunk's result holds its scenes' frames), and the
last chunk is decoded no further than the declared duration: the rest, if the file runs on,
is scanned here, where ``on_time`` can refuse a video too long.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.errors import VideoIncomplete, VideoOpenFailure
from app.pipeline.frames import ClosedScene, FrameSelector, frame_target
from app.pipeline.scenes import CutDetector, SceneOptions
from app.pipeline.types import Scene, StopSignal
from app.pipeline.video import DecodedFrame, StillFrame, VideoReader

logger = logging.getLogger(__name__)

WARM_UP = 4.0
"""Seconds a chunk's detectors see before the chunk: more than AdaptiveDetector's window,
its flash filter and ``min_scene_len`` look back."""

CONFIRM = 0.5
"""Seconds decoded past a chunk's end (besides ``min_scene_len``) once its last scene is
closed: a cut just before the end is confirmed frames after it."""

CONFIRM_FRAMES = 4
"""Frames decoded past a chunk's end, at least (AdaptiveDetector looks two ahead)."""

_SAME = 1e-6
"""Seconds within which two chunks name the same time (frame times are read from the same
timestamps in every process)."""


def cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers() -> int:
    """Scan workers when none are asked for: half the cores (each worker's decoder takes two
    threads), at most 8; 1 on a machine of two cores or fewer (one scans in the caller's
    process)."""
    return max(1, min(8, cores() // 2))


@dataclass(frozen=True)
class Chunk:
    """What one worker scans: the scenes that start in ``[start, end)``; the last chunk's
    ``end`` is infinite (it reads to the end of the file)."""

    path: Path
    name: str
    start: float
    end: float
    options: SceneOptions
    frame_offset: float
    spread: int
    threads: int
    """Decoding threads of the worker's reader."""
    limit: float | None = None
    """Decode no frame after this time (the last chunk: the declared duration and a little):
    the parent scans the rest, if any (``ChunkResult.beyond``)."""


@dataclass
class ChunkResult:
    """The scenes a chunk owns, in order, and how its decoding ended."""

    scenes: list[ClosedScene[StillFrame]] = field(default_factory=list)
    open: ClosedScene[StillFrame] | None = None
    """A scene that starts in the chunk and was still open where it stopped decoding (its
    ``end`` is that time, not a cut)."""
    end: float | None = None
    """The end of the video (after its last frame), when the chunk decoded to it."""
    beyond: float | None = None
    """The last frame decoded, when the chunk stopped at its ``limit`` with frames after it."""
    error: VideoIncomplete | None = None
    """The file broke off in the chunk: ``scenes`` are those before the damage."""
    empty: bool = False
    """No frame decodes from the chunk's warm-up on: the frames ended before it (a declared
    duration that counts a longer audio track), or the file is cut short."""


def scan_chunk(
    chunk: Chunk,
    *,
    stop: StopSignal | None = None,
    on_time: Callable[[float], None] | None = None,
) -> ChunkResult:
    """Scan one chunk (in a worker process, or in the caller's for the rest of a video that
    ran past its last chunk, with ``stop`` and ``on_time`` as ``scan_scenes`` takes them)."""
    options = chunk.options
    result = ChunkResult()
    with VideoReader(
        chunk.path,
        threads=chunk.threads,
        skip_nonref=options.skip_nonref_frames,
        decode_device=options.decode_device,
        name=chunk.name,
    ) as reader:
        step = 1 / float(reader.info.frame_rate)
        cuts = CutDetector(options, reader.info.frame_rate)
        warm_from = _warm_start(reader, chunk, cuts.dark_below)
        selector: FrameSelector[DecodedFrame] = FrameSelector(
            chunk.frame_offset, spread=chunk.spread, start=warm_from
        )
        scene_start = warm_from

        def owned(start: float) -> bool:
            return chunk.start - _SAME <= start < chunk.end - _SAME

        def keep(closed: ClosedScene[DecodedFrame] | None) -> None:
            if closed is not None and owned(closed.scene.start):
                result.scenes.append(_kept(closed))

        def given_up(time: float) -> bool:
            """Whether the chunk's last scene, still open at ``time``, is handed over open."""
            if chunk.spread > 1:  # its spread frames are chosen over what was decoded
                return time >= 2 * chunk.end - chunk.start
            # Its frame is known once the scene has run twice the offset.
            settled = scene_start + 2 * chunk.frame_offset + confirm
            return time >= max(chunk.end + WARM_UP, settled)

        def done(time: float) -> bool:
            """Whether no cut before the chunk's end can still be reported: some frames
            and ``confirm`` seconds past it, and not in a dark run that began early enough
            for its middle (where a fade's cut goes, reported when the run ends) to lie
            before the end; at most one chunk length past the end."""
            if past < CONFIRM_FRAMES or time < chunk.end + confirm:
                return False
            if dark_since is None:
                return True
            return time >= min(2 * chunk.end - dark_since, 2 * chunk.end - chunk.start) + confirm

        # Detectors hold a cut back up to ``min_scene_len`` (their flash filter).
        confirm = options.min_scene_len + CONFIRM
        past = 0
        # Where the dark run the frames are in began (None: not in one).
        dark_since: float | None = None
        last_time: float | None = None
        frames = reader.analysed(reader.frames(warm_from), options.analysis_width)
        try:
            for decoded, small in frames:
                if stop is not None and stop.is_set():
                    return result
                time = decoded.time
                if chunk.limit is not None and time > chunk.limit:
                    result.beyond = last_time
                    break
                if on_time is not None:
                    on_time(time)
                last_time = time
                selector.push(time, decoded)
                for cut in cuts.feed(time, small):
                    keep(selector.cut(cut))
                    scene_start = cut
                if cuts.dark_below is not None and float(small.mean()) < cuts.dark_below:
                    dark_since = time if dark_since is None else dark_since
                else:
                    dark_since = None
                if time < chunk.end:
                    continue
                past += 1
                if owned(scene_start):
                    if given_up(time):
                        result.open = _open(selector.finish(time + step))
                        return result
                elif done(time):
                    return result
        except VideoIncomplete as exc:
            result.error = exc
            return result
        except VideoOpenFailure:
            if chunk.start <= 0:
                raise
            result.empty = True
            return result
        finally:
            frames.close()
        if result.beyond is not None:
            if owned(scene_start):
                result.open = _open(selector.finish(result.beyond + step))
            return result
        assert last_time is not None  # ``VideoReader.frames`` yields a frame or raises
        end = last_time + step
        for cut in cuts.finish(end):
            keep(selector.cut(cut))
            scene_start = cut
        keep(selector.finish(end))
        result.end = end
    return result


def _kept(closed: ClosedScene[DecodedFrame]) -> ClosedScene[StillFrame]:
    """``closed`` with its frames as pictures that can leave the worker."""
    return ClosedScene(
        scene=closed.scene,
        frame_time=closed.frame_time,
        frame=closed.frame.still(),
        spread=[(time, frame.still()) for time, frame in closed.spread],
    )


def _open(closed: ClosedScene[DecodedFrame] | None) -> ClosedScene[StillFrame] | None:
    return None if closed is None else _kept(closed)


def _warm_start(reader: VideoReader, chunk: Chunk, dark_below: float | None) -> float:
    """Where a chunk's detectors start: the keyframe at or before ``WARM_UP`` seconds before
    the chunk, or an earlier one while that one is darker than ``dark_below`` (the fades
    detector's threshold): a fade through black longer than the warm-up would otherwise be
    seen from its middle, and its cut put later. At most one chunk length further back: a
    run of black longer than that (credits) may have its cut put elsewhere in it than one
    process puts it."""
    time = chunk.start - WARM_UP
    furthest = time - (chunk.end - chunk.start)
    while time > 0:
        first = next(reader.frames_from(time), None)
        if first is None:
            return time
        small = first.to_small_bgr(chunk.options.analysis_width)
        if dark_below is None or float(small.mean()) >= dark_below or first.time <= furthest:
            return first.time
        time = first.time - WARM_UP
    return 0.0


@dataclass(frozen=True)
class ChunkedScene:
    """A scene of the chunked scan, with its frames when a chunk chose them."""

    scene: Scene
    frame: tuple[float, StillFrame] | None
    """None: no chunk chose it (decode it from the keyframe before its target)."""
    spread: tuple[StillFrame, ...] = ()


def chunk_bounds(duration: float, length: float) -> list[float]:
    """Where the chunks of a video of ``duration`` seconds begin and end: as many chunks of
    about ``length`` seconds as fit, of equal length."""
    count = max(1, math.ceil(duration / length - 0.25))
    return [duration * i / count for i in range(count + 1)]


def scan_in_chunks(
    reader: VideoReader,
    options: SceneOptions,
    frame_offset: float,
    *,
    stop: StopSignal,
    on_time: Callable[[float], None],
    spread: int,
) -> Iterator[ChunkedScene]:
    """Yield the video's scenes in order, scanned in chunks by ``options.workers`` processes.

    ``reader.info.duration`` must be known; ``on_time`` is called with the end of each chunk
    as its scenes are handed out.
    """
    duration = reader.info.duration
    assert duration is not None
    bounds = chunk_bounds(duration, options.chunk_length)
    threads = max(1, cores() // options.workers)
    # The last chunk stops a little after the declared end; more than a second of frames
    # past it is scanned here, where ``on_time`` sees each frame.
    chunks = [
        Chunk(
            path=reader.path,
            name=reader.name,
            start=start,
            end=end,
            options=options,
            frame_offset=frame_offset,
            spread=spread,
            threads=threads,
            limit=None if end < duration else duration + 1.0,
        )
        for start, end in zip(bounds[:-1], [*bounds[1:-1], math.inf], strict=True)
    ]
    logger.info(
        "%s: scanning %d chunks of %.0f s in %d worker processes",
        reader.name,
        len(chunks),
        bounds[1],
        options.workers,
    )
    merge = _Merge(frame_offset)
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=options.workers, mp_context=context)
    try:
        waiting: deque[Future[ChunkResult]] = deque()
        queued = iter(chunks)
        for chunk in chunks:
            while len(waiting) < 2 * options.workers:
                following = next(queued, None)
                if following is None:
                    break
                waiting.append(pool.submit(scan_chunk, following))
            result = waiting.popleft().result()
            if stop.is_set():
                return
            yield from merge.add(result)
            if result.error is not None:
                raise result.error
            reached = result.beyond if result.beyond is not None else result.end
            reached = chunk.end if reached is None else min(chunk.end, reached)
            if math.isfinite(reached):
                on_time(reached)
        last = result
        while last.beyond is not None:
            # The file runs on past its declared duration: on here, frame by frame.
            rest = replace(chunks[-1], start=last.beyond + _SAME, end=math.inf, limit=None)
            last = scan_chunk(rest, stop=stop, on_time=on_time)
            if stop.is_set():
                return
            yield from merge.add(last)
            if last.error is not None:
                raise last.error
        if merge.end is None:
            # The last chunks held no frame, and none before them reached the end of the file.
            raise reader.incomplete(merge.reached)
        yield from merge.finish(merge.end)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Merge:
    """Puts the chunks' scenes back in order, one after the other (see the module)."""

    def __init__(self, frame_offset: float) -> None:
        self._offset = frame_offset
        self._position = 0.0
        self._index = 0
        self._open: ClosedScene[StillFrame] | None = None
        self.end: float | None = None
        """The end of the video, once a chunk decoded to it."""

    def add(self, result: ChunkResult) -> Iterator[ChunkedScene]:
        if self.end is None:
            self.end = result.end
        for closed in result.scenes:
            start = closed.scene.start
            if start < self._position - _SAME:
                continue  # an earlier chunk closed a scene past its start
            yield from self._up_to(start)
            yield self._scene(closed.scene.start, closed.scene.end, closed)
            self._position = closed.scene.end
        if result.open is not None and result.open.scene.start >= self._position - _SAME:
            yield from self._up_to(result.open.scene.start)
            self._open = result.open
            self._position = result.open.scene.start

    def finish(self, end: float) -> Iterator[ChunkedScene]:
        yield from self._up_to(end)

    @property
    def reached(self) -> float:
        """Where the scenes handed out so far end."""
        return self._position

    def _up_to(self, start: float) -> Iterator[ChunkedScene]:
        """Close the scene before one that starts at ``start``: the open one, or one no chunk
        chose frames for."""
        if self._open is not None:
            held, self._open = self._open, None
            target = frame_target(held.scene.start, start, self._offset)
            fits = held.frame_time <= target + _SAME and held.scene.end > target
            yield self._scene(held.scene.start, start, held if fits else None)
        elif start > self._position + _SAME:
            yield self._scene(self._position, start, None)
        self._position = start

    def _scene(
        self, start: float, end: float, closed: ClosedScene[StillFrame] | None
    ) -> ChunkedScene:
        scene = Scene(index=self._index, start=start, end=end)
        self._index += 1
        if closed is None:
            return ChunkedScene(scene, None)
        spread = tuple(frame for _, frame in closed.spread)
        return ChunkedScene(scene, (closed.frame_time, closed.frame), spread)
