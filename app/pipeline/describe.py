"""The pipeline: one decoding pass finds scenes and grabs their frames while the captioner
describes the scenes that have room for a description, in a second thread.

``describe`` works on a local file; ``describe_media`` fetches a video and subtitles by path
or URL first. Both are generators that yield each ``Description`` as soon as it exists, in
time order. The CLI, the HTTP service and the tests all call them.
"""

from __future__ import annotations

import bisect
import collections
import functools
import logging
import math
import queue
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

import numpy as np
from PIL import Image

from app.errors import VideoTooLong
from app.models.base import Captioner, CaptionRequest, frames_per_scene
from app.models.translators import Translator
from app.pipeline.cleanup import clean_caption, trim_to_words
from app.pipeline.novelty import (
    AUTO_SCORER,
    NoveltyFilter,
    NoveltyScorer,
    check_scorer,
    make_novelty_filter,
    scorer_for_language,
)
from app.pipeline.pauses import PauseFinder, SpeechTrack
from app.pipeline.scan import ScannedScene, prefetched, scan_scenes
from app.pipeline.scenes import SceneOptions
from app.pipeline.sources import FetchOptions, URLGuard, fetch
from app.pipeline.speech import SPEECH_DETECTORS, SpeechOptions, stream_speech
from app.pipeline.subtitles import load_dialogue, speech_intervals
from app.pipeline.translate import translate_captions, translation_for
from app.pipeline.types import (
    Description,
    DialogueLine,
    Interval,
    Progress,
    Scene,
    Stage,
    StopSignal,
)
from app.pipeline.video import THUMBNAIL_SIDE, Picture, VideoReader

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]

# Tokens the captioner may generate per word of budget: BLIP's WordPiece vocabulary splits
# some words, and the text is trimmed at a word boundary afterwards anyway.
_TOKENS_PER_WORD = 1.5


class SpeechSource(StrEnum):
    """Where the dialogue intervals come from."""

    SUBTITLES = "subtitles"
    """Only the subtitles; without subtitles every scene is a candidate."""
    AUDIO = "audio"
    """Voice activity detection on the video's audio track."""
    BOTH = "both"
    """The union of the two."""
    AUTO = "auto"
    """Subtitles when given, else the audio track."""


LANGUAGE_CODE = re.compile(r"[a-z]{2}")
"""An ISO 639-1 language code: ``en``, ``ru``, ..."""


@dataclass(frozen=True)
class DescribeOptions:
    """What to describe and how."""

    frame_offset: float = 1.0
    """Seconds after a scene starts at which its frame is taken."""
    min_gap: float = 2.0
    """Shortest dialogue-free window, seconds, that can hold a description."""
    novelty_scorer: str = AUTO_SCORER
    """How captions are compared: ``meteor`` (word overlap with WordNet synonyms, English),
    ``semantic`` (sentence embeddings), ``chrf`` (character n-grams, any language), or
    ``auto``: meteor for English, chrf for other languages."""
    novelty_threshold: float | None = None
    """A caption at least this similar to a recent one is dropped as a repeat (None: the
    scorer's measured default)."""
    novelty_history: int | None = None
    """How many recent descriptions a caption is compared with (None: the scorer's default)."""
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
    words_per_second: float = 2.5
    """Narration speed used for each description's word budget (150 words a minute)."""
    language: str = "en"
    """The viewer's language (ISO 639-1 code): descriptions are written in it."""
    min_words: int = 3
    """A window that holds fewer words than this is not used."""
    similar_frame_threshold: float | None = 0.97
    """Skip a frame at least this similar (0..1, colour thumbnails) to the last captioned
    one without calling the model; None compares nothing."""
    caption_image_side: int | None = 768
    """Frames go to the captioner scaled down to at most this many pixels on their long side
    (bicubic, in the decoding thread); None: full size. Captioning models look at 224-384 px,
    and their processor, which runs in the captioning thread, resizes a 1080p frame in about
    25 ms against 6 ms for a 768 px one (``bench/captioning.py``)."""

    # --- What a prompt-driven captioner is told besides the frame ---------------------------
    frames_per_scene: int | None = None
    """Frames spread over each scene given to the captioner (``CaptionRequest.frames``);
    None: as many as the captioner asks for (1 for BLIP, 3 for vision-language models)."""
    dialogue_lines: int = 2
    """Subtitle lines given as context from before the pause, and as many from after it."""
    previous_descriptions: int = 3
    """Descriptions accepted before a scene that its captioner is shown, for continuity."""

    def __post_init__(self) -> None:
        if self.words_per_second <= 0:
            raise ValueError("words_per_second must be > 0")
        if not LANGUAGE_CODE.fullmatch(self.language):
            raise ValueError(
                "language must be an ISO 639-1 code of two lower-case letters, got "
                f"{self.language!r}"
            )
        check_scorer(self.novelty_scorer, self.language)
        if self.min_words < 1:
            raise ValueError("min_words must be >= 1")
        if self.batch_size < 1 or self.queue_size < 1:
            raise ValueError("batch_size and queue_size must be >= 1")
        if self.similar_frame_threshold is not None and not 0 < self.similar_frame_threshold <= 1:
            raise ValueError("similar_frame_threshold must be in (0, 1] or None")
        if self.caption_image_side is not None and self.caption_image_side < 16:
            raise ValueError("caption_image_side must be >= 16 pixels or None")
        if self.frames_per_scene is not None and not 1 <= self.frames_per_scene <= 16:
            raise ValueError("frames_per_scene must be between 1 and 16, or None")
        if self.dialogue_lines < 0 or self.previous_descriptions < 0:
            raise ValueError("dialogue_lines and previous_descriptions must be >= 0")

    def max_words(self, window: Interval) -> int:
        """Words that fit in ``window`` at ``words_per_second``."""
        return math.floor(window.duration * self.words_per_second + 1e-9)


