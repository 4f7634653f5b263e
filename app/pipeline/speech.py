"""Find where people speak in a video's audio track, so descriptions go only in the pauses.

The first audio stream is decoded with PyAV and resampled to 16 kHz mono float32 one frame at a
time; detectors consume that stream of chunks, so a two-hour film never sits in memory (it
would take 460 MB as float32). Two detectors plug in through ``SPEECH_DETECTORS``:

* ``silero`` (default): Silero VAD, a small neural network shipped inside the silero-vad wheel
  (loaded from the package, never downloaded; run by ONNX Runtime). Tells speech from music
  and noise.
* ``webrtc``: WebRTC's GMM voice detector on 30 ms frames. About 6x faster, but it
  takes music and moderate noise for speech, so a film's score would leave no pauses.

Measured by ``tests/test_speech.py::test_detector_comparison`` (run it with ``-s``) on three
espeak-ng sentences (three intervals) in an 18 s AAC track, default options, webrtc at
aggressiveness 3. "quiet" has a -60 dBFS noise floor; "noise" adds brown noise at -25 dBFS
(speech is about -20 dBFS); "music" is 12 s of a harmonic melody without speech. Boundary
errors are over the 6 interval edges; false speech is seconds found outside the truth, of which
0.3 s is the padding; missed is seconds of truth not found:

========  =====  =========  ===============  ===========  =======  ======
detector  audio  intervals  mean / max err   signed mean  false s  missed
========  =====  =========  ===============  ===========  =======  ======
silero    quiet  3 of 3     0.07 / 0.11 s    +0.04 s      0.43     0.00
webrtc    quiet  3 of 3     0.10 / 0.17 s    +0.04 s      0.59     0.00
silero    noise  3 of 3     0.09 / 0.18 s    +0.06 s      0.53     0.00
webrtc    noise  1 of 3     (all one span)                9.72     0.00
silero    music  0 of 0                                   0.00
webrtc    music  1 of 0     (all 12 s)                    12.01
========  =====  =========  ===============  ===========  =======  ======

With the brown noise at -35 dBFS WebRTC still marks almost 17 of the 18 s as speech; at -45 dBFS
it is as good as on the quiet track. Its aggressiveness (0 to 3) changed none of the noise or
music results. Both detectors merge the 0.15 s pause between two sentences, which Silero cannot
resolve even with a shorter min_silence.
Throughput on 2 cores, decoding included, on the 10 min AAC dialogue track of
``bench/end_to_end.py --speech audio``: Silero 5.2-5.5 s with its ONNX model (8.7-8.8 s with
the TorchScript one; same 89 intervals), about 1 min for a 2 h film; WebRTC 0.9 s.

Detectors report speech as they go (``stream``): each time the audio has been quiet for
``split_after`` seconds, the speech before that point is final and reported with how far the
audio has been analysed, so the pipeline can decide a scene's pause as soon as the audio
under it is known, while the rest is still being analysed. The quiet run is longer than any
pause the detectors bridge, so the intervals are the same as from one pass over all of it.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import av
import numpy as np
import numpy.typing as npt

from app.errors import InputError, ModelLoadError, VideoOpenFailure
from app.pipeline.pauses import merge_intervals
from app.pipeline.types import Interval

logger = logging.getLogger(__name__)

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


class _StreamingDetector(ABC):
    """``detect`` for detectors that implement ``stream``."""

    @abstractmethod
    def stream(self, audio: AudioInput, sample_rate: int) -> Iterator[SpeechUpdate]:
        """Report speech as the audio is analysed; see ``SpeechDetector.stream``."""

    def detect(self, audio: AudioInput, sample_rate: int) -> list[Interval]:
        """Find speech; see ``SpeechDetector.detect``."""
        return [i for update in self.stream(audio, sample_rate) for i in update.intervals]


def _segments(
    options: SpeechOptions, split_after: float, frame_seconds: float, lookahead: int = 0
) -> _Segments:
    """Segments cut after ``split_after`` s of quiet: longer than any pause the detectors
    bridge plus the padding on both sides, so cutting changes no interval."""
    seconds = max(split_after, options.min_silence + 2 * options.padding + 0.1)
    quiet = math.ceil(seconds / frame_seconds) if math.isfinite(seconds) else math.inf
    return _Segments(quiet, keep=lookahead + math.ceil(options.padding / frame_seconds) + 1)


def _blocks(audio: AudioInput, size: int) -> Iterator[tuple[Samples, int]]:
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


def load_silero_model() -> Any:
    """Load the Silero VAD model bundled in the silero-vad wheel (no download), in ONNX form.

    ONNX Runtime runs it on one CPU thread (silero-vad's setting) about twice as fast as the
    TorchScript copy on this project's CPU: 300 s of audio in 1.8 s against 3.6 s. The
    TorchScript copy also loads through ``torch.jit.load``, which torch 2.13 deprecates.
    The session is asked for the CPU provider by name, as ONNX Runtime builds with CUDA
    require, and a 32 ms window is not worth a trip to the GPU.

    Returns:
        The model; it keeps state between windows, so give each detector its own.

    Raises:
        ModelLoadError: silero-vad is missing or its model file cannot be read.
    """
    import torch

    threads = torch.get_num_threads()
    try:
        # silero_vad calls torch.set_num_threads(1) process-wide when first imported.
        from onnxruntime.capi.onnxruntime_pybind11_state import (
            Fail,
            InvalidProtobuf,
            NoSuchFile,
        )
        from silero_vad.utils_vad import OnnxWrapper
    except ImportError as exc:
        raise ModelLoadError(
            f"the Silero VAD model cannot run ({exc}); install the project's dependencies "
            "(`pip install silero-vad onnxruntime`), or use the webrtc speech detector"
        ) from exc
    finally:
        torch.set_num_threads(threads)
    model = resources.files("silero_vad.data").joinpath("silero_vad.onnx")
    try:
        with resources.as_file(model) as path:
            return OnnxWrapper(str(path), force_onnx_cpu=True)
    except (OSError, Fail, InvalidProtobuf, NoSuchFile) as exc:
        raise ModelLoadError(
            f"the Silero VAD model could not be loaded ({exc}); "
            "reinstall it with `pip install --force-reinstall silero-vad`, "
            "or use the webrtc speech detector"
        ) from exc


class SileroSpeechDetector(_StreamingDetector):
    """Silero VAD: a speech probability per 32 ms window, turned into intervals by silero-vad."""

    WINDOW = 512
    """Samples per window at 16 kHz, fixed by the model."""
    NEGATIVE_MARGIN = 0.15
    """silero-vad ends speech on windows below ``threshold - NEGATIVE_MARGIN``."""

    def __init__(
        self,
        options: SpeechOptions | None = None,
        *,
        split_after: float = 1.0,
    ) -> None:
        """Load the model.

        Args:
            options: Threshold and durations; defaults to ``SpeechOptions()``.
            split_after: Seconds of quiet after which the speech before is reported
                (``math.inf``: only at the end).
        """
        self.options = options or SpeechOptions()
        self.split_after = split_after
        self._model = load_silero_model()

    def stream(self, audio: AudioInput, sample_rate: int) -> Iterator[SpeechUpdate]:
        """Find speech; see ``SpeechDetector.stream``. ``sample_rate`` must be 16000."""
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"Silero VAD needs {SAMPLE_RATE} Hz audio, got {sample_rate} Hz")
        import torch

        window_seconds = self.WINDOW / sample_rate
        segments = _segments(self.options, self.split_after, window_seconds)
        quiet_below = max(self.options.threshold - self.NEGATIVE_MARGIN, 0.01)
        length = 0
        self._model.reset_states()
        with torch.no_grad():
            for block, real in _blocks(audio, self.WINDOW):
                probability = float(self._model(torch.tensor(block), sample_rate))
                length += real
                done = segments.push(probability, probability < quiet_below)
                if done is not None:
                    start, probabilities = done
                    yield self._update(start, probabilities, len(probabilities) * self.WINDOW)
        start, probabilities = segments.rest()
        yield self._update(start, probabilities, length - start * self.WINDOW)

    def _update(self, start: int, probabilities: list[float], samples: int) -> SpeechUpdate:
        """The speech in one segment that starts at window ``start`` and holds ``samples``."""
        from silero_vad import get_speech_timestamps_from_probs

        offset = start * self.WINDOW
        known_until = (offset + samples) / SAMPLE_RATE
        if not probabilities:
            return SpeechUpdate([], known_until)
        spans = get_speech_timestamps_from_probs(
            probabilities,
            sampling_rate=SAMPLE_RATE,
            threshold=self.options.threshold,
            min_speech_duration_ms=self.options.min_speech * 1000,
            min_silence_duration_ms=self.options.min_silence * 1000,
            speech_pad_ms=self.options.padding * 1000,
            audio_length_samples=samples,
        )
        intervals = [
            Interval((offset + s["start"]) / SAMPLE_RATE, (offset + s["end"]) / SAMPLE_RATE)
            for s in spans
        ]
        return SpeechUpdate(intervals, known_until)


class WebRtcSpeechDetector(_StreamingDetector):
    """WebRTC's voice detector on 30 ms frames, smoothed by a majority vote and a hangover."""

    FRAME_SECONDS = 0.03
    SMOOTHING_FRAMES = 5
    """Frames in the voting window (150 ms): a single voiced click does not count as speech."""

    def __init__(
        self,
        options: SpeechOptions | None = None,
        *,
        aggressiveness: int = 3,
        split_after: float = 1.0,
    ) -> None:
        """Set up the detector.

        Args:
            options: Threshold and durations; defaults to ``SpeechOptions()``.
            aggressiveness: 0 (lenient) to 3 (strictest about what is speech); 3 is the least
                fooled by film noise and music.
            split_after: Seconds of quiet after which the speech before is reported
                (``math.inf``: only at the end).
        """
        if aggressiveness not in range(4):
            raise ValueError(f"aggressiveness must be 0, 1, 2 or 3, got {aggressiveness}")
        import webrtcvad

        self.options = options or SpeechOptions()
        self.aggressiveness = aggressiveness
        self.split_after = split_after
        self._vad = webrtcvad.Vad(aggressiveness)

    def stream(self, audio: AudioInput, sample_rate: int) -> Iterator[SpeechUpdate]:
        """Find speech; see ``SpeechDetector.stream``. Rates: 8, 16, 32 or 48 kHz."""
        if sample_rate not in (8000, 16000, 32000, 48000):
            raise ValueError(f"WebRTC VAD needs 8, 16, 32 or 48 kHz audio, got {sample_rate} Hz")
        frame = round(sample_rate * self.FRAME_SECONDS)
        # The vote at a frame looks SMOOTHING_FRAMES // 2 frames ahead.
        segments = _segments(
            self.options, self.split_after, self.FRAME_SECONDS, self.SMOOTHING_FRAMES // 2
        )
        length = 0
        for block, real in _blocks(audio, frame):
            pcm = (np.clip(block, -1.0, 1.0) * 32767).astype("<i2").tobytes()
            voiced = self._vad.is_speech(pcm, sample_rate)
            length += real
            done = segments.push(float(voiced), not voiced)
            if done is not None:
                start, votes = done
                yield self._update(start, votes, len(votes) * self.FRAME_SECONDS)
        start, votes = segments.rest()
        yield self._update(start, votes, length / sample_rate - start * self.FRAME_SECONDS)

    def _update(self, start: int, votes: list[float], seconds: float) -> SpeechUpdate:
        """The speech in one segment that starts at frame ``start`` and lasts ``seconds``."""
        offset = start * self.FRAME_SECONDS
        if not votes:
            return SpeechUpdate([], offset + seconds)
        window = np.ones(self.SMOOTHING_FRAMES) / self.SMOOTHING_FRAMES
        speech = np.convolve(np.asarray(votes), window, "same") >= self.options.threshold
        intervals = [
            Interval(offset + i.start, offset + i.end)
            for i in _runs_to_intervals(speech, self.FRAME_SECONDS, seconds, self.options)
        ]
        return SpeechUpdate(intervals, offset + seconds)


def _runs_to_intervals(
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


SpeechDetectorFactory = Callable[[SpeechOptions], SpeechDetector]

SPEECH_DETECTORS: dict[str, SpeechDetectorFactory] = {
    "silero": SileroSpeechDetector,
    "webrtc": WebRtcSpeechDetector,
}
"""Speech detectors by name; each is built from a ``SpeechOptions``."""


def make_speech_detector(name: str, options: SpeechOptions | None = None) -> SpeechDetector:
    """Build the speech detector called ``name``.

    Raises:
        ValueError: ``name`` is not in ``SPEECH_DETECTORS``; the message lists the valid names.
    """
    try:
        factory = SPEECH_DETECTORS[name]
    except KeyError:
        valid = ", ".join(sorted(SPEECH_DETECTORS))
        raise ValueError(f"unknown speech detector {name!r}; choose one of: {valid}") from None
    return factory(options or SpeechOptions())


def _decode_mono(container: av.container.InputContainer, path: Path) -> Iterator[Samples]:
    """Decode the first audio stream to ``SAMPLE_RATE`` Hz mono float32, one frame at a time."""
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    try:
        # A final None flushes the samples the resampler still holds.
        for frame in itertools.chain(container.decode(stream), [None]):
            for out in resampler.resample(frame):
                yield out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
    except av.FFmpegError as exc:
        raise VideoOpenFailure(
            f"the audio track of {path.name} could not be decoded ({exc}); the file may be "
            "truncated or damaged: re-encode it, e.g. `ffmpeg -i in.mp4 -c:v copy -c:a aac "
            "out.mp4`"
        ) from exc


def stream_speech(
    path: Path,
    detector: str = "silero",
    options: SpeechOptions | None = None,
    *,
    stop: threading.Event | None = None,
) -> Generator[SpeechUpdate, None, None]:
    """Find speech in the first audio track of a video or audio file, reporting as it goes.

    Times are on the file's timeline (seconds from the start of the earliest stream), so they
    line up with the video frames. Decoding and detection block: run it in a worker thread.

    Args:
        path: The media file.
        detector: A name from ``SPEECH_DETECTORS``.
        options: Threshold and durations; defaults to ``SpeechOptions()``.
        stop: When set, decoding stops at the next audio frame and the detector reports
            what it has.

    Yields:
        New speech intervals and how far the audio has been analysed; nothing when the file
        has no audio stream (then no scene is blocked by dialogue).

    Raises:
        ValueError: Unknown detector name.
        InputError: The file does not exist.
        VideoOpenFailure: The file is not media FFmpeg can read, or its audio cannot be decoded.
        ModelLoadError: The Silero model cannot be loaded.
    """
    try:
        container = av.open(str(path))
    except FileNotFoundError as exc:
        raise InputError(f"{path} does not exist; check the path") from exc
    except av.FFmpegError as exc:
        raise VideoOpenFailure(
            f"{path.name} is not a video or audio file FFmpeg can read ({exc}); "
            "check that the upload is the film itself, not a page or a playlist"
        ) from exc
    with container:
        if not container.streams.audio:
            logger.info("%s has no audio stream: treating it as free of speech", path.name)
            return
        # Built once there is audio to listen to: Silero's model takes a while to load.
        vad = make_speech_detector(detector, options or SpeechOptions())
        stream = container.streams.audio[0]
        offset = 0.0
        if stream.start_time is not None and stream.time_base is not None:
            offset = float(stream.start_time * stream.time_base)
            offset -= (container.start_time or 0) / av.time_base
        chunks: Iterable[Samples] = _decode_mono(container, path)
        if stop is not None:
            chunks = itertools.takewhile(lambda _chunk: not stop.is_set(), chunks)
        for update in vad.stream(chunks, SAMPLE_RATE):
            shifted = [
                Interval(max(0.0, s.start + offset), max(0.0, s.end + offset))
                for s in update.intervals
            ]
            yield SpeechUpdate(shifted, update.known_until + offset)


def detect_speech(
    path: Path, detector: str = "silero", options: SpeechOptions | None = None
) -> list[Interval]:
    """All the speech in a file at once: ``stream_speech`` collected.

    Returns:
        Sorted speech intervals, pauses shorter than ``options.min_silence`` merged away.

    Raises:
        What ``stream_speech`` raises.
    """
    options = options or SpeechOptions()
    found = (i for update in stream_speech(path, detector, options) for i in update.intervals)
    merged = merge_intervals(found, gap=options.min_silence)
    logger.info(
        "%s: %d speech interval(s), %.1f s in all (%s detector)",
        path.name, len(merged), sum(s.duration for s in merged), detector,
    )  # fmt: skip
    return merged
