"""The full scan of a long video in chunks, each decoded in a worker process of its own
(``SceneOptions.workers``).

One scan decodes with FFmpeg's threads but runs the detectors on one core, so on a machine
with many cores it leaves most of them idle. Here the video is cut by time into chunks of
about ``SceneOptions.chunk_length``, each scanned by a worker as the full scan would scan
it, and the scenes are put back in order as the chunks finish. One process and the chunks
find the same scenes and frames (``tests/test_chunks.py``, ``bench/chunk_parity.py``):

- a chunk's detectors start ``warm_up`` seconds before it, from a keyframe (the seams are
  placed so: ``_keyed``), or from an earlier one while that one is darker than the fades
  detector's threshold, so that a fade through black is seen whole; at most one chunk
  length back, so a run of black longer than that may have its fade's cut put elsewhere
  in the black than one process puts it;
- a chunk owns the scenes that start in it and decodes past its end until the last of them
  is closed by the next cut, so each scene's frames (``FrameSelector``) come from one
  worker. Without spread frames it hands that scene over open once its frame is settled
  (it has run twice the frame offset) and the chunk's end is ``warm_up`` behind; the next
  cut a later chunk finds closes it. Past its end with no scene of its own open, it stops
  once no cut before its end can still be reported (a cut is confirmed frames later, a
  fade's when its dark run ends);
- where two chunks disagree at a seam, the earlier one, which saw more, wins; a scene that
  no chunk chose a frame for comes out without one (the caller decodes it,
  ``scan.FrameGrab``);
- a reader that meets a long run of non-reference frames decodes every frame from there
  on (``VideoReader.stop_skipping``): chunks after it that skipped are scanned again
  without skipping, as one process would have decoded them.

Workers are spawned, not forked (the service runs threads); ``_AHEAD`` chunks beyond one per
worker are under way at most, since a result holds its scenes' frames (scaled to the
captioner's size in the worker). The caller's stop signal reaches the workers through an
event, within a frame. What a worker logs comes back with its chunk's result and is logged
here, in chunk order, each line once (chunks overlap); damaged packets through the reader's
``Damage``, so that five are listed for the whole video, as one process lists them.

The last chunk is decoded no further than a second past the declared duration: the rest,
if the file runs on, is scanned here, where ``on_time`` can refuse a video too long.
"""

from __future__ import annotations

import itertools
import logging
import logging.handlers
import math
import multiprocessing
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.errors import VideoIncomplete, VideoOpenFailure, VideoTimestampsJump
from app.pipeline import damage
from app.pipeline.frames import ClosedScene, FrameSelector, frame_target
from app.pipeline.scenes import CutDetector, SceneOptions, brightness
from app.pipeline.types import Scene, StopSignal
from app.pipeline.video import DecodedFrame, StillFrame, VideoReader, cores

logger = logging.getLogger(__name__)

WARM_UP = 1.5
"""Seconds a chunk's detectors see before the chunk besides ``min_scene_len``: more than
AdaptiveDetector's window and its flash filter look back (``warm_up``)."""

CONFIRM = 0.5
"""Seconds decoded past a chunk's end (besides ``min_scene_len``) once its last scene is
closed: a cut just before the end is confirmed frames after it."""

CONFIRM_FRAMES = 4
"""Frames decoded past a chunk's end, at least (AdaptiveDetector looks two ahead)."""

_SAME = 1e-6
"""Seconds within which two chunks name the same time (frame times are read from the same
timestamps in every process)."""


def warm_up(options: SceneOptions) -> float:
    """Seconds a chunk's detectors see before the chunk (``WARM_UP``)."""
    return WARM_UP + options.min_scene_len