@dataclass(frozen=True)
class MediaOptions:
    """Everything ``describe_media`` needs besides the inputs: how to fetch them, where the
    dialogue comes from, and how to describe."""

    describe: DescribeOptions = field(default_factory=DescribeOptions)
    """Scene, pause, captioning and novelty options."""
    speech_source: SpeechSource = SpeechSource.AUTO
    """Where the dialogue intervals come from."""
    speech_detector: str = "silero"
    """Voice activity detector for the audio track, a name in ``SPEECH_DETECTORS``."""
    speech: SpeechOptions = field(default_factory=SpeechOptions)
    """Voice activity detection options."""
    fetch: FetchOptions = field(default_factory=FetchOptions)
    """Download limits."""
    guard: URLGuard | None = None
    """Checks every URL fetched (SSRF); None fetches any http(s) URL."""

    def __post_init__(self) -> None:
        # Its packages are checked when it is built, once there is audio to listen to: a film
        # with subtitles, or without a soundtrack, is described without them.
        SPEECH_DETECTORS.known(self.speech_detector)


class _Either:
    """Set when either of two stop signals is."""

    def __init__(self, first: StopSignal, second: StopSignal | None) -> None:
        self._signals = (first,) if second is None else (first, second)

    def is_set(self) -> bool:
        return any(signal.is_set() for signal in self._signals)


@dataclass
class _Candidate:
    scene: Scene
    window: Interval
    frame_time: float
    image: Image.Image
    max_words: int
    frames: tuple[Image.Image, ...] = ()

    def close(self) -> None:
        for image in (self.image, *self.frames):
            image.close()


def _thumbnail(frame: Picture) -> np.ndarray:
    """A tiny colour copy of the frame, for the near-duplicate check."""
    return frame.thumbnail(THUMBNAIL_SIDE)


