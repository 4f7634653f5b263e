"""The pipeline: one decoding pass finds scenes and grabs their frames while the captioner
describes the scenes that have room for a description, in a second thread.

``describe`` works on a local file; ``describe_media`` fetches a video and subtitles by path
or URL first. Both are generators that yield each ``Description`` as soon as it exists, in
time order. The CLI, the HTTP service and the tests all call them.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from app.errors import VideoTooLong
from app.models.base import Captioner
from app.pipeline.frames import ClosedScene, FrameSelector
from app.pipeline.novelty import DEFAULT_METEOR_THRESHOLD, MeteorScorer, NoveltyFilter, NoveltyScorer
from app.pipeline.pauses import PauseFinder
from app.pipeline.scenes import CutDetector, SceneOptions
from app.pipeline.sources import FetchOptions, URLGuard, fetch
from app.pipeline.subtitles import load_speech_intervals
from app.pipeline.types import Description, Interval, Progress, Scene, Stage
from app.pipeline.video import DecodedFrame, VideoReader

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class DescribeOptions:
    """What to describe and how."""

    frame_offset: float = 1.0
    """Seconds after a scene starts at which its frame is taken."""
    min_gap: float = 2.0
    """Shortest dialogue-free window, seconds, that can hold a description."""
    novelty_threshold: float = DEFAULT_METEOR_THRESHOLD
    """A caption at least this similar to the previous one is dropped as a repeat."""
    scenes: SceneOptions = field(default_factory=SceneOptions)
    """Scene detection settings."""
    batch_size: int = 8
    """Most frames given to the captioner in one call."""
    queue_size: int = 16
    """Scenes waiting for the captioner; bounds memory when captioning is slower."""
    max_duration: float | None = None
    """Longest video accepted, seconds (None: no limit)."""
    progress_interval: float = 1.0
    """Seconds of video between two progress reports while scanning."""


@dataclass
class _Candidate:
    scene: Scene
    window: Interval
    frame_time: float
    image: Image.Image


@dataclass
class _Failed:
    error: BaseException


_DONE = object()


class _ProgressTracker:
    """Builds progress snapshots from both threads and hands them to the callback."""

    def __init__(self, callback: ProgressCallback | None, duration: float | None) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self._state = Progress(stage=Stage.SCANNING, duration=duration)

    def update(self, **changes: object) -> None:
        with self._lock:
            self._state = replace(self._state, **changes)  # type: ignore[arg-type]
            state = self._state
        if self._callback is not None:
            self._callback(state)


def _scan(
    reader: VideoReader,
    options: DescribeOptions,
    finder: PauseFinder,
    out: queue.Queue[object],
    stop: threading.Event,
    progress: _ProgressTracker,
) -> None:
    """Producer: decode once, detect cuts, pick each scene's frame, queue the usable ones."""
    info = reader.info
    cuts = CutDetector(options.scenes, info.frame_rate)
    selector: FrameSelector[DecodedFrame] = FrameSelector(options.frame_offset)
    scenes_found = 0
    next_report = 0.0
    last_time = 0.0

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def close(closed: ClosedScene[DecodedFrame] | None) -> bool:
        nonlocal scenes_found
        if closed is None:
            return True
        scenes_found += 1
        window = finder.window(closed.scene)
        if window is None:
            logger.debug("scene %d has no usable pause", closed.scene.index)
            return True
        # Only scenes that will be described pay for the full-size RGB conversion.
        image = closed.frame.to_image()
        return put(_Candidate(closed.scene, window, closed.frame_time, image))

    for decoded in reader.frames():
        if stop.is_set():
            return
        last_time = decoded.time
        if options.max_duration is not None and last_time > options.max_duration:
            raise VideoTooLong(
                f"video runs past {options.max_duration:g} s, the longest accepted"
            )
        selector.push(decoded.time, decoded)
        for cut in cuts.feed(decoded.time, decoded.to_small_bgr(options.scenes.analysis_width)):
            if not close(selector.cut(cut)):
                return
        if decoded.time >= next_report:
            next_report = decoded.time + options.progress_interval
            progress.update(scanned_seconds=decoded.time, scenes_found=scenes_found)
    end = last_time + 1 / float(info.frame_rate)
    for cut in cuts.finish(end):
        if not close(selector.cut(cut)):
            return
    close(selector.finish(end))
    progress.update(scanned_seconds=end, scenes_found=scenes_found, stage=Stage.CAPTIONING)