def default_workers(decode_device: str = "cpu") -> int:
    """Scan workers when none are asked for.

    Decoding on the CPU, one: the scan is bound by the decoder, which one process already
    runs on every core (on an H100 machine's 16 cores one process scanned 10 min of 1080p
    in 24.8 s against 20.8 s for a plain decode, and 4 or 8 workers took 27 s:
    ``bench/results/gpu-cores-2026-11-26.md``). Decoding with NVDEC, half the cores, at most
    8 (1 on two cores): copying each frame back from the GPU bounds one process there (a
    plain NVDEC decode of that video in one process took 27.5 s), and each worker copies its
    own (16 workers scanned it in 11.8 s).
    """
    if decode_device == "cpu":
        return 1
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
    skip_nonref: bool
    """Skip non-reference frames (``SceneOptions.skip_nonref_frames``), unless a chunk
    before found a long run of them: one process decodes every frame after that."""
    image_side: int | None
    """The scenes' frames leave the worker scaled as ``DecodedFrame.to_image`` scales them
    to this long side (the captioner's size; None: full size)."""
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
    error: VideoOpenFailure | None = None
    """The file broke off in the chunk (``VideoIncomplete``), its timestamps jumped back, or
    the first chunk found no frame: ``scenes`` are those before, and the scan ends with it."""
    last: float | None = None
    """The time of the last frame decoded."""
    skipping_stopped_at: float | None = None
    """Where the worker's reader stopped skipping non-reference frames, if it did."""
    damage: damage.Seen = field(default_factory=damage.Seen)
    """The damaged packets the chunk met (logged by the parent's ``Damage``)."""
    records: list[logging.LogRecord] = field(default_factory=list)
    """What the worker logged while it scanned the chunk, but of damaged packets."""


def scan_chunk(
    chunk: Chunk,
    *,
    stop: StopSignal | None = None,
    on_time: Callable[[float], None] | None = None,
    damaged: damage.Damage | None = None,
) -> ChunkResult:
    """Scan one chunk (in a worker process, or in the caller's for the rest of a video that
    ran past its last chunk, with ``stop`` and ``on_time`` as ``scan_scenes`` takes them and
    the caller's reader's ``damaged``, so that a packet it logged is not logged again)."""
    result = ChunkResult()
    with VideoReader(
        chunk.path,
        threads=chunk.threads,
        skip_nonref=chunk.skip_nonref,
        decode_device=chunk.options.decode_device,
        name=chunk.name,
    ) as reader:
        if damaged is not None:
            reader.damage = damaged
        try:
            _scan(reader, chunk, result, stop or _STOPPED, on_time)
        except VideoOpenFailure as exc:
            if chunk.start <= 0 or isinstance(exc, VideoIncomplete | VideoTimestampsJump):
                result.error = exc
            # Else no frame from here on: the frames ended before this chunk (a declared
            # duration that counts a longer audio track, or a file cut short). A chunk before
            # it that reached the end of the file says where the video ends; if none did,
            # the merge reports the video incomplete.
        result.skipping_stopped_at = reader.skipping_stopped_at
        result.damage = reader.damage.seen()
    return result


def _scan(
    reader: VideoReader,
    chunk: Chunk,
    result: ChunkResult,
    stop: StopSignal,
    on_time: Callable[[float], None] | None,
) -> None:
    options = chunk.options
    step = 1 / float(reader.info.frame_rate)
    cuts = CutDetector(options, reader.info.frame_rate)
    warm_from = _warm_start(reader, chunk, cuts.dark_below)
    selector: FrameSelector[DecodedFrame] = FrameSelector(
        chunk.frame_offset, spread=chunk.spread, start=warm_from
    )
    scene_start = warm_from
    # Detectors hold a cut back up to ``min_scene_len`` (their flash filter).
    confirm = options.min_scene_len + CONFIRM
    past = 0
    # Where the dark run the frames are in began (None: not in one).
    dark_since: float | None = None

    def owned(start: float) -> bool:
        return chunk.start - _SAME <= start < chunk.end - _SAME

    def keep(closed: ClosedScene[DecodedFrame] | None) -> None:
        if closed is not None and owned(closed.scene.start):
            result.scenes.append(_kept(closed, chunk.image_side))

    def fade_pending(time: float) -> bool:
        """Whether the frames are in a dark run that began early enough for its middle,
        where a fade's cut goes (reported when the run ends), to lie before the chunk's end;
        for one chunk length past the end at most."""
        if dark_since is None:
            return False
        return time < min(2 * chunk.end - dark_since, 2 * chunk.end - chunk.start) + confirm

    def given_up(time: float) -> bool:
        """Whether the chunk's last scene, still open at ``time``, is handed over open: its
        frame is known once it has run twice the offset. Never with spread frames, which are
        chosen over the whole scene."""
        if chunk.spread > 1 or fade_pending(time):
            return False
        settled = scene_start + 2 * chunk.frame_offset + confirm
        return time >= max(chunk.end + warm_up(options), settled)

    def done(time: float) -> bool:
        """Whether no cut before the chunk's end can still be reported."""
        return past >= CONFIRM_FRAMES and time >= chunk.end + confirm and not fade_pending(time)

    frames = reader.analysed(reader.frames(warm_from), options.analysis_width)
    with closing(frames):
        for decoded, small in frames:
            if stop.is_set():
                return
            time = decoded.time
            if chunk.limit is not None and time > chunk.limit:
                break
            if on_time is not None:
                on_time(time)
            result.last = time
            selector.push(time, decoded)
            for cut in cuts.feed(time, small):
                keep(selector.cut(cut))
                scene_start = cut
            if cuts.dark_below is not None and brightness(small) < cuts.dark_below:
                dark_since = time if dark_since is None else dark_since
            else:
                dark_since = None
            if time < chunk.end:
                continue
            past += 1
            if owned(scene_start):
                if given_up(time):
                    result.open = _open(selector.finish(time + step), chunk.image_side)
                    return
            elif done(time):
                return
        else:
            assert result.last is not None  # ``VideoReader.frames`` yields a frame or raises
            end = result.last + step
            for cut in cuts.finish(end):
                keep(selector.cut(cut))
                scene_start = cut
            keep(selector.finish(end))
            result.end = end
            return
    # Stopped at the limit, with frames after it.
    result.beyond = result.last
    if owned(scene_start) and result.last is not None:
        result.open = _open(selector.finish(result.last + step), chunk.image_side)