def frame_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """1 minus the mean absolute difference of two thumbnails, scaled to 0..1."""
    return 1.0 - float(np.abs(a - b).mean()) / 255.0


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
    stop: StopSignal,
    progress: _ProgressTracker,
    scanning: threading.Event,
    spread: int,
) -> None:
    """Producer: find the scenes (``scan_scenes``), take the frame of each that has room for
    a description (and ``spread`` frames over it when more than one), queue the usable ones."""
    counts = {"scenes_found": 0, "scenes_without_pause": 0, "scenes_similar": 0}
    next_report = 0.0
    last_thumbnail: np.ndarray | None = None

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def close(found: ScannedScene, window: Interval) -> bool:
        nonlocal last_thumbnail
        scene = found.scene
        chosen = found.frame()
        if chosen is None:
            logger.debug("scene %d holds no decodable frame", scene.index)
            return True
        frame_time, frame = chosen
        if options.similar_frame_threshold is not None:
            thumbnail = _thumbnail(frame)
            if last_thumbnail is not None:
                similarity = frame_similarity(thumbnail, last_thumbnail)
                if similarity >= options.similar_frame_threshold:
                    logger.debug("scene %d looks like the last one (%.3f)", scene.index, similarity)
                    counts["scenes_similar"] += 1
                    return True
            last_thumbnail = thumbnail
        # Only scenes that will be described pay for the RGB conversion.
        image = frame.to_image(options.caption_image_side)
        frames = tuple(each.to_image(options.caption_image_side) for each in found.spread)
        max_words = options.max_words(window)
        return put(_Candidate(scene, window, frame_time, image, max_words, frames))

    def reached(time: float) -> None:
        nonlocal next_report
        if not scanning.is_set():
            logger.debug("%s: first frame decoded, at %.3f s", reader.name, time)
            scanning.set()
        if options.max_duration is not None and time > options.max_duration:
            raise VideoTooLong(f"video runs past {options.max_duration:g} s, the longest accepted")
        if time >= next_report:
            next_report = time + options.progress_interval
            progress.update(scanned_seconds=time, **counts)

    end = 0.0

    def with_pauses() -> Iterator[tuple[ScannedScene, Interval]]:
        """The scenes that have room for a description, with their pause."""
        nonlocal end
        for found in scan_scenes(
            reader,
            options.scenes,
            options.frame_offset,
            stop=stop,
            on_time=reached,
            spread=spread,
            frame_side=options.caption_image_side,
        ):
            end = found.scene.end
            if stop.is_set():
                return
            counts["scenes_found"] += 1
            if not finder.ready(found.scene, stop):
                return
            window = finder.window(found.scene)
            if window is None:
                logger.debug("scene %d has no usable pause", found.scene.index)
                counts["scenes_without_pause"] += 1
                continue
            yield found, window

    # Frames the scan did not keep are decoded in the background, beside it (``prefetched``).
    for found, window in prefetched(with_pauses(), lambda item: item[0]):
        if stop.is_set() or not close(found, window):
            return
    if stop.is_set():
        return
    progress.update(scanned_seconds=end, stage=Stage.CAPTIONING, **counts)


