"""Find where people speak in a video's audio track, so descriptions go only in the pauses.

The audio stream FFmpeg would play is decoded with PyAV and resampled to 16 kHz mono
float32 one frame at a time; detectors consume that stream of chunks, so a two-hour film
never sits in memory (it would take 460 MB as float32). Detectors are plug-ins, one module
each in this folder, named in ``SPEECH_DETECTORS``:

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
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from app.errors import InputError, VideoOpenFailure
from app.pipeline.damage import Damage
from app.pipeline.pauses import merge_intervals
from app.pipeline.speech.base import (
    SAMPLE_RATE,
    AudioInput,
    Samples,
    SpeechDetector,
    SpeechOptions,
    SpeechUpdate,
)
from app.pipeline.types import Interval
from app.pipeline.video import film_stream
from app.registry import Member, Registry

logger = logging.getLogger(__name__)

SpeechDetectorFactory = Callable[[SpeechOptions], SpeechDetector]

#: Speech detectors by name, each a class built from a ``SpeechOptions``. A new detector: a
#: module in this folder and a line here.
SPEECH_DETECTORS: Registry[SpeechDetectorFactory] = Registry(
    "speech detector",
    {
        "silero": Member(
            "app.pipeline.speech.silero:SileroSpeechDetector",
            {"silero_vad": "silero-vad", "onnxruntime": "onnxruntime"},
        ),
        "webrtc": Member(
            "app.pipeline.speech.webrtc:WebRtcSpeechDetector", {"webrtcvad": "webrtcvad-wheels"}
        ),
    },
)


def make_speech_detector(name: str, options: SpeechOptions | None = None) -> SpeechDetector:
    """Build the speech detector called ``name``.

    Raises:
        PluginUnavailable: ``name`` is not a detector (the message lists the valid names), or
            its packages are not installed (the message says which).
    """
    return SPEECH_DETECTORS.load(name)(options or SpeechOptions())


def _decode_mono(
    container: av.container.InputContainer, stream: av.AudioStream, path: Path
) -> Iterator[Samples]:
    """Decode ``stream`` to ``SAMPLE_RATE`` Hz mono float32, one frame at a time. A damaged
    packet is skipped (``damage.py``) and silence of its length stands in for it, so that
    the speech after it keeps its place on the timeline."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    damage = Damage(path.name, "audio")
    base = stream.time_base or Fraction(1, stream.rate or SAMPLE_RATE)
    origin = (container.start_time or 0) / av.time_base  # the film's zero, for messages
    try:
        for packet in container.demux(stream):
            shown = None if packet.pts is None else float(packet.pts * base) - origin
            frames = damage.decode(stream.codec_context, packet, shown)
            if frames is None:
                yield np.zeros(
                    round(float((packet.duration or 0) * base) * SAMPLE_RATE), np.float32
                )
                continue
            for frame in frames:
                for out in resampler.resample(frame):
                    yield out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
        # None flushes the samples the resampler still holds.
        for out in resampler.resample(None):
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
    """Find speech in a video or audio file (the audio track FFmpeg would play), reporting as
    it goes.

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
        PluginUnavailable: Unknown detector name, or its packages are not installed.
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
        # The track FFmpeg would play beside the film (the default one of a film dubbed into
        # several languages; the film's own programme in a broadcast recording).
        stream = container.streams.best("audio", film_stream(container))
        if not isinstance(stream, av.AudioStream):
            logger.info("%s has no audio stream: treating it as free of speech", path.name)
            return
        # Built once there is audio to listen to: Silero's model takes a while to load.
        vad = make_speech_detector(detector, options or SpeechOptions())
        offset = 0.0
        if stream.start_time is not None and stream.time_base is not None:
            offset = float(stream.start_time * stream.time_base)
            offset -= (container.start_time or 0) / av.time_base
        chunks: Iterable[Samples] = _decode_mono(container, stream, path)
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


__all__ = [
    "SAMPLE_RATE",
    "SPEECH_DETECTORS",
    "AudioInput",
    "SpeechDetector",
    "SpeechOptions",
    "SpeechUpdate",
    "detect_speech",
    "make_speech_detector",
    "stream_speech",
]