_STOPPED: StopSignal = threading.Event()
"""Set in a worker process when the scan it works for ends early (``_start_worker``)."""

_PROJECT = __name__.split(".")[0]
"""The logger above the project's: what a worker logs through it comes back to the parent."""

_RECORDS: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
"""What a worker process logs while it scans a chunk (``_start_worker``)."""


def _start_worker(stopped: StopSignal, level: int) -> None:
    """Worker initialiser: the parent's event that ends every chunk under way, and its log
    level for the project's loggers. Their records are kept for the chunk's result instead
    of going bare to the worker's stderr; damaged packets' go back as ``ChunkResult.damage``."""
    global _STOPPED
    _STOPPED = stopped
    handler = logging.handlers.QueueHandler(_RECORDS)
    handler.addFilter(lambda record: record.name != damage.logger.name)
    project = logging.getLogger(_PROJECT)
    project.setLevel(level)
    project.addHandler(handler)


def _scan_in_worker(chunk: Chunk) -> ChunkResult:
    """``scan_chunk`` in a worker process, with what it logged."""
    result = scan_chunk(chunk)
    while not _RECORDS.empty():
        result.records.append(_RECORDS.get_nowait())
    return result


class _Logged:
    """Logs what the chunks' workers logged, in chunk order, each line once: chunks overlap,
    and each worker's reader tells what it meets (a long run of non-reference frames, late
    frames). A line the scan's own reader logged too (NVDEC cannot decode the stream) comes
    twice: once from it, once from the workers."""

    def __init__(self, reader: VideoReader) -> None:
        self._damage = reader.damage
        self._lines: set[tuple[str, int, str]] = set()

    def __call__(self, result: ChunkResult) -> None:
        self._damage.add(result.damage)
        for record in result.records:
            line = (record.name, record.levelno, record.getMessage())
            if line in self._lines:
                continue
            self._lines.add(line)
            target = logging.getLogger(record.name)
            if target.isEnabledFor(record.levelno):
                target.handle(record)


def _kept(closed: ClosedScene[DecodedFrame], side: int | None) -> ClosedScene[StillFrame]:
    """``closed`` with its frames as pictures that can leave the worker."""
    return ClosedScene(
        scene=closed.scene,
        frame_time=closed.frame_time,
        frame=closed.frame.still(side),
        spread=[(time, frame.still(side)) for time, frame in closed.spread],
        exact=closed.exact,
    )


def _open(
    closed: ClosedScene[DecodedFrame] | None, side: int | None
) -> ClosedScene[StillFrame] | None:
    return None if closed is None else _kept(closed, side)


def _warm_start(reader: VideoReader, chunk: Chunk, dark_below: float | None) -> float:
    """Where a chunk's detectors start: the keyframe at or before ``WARM_UP`` seconds before
    the chunk, or an earlier one while that one is darker than ``dark_below`` (the fades
    detector's threshold): a fade through black longer than the warm-up would otherwise be
    seen from its middle, and its cut put later. At most one chunk length further back: a
    run of black longer than that (credits) may have its cut put elsewhere in it than one
    process puts it."""
    time = chunk.start - warm_up(chunk.options)
    # The last chunk's end is infinite: its nominal length.
    furthest = time - chunk.options.chunk_length
    while time > 0:
        first = next(reader.frames_from(time), None)
        if first is None:
            return time
        small = first.to_small_bgr(chunk.options.analysis_width)
        if dark_below is None or brightness(small) >= dark_below or first.time <= furthest:
            return first.time
        # The seek may land after the time asked (a stream that starts late).
        time = min(time, first.time) - warm_up(chunk.options)
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