def describe(
    video: Path,
    captioner: Captioner,
    *,
    speech: Sequence[Interval] | SpeechTrack | None = None,
    options: DescribeOptions | None = None,
    scorer: NoveltyScorer | None = None,
    on_progress: ProgressCallback | None = None,
    name: str | None = None,
    stop: StopSignal | None = None,
    dialogue: Sequence[DialogueLine] = (),
    translator: Translator | None = None,
) -> Iterator[Description]:
    """Describe a local video file.

    Args:
        video: Path to the video.
        captioner: Turns frames into text.
        speech: When someone speaks (from subtitles or audio), or a ``SpeechTrack`` that a
            detector fills while the video is scanned (each scene waits for the speech under
            it); None: unknown, every scene is described.
        options: Pipeline options.
        scorer: A built scorer of the kind ``options.novelty_scorer`` names, shared between
            videos so its model loads once; None builds one.
        on_progress: Called with progress snapshots, from the decoding thread too.
        name: What error messages call the video (its URL); None: the file's name.
        stop: When set, decoding and captioning stop at the next safe point (between two
            frames, before a batch, between two descriptions) and the generator ends early,
            without a ``done`` progress report.
        dialogue: The subtitle lines, sorted by start: the captioner is told those around
            each pause (``options.dialogue_lines``).
        translator: Translates the captions of a captioner that cannot write
            ``options.language`` (``app.pipeline.translate``); unused otherwise.

    Yields:
        Each new description, in time order, as soon as it is captioned.

    Raises:
        VideoOpenFailure: the file is not a readable video.
        DecoderUnavailable: ``options.scenes.decode_device`` is a GPU FFmpeg cannot use.
        VideoIncomplete: the video breaks off part-way (after the descriptions before the
            damage were yielded).
        VideoTooLong: the video is longer than ``options.max_duration``.
        TranslatorMissing: the captioner cannot write ``options.language`` and
            ``translator`` is None.
    """
    options = options or DescribeOptions()
    reader = VideoReader(
        video,
        skip_nonref=options.scenes.skip_nonref_frames,
        decode_device=options.scenes.decode_device,
        name=name,
    )
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
    try:
        translate = translation_for(captioner, translator, options.language)
    except BaseException:
        reader.close()
        raise
    # A window must hold both the shortest pause and the fewest words worth saying.
    min_window = max(options.min_gap, options.min_words / options.words_per_second)
    finder = PauseFinder(speech, min_window)
    progress = _ProgressTracker(on_progress, info.duration)
    items: queue.Queue[object] = queue.Queue(maxsize=options.queue_size)
    spread = options.frames_per_scene or frames_per_scene(captioner)
    context = _Context(dialogue, options.dialogue_lines, options.previous_descriptions)
    # Set when this generator ends, however it ends; the scan also stops on the caller's stop.
    finished = threading.Event()
    halt = _Either(finished, stop)

    # Set once the scan has decoded its first frame (or ended): the novelty scorer (WordNet,
    # seconds to load) is built after that, so nothing heavy delays the start of the scan.
    scanning = threading.Event()

    def produce() -> None:
        try:
            _scan(reader, options, finder, items, halt, progress, scanning, spread)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            items.put(_Failed(exc))
        finally:
            scanning.set()
            items.put(_DONE)

    producer = threading.Thread(target=produce, name=f"scan-{video.name}", daemon=True)
    producer.start()
    captioned = dropped = 0
    try:
        scanning.wait()
        novelty = make_novelty_filter(
            scorer_for_language(options.novelty_scorer, options.language),
            options.novelty_threshold,
            options.novelty_history,
            scorer=scorer,
        )
        scanned = False
        while not scanned:
            batch: list[_Candidate] = []
            item = items.get()
            while True:
                if isinstance(item, _Failed):
                    raise item.error
                if item is _DONE:
                    scanned = True
                    break
                assert isinstance(item, _Candidate)
                batch.append(item)
                if len(batch) >= options.batch_size:
                    break
                try:
                    item = items.get_nowait()
                except queue.Empty:
                    break
            if halt.is_set():
                return
            if not batch:
                continue
            texts = captioner.caption(
                [c.image for c in batch], [context.request(c, options.language) for c in batch]
            )
            if halt.is_set():
                # Stopped while the model ran: nothing more is handed out, so a stopped job
                # records nothing after its stop (a restarted job captions these again).
                return
            # Cleaning is English narration style; the budget and the repeat check apply to
            # the text the viewer hears, after translation.
            texts = [clean_caption(text) for text in texts]
            if translate is not None:
                texts = translate_captions(translate, texts)
            for candidate, text in zip(batch, texts, strict=True):
                captioned += 1
                candidate.close()
                description = _accept(candidate, text, novelty)
                if description is None:
                    dropped += 1
                    continue
                context.accepted(description.text)
                yield description
                if halt.is_set():
                    return
            progress.update(scenes_captioned=captioned, captions_dropped=dropped)
        if halt.is_set():
            return
        progress.update(stage=Stage.DONE)
    finally:
        finished.set()
        # Unblock a producer waiting on a full queue, then wait for it to let go of the file.
        while producer.is_alive():
            try:
                items.get(timeout=0.5)
            except queue.Empty:
                continue
        producer.join()
        reader.close()


class _Context:
    """What a captioner is told about a scene besides its frames: the dialogue around its
    pause and the descriptions accepted before it (before its batch: a batch is captioned
    at once)."""

    def __init__(self, dialogue: Sequence[DialogueLine], lines: int, previous: int) -> None:
        self._dialogue = dialogue
        self._starts = [line.start for line in dialogue]
        self._lines = lines
        self._previous: collections.deque[str] = collections.deque(maxlen=previous)

    def request(self, candidate: _Candidate, language: str) -> CaptionRequest:
        window = candidate.window
        before = bisect.bisect_left(self._starts, window.start)
        after = bisect.bisect_left(self._starts, window.end)
        around = [
            *self._dialogue[max(0, before - self._lines) : before],
            *self._dialogue[after : after + self._lines],
        ]
        return CaptionRequest(
            max_words=candidate.max_words,
            language=language,
            frames=candidate.frames,
            dialogue=tuple(line.text for line in around),
            previous=tuple(self._previous),
        )

    def accepted(self, text: str) -> None:
        self._previous.append(text)