def describe(
    video: Path,
    captioner: Captioner,
    *,
    speech: Sequence[Interval] | None = None,
    options: DescribeOptions | None = None,
    scorer: NoveltyScorer | None = None,
    on_progress: ProgressCallback | None = None,
) -> Iterator[Description]:
    """Describe a local video file.

    Args:
        video: Path to the video.
        captioner: Turns frames into text.
        speech: When someone speaks (from subtitles or audio); None: unknown, every scene
            is described.
        options: Pipeline options.
        scorer: Similarity measure for the novelty check (default: METEOR).
        on_progress: Called with progress snapshots, from the decoding thread too.

    Yields:
        Each new description, in time order, as soon as it is captioned.

    Raises:
        VideoOpenFailure: the file is not a readable video.
        VideoTooLong: the video is longer than ``options.max_duration``.
    """
    options = options or DescribeOptions()
    reader = VideoReader(video)
    info = reader.info
    if (
        options.max_duration is not None
        and info.duration is not None
        and info.duration > options.max_duration
    ):
        reader.close()
        raise VideoTooLong(
            f"video lasts {info.duration:.0f} s, longer than the {options.max_duration:g} s "
            "accepted"
        )
    novelty = NoveltyFilter(scorer or MeteorScorer(), options.novelty_threshold)
    finder = PauseFinder(speech, options.min_gap)
    progress = _ProgressTracker(on_progress, info.duration)
    items: queue.Queue[object] = queue.Queue(maxsize=options.queue_size)
    stop = threading.Event()

    def produce() -> None:
        try:
            _scan(reader, options, finder, items, stop, progress)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            items.put(_Failed(exc))
        finally:
            items.put(_DONE)

    producer = threading.Thread(target=produce, name=f"scan-{video.name}", daemon=True)
    producer.start()
    captioned = 0
    try:
        finished = False
        while not finished:
            batch: list[_Candidate] = []
            item = items.get()
            while True:
                if isinstance(item, _Failed):
                    raise item.error
                if item is _DONE:
                    finished = True
                    break
                assert isinstance(item, _Candidate)
                batch.append(item)
                if len(batch) >= options.batch_size:
                    break
                try:
                    item = items.get_nowait()
                except queue.Empty:
                    break
            if not batch:
                continue
            texts = captioner.caption([c.image for c in batch])
            for candidate, text in zip(batch, texts, strict=True):
                captioned += 1
                candidate.image.close()
                description = _accept(candidate, text, novelty)
                if description is not None:
                    yield description
            progress.update(scenes_captioned=captioned)
        progress.update(stage=Stage.DONE)
    finally:
        stop.set()
        # Unblock a producer waiting on a full queue, then wait for it to let go of the file.
        while producer.is_alive():
            try:
                items.get(timeout=0.5)
            except queue.Empty:
                continue
        producer.join()
        reader.close()


def _accept(candidate: _Candidate, text: str, novelty: NoveltyFilter) -> Description | None:
    text = text.strip()
    scene = candidate.scene
    if not text:
        logger.warning("scene %d: the captioner returned no text; skipped", scene.index)
        return None
    is_new, similarity = novelty.check(text)
    if not is_new:
        logger.debug("scene %d: %r repeats the previous description (%.2f)", scene.index, text, similarity)
        return None
    return Description(
        start=candidate.window.start,
        end=candidate.window.end,
        frame_time=candidate.frame_time,
        scene_index=scene.index,
        scene_start=scene.start,
        scene_end=scene.end,
        text=text,
        novelty=similarity,
    )


def describe_media(
    video: str,
    captioner: Captioner,
    *,
    subtitles: str | None = None,
    options: DescribeOptions | None = None,
    fetch_options: FetchOptions | None = None,
    guard: URLGuard | None = None,
    scorer: NoveltyScorer | None = None,
    on_progress: ProgressCallback | None = None,
) -> Iterator[Description]:
    """Describe a video given by local path or http(s) URL, with optional subtitles.

    Downloads go to temporary files that are removed when the generator finishes or is
    closed. Raises what ``fetch``, ``load_speech_intervals`` and ``describe`` raise.
    """
    if on_progress is not None:
        on_progress(Progress(stage=Stage.DOWNLOADING))
    with fetch(video, what="video", options=fetch_options, guard=guard) as video_path:
        speech: list[Interval] | None = None
        if subtitles is not None:
            with fetch(subtitles, what="subtitles", options=fetch_options, guard=guard) as path:
                speech = load_speech_intervals(path)
        yield from describe(
            video_path,
            captioner,
            speech=speech,
            options=options,
            scorer=scorer,
            on_progress=on_progress,
        )