def _keyed(reader: VideoReader, bounds: list[float], warm: float) -> list[float]:
    """``bounds`` moved back to ``warm`` seconds (and a millisecond) after the keyframe before
    each, so that a chunk's warm-up decodes from that keyframe and no further back; a bound
    is kept where that would halve the chunk before it."""
    keyed = bounds[:1]
    for bound, following in itertools.pairwise(bounds[1:]):
        key = reader.keyframe_before(bound - warm)
        moved = None if key is None else key + warm + 0.001
        shortest = keyed[-1] + (bound - keyed[-1]) / 2
        keyed.append(moved if moved is not None and shortest < moved <= bound else bound)
        assert keyed[-1] < following
    return [*keyed, bounds[-1]]


def scan_in_chunks(
    reader: VideoReader,
    options: SceneOptions,
    frame_offset: float,
    *,
    stop: StopSignal,
    on_time: Callable[[float], None],
    spread: int,
    frame_side: int | None,
) -> Iterator[ChunkedScene]:
    """Yield the video's scenes in order, scanned in chunks by ``options.workers`` processes.

    ``reader.info.duration`` must be known; ``on_time`` is called with the last frame of
    each chunk before its scenes are handed out. ``frame_side``: the scenes' frames come
    scaled to this long side (``DecodedFrame.to_image``), as the caller will take them.
    """
    duration = reader.info.duration
    assert duration is not None
    bounds = _keyed(reader, chunk_bounds(duration, options.chunk_length), warm_up(options))
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
            threads=max(1, cores() // options.workers),
            skip_nonref=reader.skip_nonref,
            image_side=frame_side,
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
    merge = _Merge(frame_offset, options.min_scene_len)
    context = multiprocessing.get_context("spawn")
    stopped = context.Event()
    pool = ProcessPoolExecutor(
        max_workers=options.workers,
        mp_context=context,
        initializer=_start_worker,
        initargs=(stopped, logging.getLogger(_PROJECT).getEffectiveLevel()),
    )
    logged = _Logged(reader)

    def scanned(chunk: Chunk, future: Future[ChunkResult]) -> ChunkResult | None:
        """The chunk's result, scanned again decoding every frame where one process would
        have (a chunk before it stopped skipping non-reference frames); None when stopped."""
        while not stop.is_set():
            done, _ = wait([future], timeout=_POLL)
            if not done:
                continue
            result = future.result()
            if chunk.skip_nonref and _skipping_stopped(reader, result):
                future = pool.submit(_scan_in_worker, replace(chunk, skip_nonref=False))
                chunk = replace(chunk, skip_nonref=False)
                continue
            return result
        return None

    try:
        waiting: deque[tuple[Chunk, Future[ChunkResult]]] = deque()
        queued = iter(chunks)
        result = ChunkResult()
        for _ in chunks:
            while len(waiting) < options.workers + _AHEAD:
                following = next(queued, None)
                if following is None:
                    break
                following = replace(following, skip_nonref=reader.skip_nonref)
                waiting.append((following, pool.submit(_scan_in_worker, following)))
            chunk, future = waiting.popleft()
            got = scanned(chunk, future)
            if got is None:
                return
            result = got
            logged(result)
            if result.skipping_stopped_at is not None and reader.skip_nonref:
                # As one process would: every frame from there on, the frames grabbed too.
                reader.stop_skipping(result.skipping_stopped_at)
            if result.last is not None:
                on_time(min(chunk.end, result.last))
            yield from merge.add(result)
            if result.error is not None:
                raise result.error
        while result.beyond is not None:
            # The file runs on past its declared duration: on here, frame by frame, from
            # before where the last chunk stopped (a cut just before it is confirmed after).
            rest = replace(
                chunks[-1],
                start=result.beyond - options.min_scene_len - CONFIRM,
                end=math.inf,
                skip_nonref=reader.skip_nonref,
                limit=None,
            )
            result = scan_chunk(rest, stop=stop, on_time=on_time, damaged=reader.damage)
            if stop.is_set():
                return
            yield from merge.add(result)
            if result.error is not None:
                raise result.error
        if merge.end is None:
            # The last chunks held no frame, and none before them reached the end of the file.
            raise reader.incomplete(merge.reached)
        yield from merge.finish(merge.end)
    finally:
        stopped.set()
        pool.shutdown(wait=True, cancel_futures=True)


_POLL = 0.1
"""Seconds between looks at the caller's stop signal while a chunk is under way."""

_AHEAD = 2
"""Chunks submitted beyond one per worker: a result holds its scenes' frames until handed out."""


def _skipping_stopped(reader: VideoReader, result: ChunkResult) -> bool:
    """Whether ``result``, scanned skipping non-reference frames, should have decoded every
    frame from an earlier time: where ``reader`` stopped skipping (a chunk before found a
    long run of them), which this chunk did not reach or did not find itself."""
    before = reader.skipping_stopped_at
    if before is None or result.last is None or before >= result.last:
        return False
    own = result.skipping_stopped_at
    return own is None or own > before + _SAME


class _Merge:
    """Puts the chunks' scenes back in order, one after the other (see the module)."""

    def __init__(self, frame_offset: float, min_scene_len: float) -> None:
        self._offset = frame_offset
        self._near = max(min_scene_len, _SAME)
        """Two chunks that put a cut less than this apart saw the same cut."""
        self._position = 0.0
        self._index = 0
        self._open: ClosedScene[StillFrame] | None = None
        self.end: float | None = None
        """The end of the video, once a chunk decoded to it."""

    @property
    def reached(self) -> float:
        """Where the scenes handed out so far end."""
        return self._position

    def add(self, result: ChunkResult) -> Iterator[ChunkedScene]:
        if self.end is None:
            self.end = result.end
        for closed in result.scenes:
            yield from self._closed(closed)
        if result.open is not None:
            yield from self._hold(result.open)

    def finish(self, end: float) -> Iterator[ChunkedScene]:
        yield from self._up_to(end)

    def _begin(self, start: float) -> float | None:
        """Where a scene that a chunk starts at ``start`` begins: at the cut an earlier chunk
        placed, when less than ``_near`` from it; None when that cut lies inside the scene."""
        if start < self._position - self._near:
            return None
        return self._position if start < self._position + self._near else start

    def _hold(self, held: ClosedScene[StillFrame]) -> Iterator[ChunkedScene]:
        if self._open is not None and abs(held.scene.start - self._position) < self._near:
            return  # open in an earlier chunk too, which decoded more of it
        begin = self._begin(held.scene.start)
        if begin is None:
            return  # the next cut closes the scene from that earlier chunk's cut
        yield from self._up_to(begin)
        self._open = held

    def _closed(self, closed: ClosedScene[StillFrame]) -> Iterator[ChunkedScene]:
        start, end = closed.scene.start, closed.scene.end
        # While a scene is held open, ``_position`` is where it begins.
        if self._open is not None and abs(start - self._position) < self._near:
            self._open = None  # closed by a later chunk, which knows the whole scene
        if end < self._position + self._near:
            return  # an earlier chunk closed a scene past it
        begin = self._begin(start)
        if begin is None:
            # A cut an earlier chunk found lies inside it: the part after it, framed afresh.
            yield from self._up_to(end)
            return
        yield from self._up_to(begin)
        # Its frame, chosen for a start a frame or two away, is kept while it lies in it.
        yield self._scene(begin, end, closed if closed.frame_time >= begin - _SAME else None)
        self._position = end

    def _up_to(self, start: float) -> Iterator[ChunkedScene]:
        """Close the scene before one that starts at ``start``: the open one, or one no chunk
        chose frames for."""
        if self._open is not None:
            held, self._open = self._open, None
            # Its frame was chosen for the part decoded: right when the target is the same
            # and it lies in the scene (a cut that came late leaves only later frames).
            seen = frame_target(held.scene.start, held.scene.end, self._offset)
            fits = (
                abs(frame_target(self._position, start, self._offset) - seen) < _SAME
                and self._position - _SAME <= held.frame_time < start - _SAME
            )
            yield self._scene(self._position, start, held if fits else None)
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
        if not closed.exact:  # its frame is decoded again, as one process does
            return ChunkedScene(scene, None, spread)
        return ChunkedScene(scene, (closed.frame_time, closed.frame), spread)