def _accept(candidate: _Candidate, text: str, novelty: NoveltyFilter) -> Description | None:
    scene = candidate.scene
    if not text.strip():
        logger.warning("scene %d: the captioner returned no text; skipped", scene.index)
        return None
    text, fits = trim_to_words(text, candidate.max_words)
    is_new, similarity = novelty.check(text)
    if not is_new:
        logger.debug(
            "scene %d: %r repeats the previous description (%.2f)", scene.index, text, similarity
        )
        return None
    return Description(
        start=candidate.window.start,
        end=candidate.window.end,
        frame_time=candidate.frame_time,
        scene_index=scene.index,
        scene_start=scene.start,
        scene_end=scene.end,
        text=text,
        similarity=similarity,
        max_words=candidate.max_words,
        fits=fits,
    )


def describe_media(
    video: str,
    captioner: Captioner,
    *,
    subtitles: str | None = None,
    options: MediaOptions | None = None,
    scorer: NoveltyScorer | None = None,
    on_progress: ProgressCallback | None = None,
    stop: StopSignal | None = None,
    translator: Translator | None = None,
    name: str | None = None,
) -> Iterator[Description]:
    """Describe a video given by local path or http(s) URL, with optional subtitles.

    Dialogue intervals come from ``options.speech_source``: the subtitles, voice activity in
    the audio track (``options.speech_detector``), both, or ``auto`` (subtitles when given,
    else audio). A video without an audio track has no speech. Downloads go to temporary
    files that are removed when the generator finishes or is closed. Speech in the audio is
    detected in a thread beside the video scan. ``scorer``, ``on_progress``, ``stop`` and
    ``translator`` are as for ``describe``; ``stop`` also abandons a download at once
    (``Stopped``). ``name`` names the video in messages (default: ``video``; e.g. the URL of
    a file the caller downloaded). Raises what ``fetch``, ``load_speech_intervals``,
    ``stream_speech`` and ``describe`` raise.
    """
    options = options or MediaOptions()
    if subtitles is None and options.speech_source == SpeechSource.SUBTITLES:
        logger.warning(
            "dialogue is to come from subtitles, but none were given: every scene is a "
            "candidate for a description, even under dialogue"
        )
    if on_progress is not None:
        on_progress(Progress(stage=Stage.DOWNLOADING))
    with fetch(
        video, what="video", options=options.fetch, guard=options.guard, stop=stop
    ) as video_path:
        from_subtitles: list[Interval] | None = None
        dialogue: list[DialogueLine] = []
        if subtitles is not None:
            with fetch(
                subtitles, what="subtitles", options=options.fetch, guard=options.guard, stop=stop
            ) as path:
                dialogue = load_dialogue(path)
            if options.speech_source != SpeechSource.AUDIO:
                from_subtitles = speech_intervals(dialogue)
        use_audio = options.speech_source in (SpeechSource.AUDIO, SpeechSource.BOTH) or (
            options.speech_source == SpeechSource.AUTO and from_subtitles is None
        )
        run = functools.partial(
            describe,
            video_path,
            captioner,
            options=options.describe,
            scorer=scorer,
            on_progress=on_progress,
            stop=stop,
            name=name or video,
            dialogue=dialogue,
            translator=translator,
        )
        if not use_audio:
            yield from run(speech=from_subtitles)
            return
        track = SpeechTrack(from_subtitles or ())
        with _listening(video_path, track, options.speech_detector, options.speech):
            yield from run(speech=track)


@contextmanager
def _listening(
    path: Path, track: SpeechTrack, detector: str, options: SpeechOptions | None
) -> Iterator[None]:
    """Find speech in ``path``'s audio in a thread that fills ``track`` while the body runs.

    The audio is decoded apart from the video, beside the scan, so it costs no wall time on
    a machine with a core to spare; a scene waits only if the audio is behind it.
    """
    stop = threading.Event()

    def listen() -> None:
        found = 0
        try:
            with closing(stream_speech(path, detector, options, stop=stop)) as updates:
                for update in updates:
                    if stop.is_set():
                        break
                    found += len(update.intervals)
                    track.add(update.intervals, update.known_until)
        except BaseException as exc:  # handed to the scan, which waits on the track
            track.finish(exc)
            return
        track.finish()
        logger.info("%s: %d speech intervals in the audio", path.name, found)

    thread = threading.Thread(target=listen, name=f"listen-{path.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    if track.error is not None:
        # Every scene was decided before the detector failed: past the end of the video.
        logger.warning(
            "%s: speech detection failed after the video ended: %s", path.name, track.error
        )
