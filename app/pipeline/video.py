"""Open a video file and decode its frames once, with exact presentation times.

Frames are decoded with PyAV (FFmpeg's libraries), so times come from each frame's own
timestamp: exact for variable frame rate video, never rounded to the nearest keyframe.

A reader can skip the frames no other frame refers to (``skip_nonref``): FFmpeg then never
decodes them, and every frame it does hand out is bit-identical to a full decode, since no
frame it depends on was skipped. In H.264 with B-frames that is about a third of the
frames; streams without B-frames lose none. The frames handed out are at most
``MAX_SKIP_GAP`` frame durations apart, or the reader decodes every frame from there on,
where ``MAX_SKIP_GAP`` frames or more lie between them (a variable frame rate leaves gaps
with fewer: a still picture's repeats left out).

Frames are decoded on the CPU, or by the GPU's video decoder (NVDEC, ``decode_device="cuda"``)
through FFmpeg's CUDA hardware acceleration; decoded frames then come back to system memory
(NV12), so everything after decoding is the same on both.
"""

from __future__ import annotations

import bisect
import functools
import logging
import math
import os
import re
import threading
import weakref
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol, TypeVar

import av
import numpy as np
from av.codec.hwaccel import HWAccel
from av.container import InputContainer
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream
from PIL import Image

from app.errors import (
    DecoderUnavailable,
    VideoIncomplete,
    VideoOpenFailure,
    VideoTimestampsJump,
)
from app.pipeline.damage import Damage
from app.pipeline.readahead import read_ahead
from app.pipeline.slices import SliceTypes

T = TypeVar("T")

logger = logging.getLogger(__name__)

MAX_SKIP_GAP = 3
"""Most frame durations between two frames handed out while skipping non-reference frames:
with at most two skipped frames in a row, a cut between them is placed within two frames."""

INCOMPLETE_SLACK = 0.5
"""Seconds the decoded frames may fall short of the stream's declared duration before the
video counts as incomplete."""


def seconds(ticks: int, base: Fraction) -> float:
    """``ticks`` of the time base ``base`` in seconds: ``float(ticks * base)`` to the last
    bit (both divide two integers once, correctly rounded), without building a Fraction on
    the way: three a packet took 0.22 of the keyframe pass's 1.5 CPU s over 10 min of 720p
    H.264 (two cores)."""
    return ticks * base.numerator / base.denominator


def cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


BACKGROUND_THREADS = max(1, min(4, cores() // 4))
"""Threads of a reader's ``in_background``. Each decode uses FFmpeg's threads too: one
thread up to 7 cores, four from 16."""

PARALLEL_DECODES = max(1, min(4, cores()))
"""Threads of a reader's ``in_parallel``: the keyframe scan's stretches decoded at once, each
from an ``aside`` reader with FFmpeg's threads (one per core), so that one long stretch
decoding alone has every core. Meant for many cores, where one stretch's short decode
leaves most of them idle; on two, already busy (1.6 of 2 in the scan), the keyframe scan
of Big Buck Bunny took 0.8-1.0x as long as one stretch after another
(keyframe-bound-2026-11-27.md)."""


def scale_threads(decoding: int) -> int:
    """Slice threads of swscale for the detectors' small frames of a reader decoding on
    ``decoding`` threads (0: one per core): half of those, at most four
    (``DecodedFrame.to_small_bgr``; the same pixels whatever the number). The scan scales
    each frame on the thread that reads ahead (``readahead.py``), and on many cores that
    thread bounds it: on 16 cores, 480p H.264 decoded in 0.90 s and in 2.04 s with the
    frames scaled on one thread, and the full scan took 1.19 s with four against 2.06 s
    (``bench/scan_wall.py``, gpu-scan-2026-11-27.md). One on two cores, where the
    decoder's threads keep both busy, and in chunk workers that share the cores."""
    return max(1, min(4, (decoding or cores()) // 2))


_TIME_EPSILON = 1e-6
"""Seconds by which two timestamps may differ and still name the same frame."""
_JUMP_BACK = 1.0
"""Seconds a frame may be shown before the one decoded before it (presentation order) or,
in the keyframe pass, a packet be decoded before the one read before it (decoding times)
and still be taken as it comes; past this it is out of order (``VideoReader._decoded``),
and ``_JUMP_FRAMES`` such in a row are recordings joined end to end."""
_JUMP_FRAMES = 32
"""Frames (in the keyframe pass, packets) in a row, each more than ``_JUMP_BACK`` before the
last one in order, that make a jump back. Past a damaged packet a decoder may put a few
frames out late (an MPEG-TS recording with damaged packets: every other frame 1.25 s back,
for a second); more than its reorder buffer holds (16 frames in H.264 and HEVC) come only
from timestamps that start again."""
_SQUARE = 0.01
"""A sample aspect ratio this close to 1 is taken as square pixels; anamorphic video differs
by 6 % or more (16:15, 10:11, 8:9, 64:45)."""
_SEEK_BACK = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
"""Seconds before the time asked that a seek is made from, in turn, until it lands at or
before the keyframe wanted (``VideoReader._seek``); past the last, it gives up."""

_READ_AHEAD = 8
"""Frames the scans decode ahead of their detectors (a 4K frame is about 12 MB), besides the
one being handed over and the decoder's own (``VideoReader.analysed``)."""

THUMBNAIL_SIDE = 16
"""Side of the thumbnails that tell near-identical frames apart (``Picture.thumbnail``)."""

DECODE_DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")
"""Decode devices: ``cpu``, or ``cuda`` / ``cuda:N`` for NVDEC on that GPU."""


def check_decode_device(decode_device: str) -> None:
    """Make sure frames can be decoded on ``decode_device``; cheap after the first call.

    Raises:
        DecoderUnavailable: it is a GPU and FFmpeg cannot open it (no NVIDIA GPU or driver,
            or an FFmpeg built without NVDEC).
        ValueError: it is not ``cpu``, ``cuda`` or ``cuda:N``.
    """
    if not DECODE_DEVICE_PATTERN.fullmatch(decode_device):
        raise ValueError(f"decode device must be 'cpu', 'cuda' or 'cuda:N', got {decode_device!r}")
    if decode_device != "cpu":
        problem = _cuda_problem(decode_device)
        if problem is not None:
            raise DecoderUnavailable(
                f"frames cannot be decoded on {decode_device!r}: {problem}; decode on the CPU "
                "instead (--decode-device cpu, DESCRIBER_DECODE_DEVICE=cpu)"
            )


@functools.cache
def _cuda_problem(decode_device: str) -> str | None:
    """Why FFmpeg cannot open the CUDA device for decoding, or None when it can."""
    if "cuda" not in av.codec.hwaccel.hwdevices_available():
        return "this FFmpeg (PyAV's) was built without CUDA hardware acceleration"
    try:
        _hwaccel(decode_device).create(av.codec.Codec("h264", "r"))
    except av.FFmpegError as exc:
        return (
            f"FFmpeg could not open the CUDA device ({exc.strerror or exc}): no NVIDIA GPU, "
            "driver or NVDEC library (libnvcuvid) here"
        )
    return None


def _hwaccel(decode_device: str) -> HWAccel:
    """NVDEC on the GPU that ``cuda`` or ``cuda:N`` names. A stream NVDEC cannot decode (a
    codec or profile the GPU lacks) is decoded in software, and the reader logs it."""
    _, _, index = decode_device.partition(":")
    return HWAccel("cuda", device=index or None, allow_software_fallback=True)


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the video stream."""

    width: int
    height: int
    frame_rate: Fraction
    """Frames a second as FFmpeg guesses it (``av_guess_frame_rate``): the rate of adjacent
    frames, not the average, which counts the gaps of variable frame rate video and, in an
    AVI file with B-frames, its empty packets (48 for a 24 fps film)."""
    duration: float | None
    """Seconds, or None when neither the stream nor the container declares it."""


class Picture(Protocol):
    """A frame chosen for a scene, as the captioner and the repeat check take it: a
    ``DecodedFrame``, or a ``StillFrame`` when a worker process decoded it."""

    @property
    def time(self) -> float: ...

    def to_image(self, max_side: int | None = None) -> Image.Image: ...

    def thumbnail(self, side: int) -> np.ndarray: ...


@dataclass
class DecodedFrame:
    """A decoded frame and its presentation time in seconds from the start of the video."""

    time: float
    frame: av.VideoFrame
    reformatter: VideoReformatter = field(repr=False)
    """Shared by the frames of one reader: ``VideoFrame.reformat`` would build a new swscale
    context (and its slice threads) for every frame; a kept one builds it once. Measured by
    ``bench/scenes.py``: the scan went from 82% to 93% of ffmpeg's decode speed."""
    scale_threads: int = field(default=1, repr=False)
    """swscale's slice threads for ``to_small_bgr`` (``scale_threads``)."""
    stream_size: tuple[int, int] | None = field(default=None, repr=False)
    """The stream's frame size (width, height) as its reader opened it; None: the frame's
    own. A recording whose resolution changes part-way (an SD advert in an HD channel)
    would otherwise give the detectors frames of two shapes, which they cannot compare."""
    pixel_aspect: Fraction = Fraction(1)
    """A pixel's width over its height as shown (the stream's sample aspect ratio): not 1 in
    anamorphic video, such as a widescreen DVD's 720x576 shown at 1024x576."""

    def to_image(self, max_side: int | None = None) -> Image.Image:
        """The frame as an upright RGB image as it is shown: square pixels (an anamorphic
        frame stretched to its display width), display rotation applied.

        Args:
            max_side: Scale the frame down (bicubic, aspect kept) so that its long side is at
                most this many pixels; None keeps the full size.
        """
        src = self.frame
        width, height = max(1, round(src.width * self.pixel_aspect)), src.height
        long_side = max(width, height)
        if max_side is not None and long_side > max_side:
            scale = max_side / long_side
            width, height = max(1, round(width * scale)), max(1, round(height * scale))
        pixels: np.ndarray
        if (width, height) != (src.width, src.height):
            pixels = src.reformat(
                width=width, height=height, format="rgb24", interpolation="BICUBIC"
            ).to_ndarray()
        else:
            pixels = src.to_ndarray(format="rgb24")
        quarter_turns = round(self.frame.rotation / 90) % 4
        if quarter_turns:
            pixels = np.ascontiguousarray(np.rot90(pixels, k=quarter_turns))
        return Image.fromarray(pixels)

    def thumbnail(self, side: int) -> np.ndarray:
        """A ``side`` x ``side`` RGB copy, float32, for telling near-identical frames apart."""
        small = self.frame.reformat(width=side, height=side, format="rgb24")
        return small.to_ndarray().astype(np.float32)

    def still(self, max_side: int | None = None) -> StillFrame:
        """The frame as a ``StillFrame``, which outlives the decoder and can be pickled,
        scaled as ``to_image(max_side)`` scales it."""
        return StillFrame(
            time=self.time,
            pixels=np.asarray(self.to_image(max_side)),
            small=self.thumbnail(THUMBNAIL_SIDE),
        )

    def to_small_bgr(self, width: int) -> np.ndarray:
        """The frame scaled to ``width`` pixels wide (the stream's aspect kept), BGR, for
        detectors: every frame of a stream to the same size (``stream_size``)."""
        src = self.frame
        stream_width, stream_height = self.stream_size or (src.width, src.height)
        if width <= 0 or width >= stream_width:
            width, height = stream_width, stream_height
        else:
            height = max(2, round(stream_height * width / stream_width))
        small = self.reformatter.reformat(
            src, width=width, height=height, format="bgr24", threads=self.scale_threads
        )
        return small.to_ndarray()


@dataclass(frozen=True)
class StillFrame:
    """A decoded frame as an upright RGB picture (``DecodedFrame.still``)."""

    time: float
    pixels: np.ndarray = field(repr=False)
    """Height x width x 3, uint8, RGB, display rotation applied."""
    small: np.ndarray = field(repr=False)
    """``DecodedFrame.thumbnail(THUMBNAIL_SIDE)`` of the frame."""

    def to_image(self, max_side: int | None = None) -> Image.Image:
        """As ``DecodedFrame.to_image`` (bicubic, aspect kept)."""
        image = Image.fromarray(self.pixels)
        long_side = max(image.size)
        if max_side is not None and long_side > max_side:
            scale = max_side / long_side
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.BICUBIC)
        return image

    def thumbnail(self, side: int) -> np.ndarray:
        """As ``DecodedFrame.thumbnail``, which made it (``THUMBNAIL_SIDE`` only)."""
        if side != THUMBNAIL_SIDE:
            raise ValueError(f"a still frame keeps its {THUMBNAIL_SIDE} px thumbnail only")
        return self.small


def film_stream(container: InputContainer) -> VideoStream | None:
    """The video stream FFmpeg would play (``av_find_best_stream``: a moving picture before a
    still one, a default track before others), whichever comes first in the file; never cover
    art (an attached picture); None when there is no other video stream."""

    def moving(stream: VideoStream) -> bool:
        return not stream.disposition & av.stream.Disposition.attached_pic

    best = container.streams.best("video")
    if isinstance(best, VideoStream) and moving(best):
        return best
    return next((stream for stream in container.streams.video if moving(stream)), None)


class _Jumps:
    """Tells the frames (in the keyframe pass, packets) that come out of order: more than
    ``_JUMP_BACK`` s before the last one in order, or, once one has, before it at all, until
    one comes in order again. ``_JUMP_FRAMES`` of them in a row are a jump back. So a frame
    put out late past a damaged packet is one alone between frames in order; recordings
    joined end to end give a run: a short jump's frames are dropped until they catch up,
    never handed out early, and a longer one is refused."""

    def __init__(self, reader: VideoReader) -> None:
        self._reader = reader
        self._run = 0
        self._last = 0.0
        self._first = 0.0
        self._followed: float | None = None
        self._ahead: float | None = None

    def follow(self, time: float) -> None:
        """The next decoding time of the keyframe pass: the last one in order from here,
        unless it is out of order (``late``), or more than ``_JUMP_BACK`` s ahead: then it
        is held until the next one shows whether it was the odd one (a damaged header), as
        ``VideoReader._decoded`` holds a frame.

        Raises:
            VideoTimestampsJump: it makes ``_JUMP_FRAMES`` out of order in a row.
        """
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            if time >= ahead - _JUMP_BACK:
                self._followed = ahead  # it was in order
            elif self._followed is not None and time < self._followed - _JUMP_BACK:
                self._ahead = ahead  # this one is the late one
                self.late(self._followed, time)
                return
        if self._followed is None:
            self._followed = time
        elif time > self._followed + _JUMP_BACK:
            self._ahead = time
        elif not self.late(self._followed, time):
            self._followed = time

    def late(self, last: float, time: float) -> bool:
        """Whether one at ``time``, after the last in order at ``last``, is out of order.

        Raises:
            VideoTimestampsJump: it makes ``_JUMP_FRAMES`` in a row.
        """
        if time >= last - (_TIME_EPSILON if self._run else _JUMP_BACK):
            self._run = 0
            return False
        if self._run == 0:
            self._last, self._first = last, time
        self._run += 1
        if self._run >= _JUMP_FRAMES:
            raise self._reader.jumped_back(self._last, self._first)
        return True


@dataclass(frozen=True)
class _Keyframe:
    """A keyframe packet met while checking a seek (``VideoReader._seek``)."""

    time: float
    """When it is shown, seconds on the file's clock."""
    timestamp: int
    """Its decoding timestamp (its presentation one where the container has none): a seek
    by timestamps in a file without an index lands on it."""


def _open(path: Path, hwaccel: HWAccel | None, *, probe: bool) -> InputContainer:
    """Open ``path`` for reading. FFmpeg decodes the first frames of each stream to learn
    what the container does not say (the pixel format, the codec's aspect ratio, how many
    frames the decoder holds back to reorder them): about 30 ms on grainy 720p, 120 ms on
    grainy 4K. Without ``probe`` it reads the packets but decodes nothing: for a second
    handle on a file whose stream is known (``_StreamFacts``). With NVDEC (``hwaccel``) it
    probes still: decoding from a stream opened so is untried there."""
    options = None if probe or hwaccel is not None else {"skip_frame": "all"}
    return av.open(str(path), mode="r", hwaccel=hwaccel, options=options)


def _same_stream(container: InputContainer, stream: VideoStream) -> VideoStream:
    """The stream of ``container`` that ``stream`` is, of the same file opened again."""
    same = container.streams[stream.index]
    assert isinstance(same, VideoStream)
    return same


@dataclass(frozen=True)
class _StreamFacts:
    """What a reader learns of its stream on opening, and a reader opened beside it takes
    over rather than probing the file again (``VideoReader`` ``beside``)."""

    first: int | None
    """The stream's first timestamp, in its time base; None where its packets carry none (a
    raw elementary stream)."""
    origin: float
    """Seconds: the container's start time, from which frame times are counted."""
    declared: float | None
    """Seconds: the stream's duration, where the container declares one (``cut_short``)."""
    stream_size: tuple[int, int] | None
    pixel_aspect: Fraction
    info: VideoInfo
    reorder: int
    """Frames the decoder holds back to put them in order, as FFmpeg's probe found it. A
    decoder that starts with fewer (opened without the probe, in MPEG-TS, Matroska, AVI or
    a raw stream) drops a frame where an H.264 stream does not say how many (no VUI
    ``bitstream_restriction``) before it learns to hold back more."""

    @classmethod
    def learned(cls, container: InputContainer, stream: VideoStream) -> _StreamFacts:
        start = container.start_time
        codec = stream.codec_context
        # As FFmpeg guesses it: the container's sample aspect ratio, else the codec's;
        # unknown (0 or missing) is square, and so is one within ``_SQUARE`` of it (854x480
        # stored for 16:9 says 1280:1281): stretching would only blur the frame.
        aspect = stream.sample_aspect_ratio or codec.sample_aspect_ratio
        declared = None
        if stream.duration is not None and stream.time_base is not None:
            declared = float(stream.duration * stream.time_base)
        duration = declared
        if duration is None and container.duration is not None:
            duration = container.duration / av.time_base
        rate = stream.guessed_rate or stream.average_rate or Fraction(25)
        return cls(
            first=stream.start_time,
            origin=start / av.time_base if start is not None else 0.0,
            declared=declared,
            stream_size=(codec.width, codec.height) if codec.width and codec.height else None,
            pixel_aspect=Fraction(aspect) if aspect and abs(aspect - 1) > _SQUARE else Fraction(1),
            info=VideoInfo(
                width=codec.width, height=codec.height, frame_rate=Fraction(rate), duration=duration
            ),
            reorder=codec.reorder_depth,
        )


class VideoReader:
    """Decodes the video stream of a file that FFmpeg would play, frame by frame, in
    presentation order.

    Raises:
        VideoOpenFailure: the file is not media FFmpeg can read, or has no video stream.
    """

    def __init__(
        self,
        path: Path,
        *,
        threads: int = 0,
        skip_nonref: bool = False,
        decode_device: str = "cpu",
        name: str | None = None,
        beside: VideoReader | None = None,
    ) -> None:
        """Open ``path``.

        Args:
            path: The video file.
            threads: Decoding threads; 0 lets FFmpeg pick (one per core).
            skip_nonref: Skip the frames no other frame refers to (see the module docstring).
            decode_device: ``cpu``, or ``cuda`` / ``cuda:N`` to decode with NVDEC.
            name: What messages call the video (its URL); default the file's name.
            beside: The reader of the same file this one is opened beside (``aside``):
                FFmpeg does not decode frames to probe the file (``_open``); what that
                reader learned of the stream is taken over instead (``_StreamFacts``).

        Raises:
            DecoderUnavailable: ``decode_device`` is a GPU that FFmpeg cannot use here.
        """
        self.path = path
        self.name = name or path.name
        """What messages call the video: its URL or path as given (not a temporary file)."""
        self.skip_nonref = skip_nonref
        self.skipping_at_open = skip_nonref
        """``skip_nonref`` as opened."""
        self.skipping_stopped_at: float | None = None
        """Where it stopped skipping non-reference frames (``stop_skipping``), if it did."""
        check_decode_device(decode_device)
        hwaccel = None if decode_device == "cpu" else _hwaccel(decode_device)
        try:
            self._container: InputContainer = _open(path, hwaccel, probe=beside is None)
        except av.FFmpegError as exc:
            raise VideoOpenFailure(
                f"{self.name} is not a readable video ({exc.strerror or exc}); "
                "check that the file is a complete video in a common format (mp4, mkv, webm, mov)"
            ) from exc
        stream = (
            film_stream(self._container)
            if beside is None
            else _same_stream(self._container, beside._stream)
        )
        if stream is None:
            self._container.close()
            raise VideoOpenFailure(
                f"{self.name} has no video stream (audio only, or only cover art?); "
                "a video track is required"
            )
        self._stream: VideoStream = stream
        self._facts: _StreamFacts = (
            _StreamFacts.learned(self._container, stream) if beside is None else beside._facts
        )
        stream.codec_context.reorder_depth = self._facts.reorder
        self.timed = self._facts.first is not None
        """Whether the stream's packets carry timestamps (FFmpeg found one in the first).
        Those of a raw elementary stream (an ``.h264`` file) do not: its frames are placed
        by counting them, so none may be skipped, and a seek decodes again from the start."""
        if skip_nonref and not self.timed:
            logger.info(
                "%s: the video has no timestamps (a raw %s stream); its frames are placed by "
                "counting them, so every frame is decoded",
                self.name,
                stream.codec_context.name,
            )
            skip_nonref = self.skip_nonref = self.skipping_at_open = False
        if hwaccel is not None and not self.decodes_on_gpu:
            logger.warning(
                "%s: NVDEC cannot decode this %s stream; decoding it on the CPU",
                self.name,
                self._stream.codec_context.name,
            )
        # Frame threading keeps both cores busy; "AUTO" lets FFmpeg pick frame or slice.
        self._stream.thread_type = "AUTO"
        self._stream.thread_count = threads
        if skip_nonref:
            self._stream.codec_context.skip_frame = "NONREF"
        self._origin = self._facts.origin
        self._reformatter = VideoReformatter()
        self._scale_threads = scale_threads(threads)
        self._stream_size = self._facts.stream_size
        self._pixel_aspect = self._facts.pixel_aspect
        self._ahead: weakref.WeakSet[Generator[tuple[DecodedFrame, Any], None, None]] = (
            weakref.WeakSet()
        )
        self._hwaccel = hwaccel
        self._decode_device = decode_device
        self._asides: dict[int, VideoReader] = {}
        self._asides_lock = threading.Lock()
        self.asides_skip = skip_nonref
        """Whether frames decoded from the ``aside`` readers still skip non-reference
        frames: false once a frame grab that met a long run of them has been taken
        (``scan.FrameGrab.settle``)."""
        self._background = ThreadPoolExecutor(
            max_workers=BACKGROUND_THREADS, thread_name_prefix=f"decode {self.name}"
        )
        self._parallel = ThreadPoolExecutor(
            max_workers=PARALLEL_DECODES, thread_name_prefix=f"scan {self.name}"
        )
        self._closing = threading.Event()
        self._sought = False
        self.damage = Damage(self.name, "video")
        """The damaged packets met so far, by this reader and those it opened."""
        self._lost = 0
        """Damaged packets of a raw stream not yet counted in its frames' times."""
        self._damaged = 0
        """Damaged packets this reader met: each lost a frame, which is no skipped one."""
        self._reached = 0.0
        """The latest time a frame decoded so far is shown at, those dropped too: past the
        last frame handed out only where a timestamp is odd (a damaged header)."""
        self._pending: list[float] = []
        """When the packets read since the last frame handed out are shown, in order (with
        ``skip_nonref``): the frames between two handed out that were skipped or lost. A gap
        without packets is no skipped run (variable frame rate: a still picture's frames
        left out)."""

    @property
    def decodes_on_gpu(self) -> bool:
        """Whether NVDEC decodes the stream (False on the CPU, or for a stream it cannot take)."""
        return bool(self._stream.codec_context.is_hwaccel)

    @property
    def codec(self) -> str:
        """FFmpeg's name of the video codec (``h264``, ``hevc``, ``vp9``, ``av1``...)."""
        return str(self._stream.codec_context.name)

    @property
    def info(self) -> VideoInfo:
        return self._facts.info

    def keyframes(self) -> KeyframePass:
        """Decode only the keyframes, from a container of their own (see ``KeyframePass``)."""
        return KeyframePass(self)

    @functools.cached_property
    def encoder_settings(self) -> EncoderSettings | None:
        """The options x264 or x265 wrote into the stream, read from its first keyframe
        without decoding; None for other encoders (they do not say) and streams with no
        keyframe."""
        container, stream = self._open_again()
        try:
            for packet in container.demux(stream):
                if packet.size and packet.is_keyframe:
                    return encoder_settings(
                        bytes(stream.codec_context.extradata or b"") + bytes(packet)
                    )
        except av.FFmpegError as exc:  # damage at the start: the scan reports it
            logger.info("%s: the encoder's settings could not be read: %s", self.name, exc)
            return None
        finally:
            container.close()
        return None

    def frames_between(self, start: float, end: float) -> Iterator[DecodedFrame]:
        """Decode the frames shown from ``start`` to ``end`` (seconds, both included).

        Seeks to the keyframe at or before ``start`` and decodes from there; frames before
        ``start`` are decoded but not handed out. With ``skip_nonref`` the first frame may lie
        a little after ``start`` and the last a little before ``end``.
        """
        for decoded in self.frames_from(start):
            if decoded.time > end + _TIME_EPSILON:
                return
            if decoded.time >= start - _TIME_EPSILON:
                yield decoded

    def frames_from(self, time: float) -> Iterator[DecodedFrame]:
        """Seek to the keyframe at or before ``time`` and decode every frame from there on."""
        self._seek(time)
        yield from self._decoded()

    def keyframe_before(self, time: float) -> float | None:
        """The time of the keyframe at or before ``time``, where ``frames_from(time)`` starts
        decoding, read from the container without decoding; None when no keyframe follows."""
        return self._seek(time)

    def _seek(self, time: float) -> float | None:
        """Move to the keyframe at or before ``time`` (a keyframe's own time, read back from
        its timestamp, finds that keyframe, not the one before it); its time, or None when no
        keyframe lies at or before ``time``.

        A container with an index (MP4, Matroska with cues) lands on that keyframe. One
        without (MPEG-TS, a recording) is searched by timestamps and may land a packet past
        it, so that decoding would start a group later (seen on an MPEG-TS copy of an MP4:
        every such seek). So the packets up to ``time`` are read after each landing, and the
        seek made again from further back (``_SEEK_BACK``) until a keyframe is among them;
        then from the last of them, by its decoding timestamp (where such a search lands on
        it), so that no more groups than needed are decoded.
        """
        if not self.timed:
            # Nothing to seek by: decode again from the start, where its frames are counted
            # from (a frame the full scan let go; rare, but a whole decode each).
            container, self._stream = self._open_again()
            self._container.close()
            self._container = container
            self._lost = 0
            self._sought = True
            return 0.0
        stream = self._stream
        assert stream.time_base is not None
        target = time + self._origin + _TIME_EPSILON
        # Never below zero where timestamps start there or later: AVI refuses such a seek
        # (EPERM), and zero lies before the first packet of a stream whose timestamps start
        # later (MPEG-TS): that seek lands at the start of the file. Where they start below
        # zero (an MPEG-TS clock that wraps round early on: FFmpeg counts the time before
        # the wrap as negative), a second below the first: MPEG-TS is searched by decoding
        # times, and the first keyframe's is earlier than the time it is shown at, so a
        # seek to that lands a packet past it, where no decoding can start.
        start = self._facts.first or 0
        lowest = start - math.ceil(1 / stream.time_base) if start < 0 else 0
        for back in _SEEK_BACK:
            timestamp = max(math.floor((target - back) / stream.time_base), lowest)
            first, last = self._keyframes_up_to(timestamp, target)
            if first is not None or timestamp == lowest or target - back <= self._origin:
                break  # found, or sought from the start: nothing lies further back
        else:
            logger.warning(
                "%s: no keyframe found within %g s before %.3f s; decoding from where the "
                "seek landed",
                self.name,
                _SEEK_BACK[-1],
                time,
            )
            timestamp = max(math.floor(target / stream.time_base), lowest)
            first = last = None
        if first is not None and last is not None and last.time > first.time:
            # Landed groups before the keyframe wanted: from that one, if a seek finds it.
            again, _ = self._keyframes_up_to(last.timestamp, target)
            if again is not None and again.time == last.time:
                timestamp, first = last.timestamp, last
        # Reading the packets moved past the keyframe: back again, the same way.
        self._container.seek(timestamp, stream=stream, backward=True)
        self._sought = True
        return None if first is None else first.time - self._origin

    def _keyframes_up_to(
        self, timestamp: int, target: float
    ) -> tuple[_Keyframe | None, _Keyframe | None]:
        """Seek back to ``timestamp`` and read the packets from there on while they are shown
        at or before ``target`` (seconds on the file's clock: a keyframe is shown after every
        packet before it, so none follows a packet shown later); the first and the last
        keyframe among them, or None."""
        stream = self._stream
        assert stream.time_base is not None
        self._container.seek(timestamp, stream=stream, backward=True)
        first: _Keyframe | None = None
        last: _Keyframe | None = None
        for packet in self._container.demux(stream):
            if packet.pts is None:
                continue
            shown = seconds(packet.pts, stream.time_base)
            if shown > target:
                break
            if packet.is_keyframe:
                last = _Keyframe(shown, packet.pts if packet.dts is None else packet.dts)
                first = first or last
        return first, last

    def frames(self, start: float = 0.0) -> Iterator[DecodedFrame]:
        """Decode every frame once (every reference frame, with ``skip_nonref``), from
        ``start`` (seconds; decoded from the keyframe at or before it) to the end.

        A file that breaks off part-way (truncated download) yields the frames before the
        damage, then raises VideoIncomplete; one that yields no frame at all raises
        VideoOpenFailure.
        """
        step = 1 / float(self.info.frame_rate)
        last_time = start - step
        count = 0
        try:
            # From the start without a seek, unless a seek has moved from it.
            from_start = start <= 0 and not self._sought
            for decoded in self._decoded() if from_start else self.frames_from(max(start, 0.0)):
                if decoded.time < start - _TIME_EPSILON:
                    continue
                last_time = decoded.time
                count += 1
                yield decoded
        except av.FFmpegError as exc:
            if count == 0:
                raise VideoOpenFailure(
                    f"{self.name}: no frame could be decoded ({exc}); the file is damaged"
                ) from exc
            raise self.incomplete(last_time + step, f" ({exc})") from exc
        if count == 0:
            raise self.no_frame("frame")
        # Skipped non-reference frames may hide the last few frames: allow for them.
        if self.cut_short(last_time + step, max(INCOMPLETE_SLACK, (MAX_SKIP_GAP + 1) * step)):
            raise self.incomplete(last_time + step)

    def _decoded(self) -> Iterator[DecodedFrame]:
        """Decode from the container's position on, with times and the skip-gap rule, in the
        order the frames are shown.

        A frame shown more than ``_JUMP_BACK`` s before the last one handed out is dropped,
        and so is each after it shown before that one, until one comes in order (a frame put
        out late past a damaged packet; recordings joined end to end: ``_Jumps``). One shown
        more than ``_JUMP_BACK`` s after it is held until the next comes: where that one
        follows on from the last frame handed out, the held frame's timestamp was the odd
        one (a damaged packet header) and it is dropped. Frames less out of order are handed
        out as they come (in AVI, whose timestamps are those of decoding, B-frames come a
        frame early).
        """
        jumps = _Jumps(self)
        step = 1 / float(self.info.frame_rate)
        self._pending.clear()  # from where the container was sought
        last: float | None = None  # when the last frame handed out is shown
        ahead: tuple[float, av.VideoFrame] | None = None  # one far after it, held
        credited = self._damaged  # damaged packets already set against a gap
        for frame in self._frames():
            if frame.time is not None:
                time = frame.time - self._origin
            else:  # a raw stream's: counted from its first frame, damaged ones too
                time = 0.0 if last is None else last + step * (1 + self._lost)
                self._lost = 0
            if ahead is not None:
                if time >= ahead[0] - _JUMP_BACK:
                    credited = self._check_gap(last, ahead[0], step, credited)  # it is no odd one
                    last = ahead[0]
                    yield self._handed_out(*ahead)
                else:
                    self.damage.late_frame(ahead[0], time)
                    if last is None or time < last - _JUMP_BACK:
                        jumps.late(ahead[0], time)  # before both: this one is late
                        continue
                    # It follows on from the last one handed out: the held one was odd.
                ahead = None
            if last is not None and jumps.late(last, time):
                self.damage.late_frame(last, time)
                continue
            if last is not None and time > last + _JUMP_BACK:
                ahead = (time, frame)
                continue
            credited = self._check_gap(last, time, step, credited)
            last = time
            yield self._handed_out(time, frame)
        if ahead is not None:
            yield self._handed_out(*ahead)

    def _check_gap(self, last: float | None, time: float, step: float, credited: int) -> int:
        """Stop skipping non-reference frames where the gap from ``last`` to ``time`` is
        longer than skipping leaves and ``MAX_SKIP_GAP`` frames or more were skipped in it:
        packets shown between the two, beside those of the damaged packets met since
        ``credited`` of them were set against a gap (they are reported a few packets late).
        How many are set against one now. ``step``: a frame's duration."""
        passed = bisect.bisect_right(self._pending, time - _TIME_EPSILON)
        skipped = passed - bisect.bisect_right(self._pending, (last or 0.0) + _TIME_EPSILON)
        del self._pending[:passed]
        if not self.skip_nonref or last is None or time - last <= (MAX_SKIP_GAP + 0.5) * step:
            return credited
        if skipped - (self._damaged - credited) >= MAX_SKIP_GAP:
            self._decode_every_frame(gap=time - last, at=time)
        return self._damaged

    def _handed_out(self, time: float, frame: av.VideoFrame) -> DecodedFrame:
        return DecodedFrame(
            time=time,
            frame=frame,
            reformatter=self._reformatter,
            scale_threads=self._scale_threads,
            stream_size=self._stream_size,
            pixel_aspect=self._pixel_aspect,
        )

    def _frames(self) -> Iterator[av.VideoFrame]:
        """The decoder's frames from the container's position on, past damaged packets."""
        stream = self._stream
        base = stream.time_base
        assert base is not None
        for index, packet in enumerate(self._container.demux(stream)):
            if not packet.size and packet.pts is not None:
                continue  # no picture: the last one again (Theora's unchanged frames)
            if packet.pts is not None:
                shown: float | None = seconds(packet.pts, base) - self._origin
            elif packet.size and packet.duration:  # a raw stream: a frame a packet
                shown = index * seconds(packet.duration, base)
            else:
                shown = None
            if shown is not None and self.skip_nonref:
                bisect.insort(self._pending, shown)
            frames = self.damage.decode(stream.codec_context, packet, shown)
            if frames is None and packet.size:
                self._damaged += 1
                self._lost += not self.timed  # a frame that will not be counted
            for frame in frames or ():
                if frame.time is not None:
                    self._reached = max(self._reached, frame.time - self._origin)
                yield frame

    def cut_short(self, end: float, slack: float = INCOMPLETE_SLACK) -> bool:
        """Whether frames that end at ``end`` fall more than ``slack`` seconds short of the
        stream's declared duration: the index promises more than the data holds (a
        truncated download whose index sits in front, or data lost behind it; FFmpeg stops
        quietly at the end of the data). Not where a frame decoded was shown that late:
        then the duration is FFmpeg's estimate from the timestamps (an MPEG-TS file's, which
        has no index) and counted an odd one, whose frame was dropped."""
        declared = self._declared_stream_duration()
        if declared is None or end >= declared - slack:
            return False
        if self._reached >= declared - slack:
            logger.info(
                "%s: the video ends at %.2f s, though a frame is shown at %.2f s and the "
                "file counts %.2f s; that timestamp is taken for an odd one",
                self.name,
                end,
                self._reached,
                declared,
            )
            return False
        return True

    def _declared_stream_duration(self) -> float | None:
        return self._facts.declared

    def no_frame(self, what: str) -> VideoOpenFailure:
        """The error for a video stream in which no ``what`` (frame, keyframe) was decoded."""
        if self.damage.times:
            return VideoOpenFailure(
                f"{self.name}: no {what} could be decoded, every one met was damaged; the file "
                "is damaged or not in the format it claims"
            )
        return VideoOpenFailure(f"{self.name}: the video stream holds no {what}")

    def jumped_back(self, before: float, time: float) -> VideoTimestampsJump:
        """The error for a frame shown at ``time`` after one shown at ``before``, seconds
        later (``_JUMP_BACK``): the frames from there have no place on the film's timeline."""
        return VideoTimestampsJump(
            f"{self.name}: its timestamps jump back from {before:.2f} s to {time:.2f} s, as "
            "where recordings are joined end to end, so the frames after that cannot be "
            "placed on the film's timeline; remux it with continuous timestamps first, e.g. "
            "`ffmpeg -i IN -c copy OUT.mkv`"
        )

    def incomplete(self, decoded: float, detail: str = "") -> VideoIncomplete:
        """The error for this video when its frames stop at ``decoded`` seconds."""
        declared = self.info.duration
        of = f" of {declared:.1f} s" if declared is not None else ""
        return VideoIncomplete(
            f"{self.name}: the video is incomplete (damaged or cut short): decoding stopped "
            f"at {decoded:.1f} s{of}{detail}; check that the file is complete"
        )

    def _decode_every_frame(self, gap: float, at: float) -> None:
        """Stop skipping: the stream has long runs of non-reference frames."""
        self.stop_skipping(at)
        logger.info(
            "%s: %.3f s between two reference frames at %.2f s (more than %d frames); "
            "decoding every frame from here",
            self.name,
            gap,
            at,
            MAX_SKIP_GAP,
        )

    def stop_skipping(self, at: float) -> None:
        """Decode every frame from here on (``skip_nonref`` off): from ``at`` seconds, where
        this reader (or another of the same file) met a long run of non-reference frames."""
        if self.skipping_stopped_at is None:
            self.skipping_stopped_at = at
        self.skip_nonref = False
        self._stream.codec_context.skip_frame = "DEFAULT"

    def read_ahead(
        self, frames: Iterator[DecodedFrame], prepare: Callable[[DecodedFrame], T], *, depth: int
    ) -> Generator[tuple[DecodedFrame, T], None, None]:
        """``app.pipeline.readahead.read_ahead`` over frames of this reader, closed by
        ``close`` before the file is: its thread never decodes from a closed file."""
        ahead = read_ahead(frames, prepare, depth=depth)
        self._ahead.add(ahead)
        return ahead

    def analysed(
        self, frames: Iterator[DecodedFrame], width: int
    ) -> Generator[tuple[DecodedFrame, np.ndarray], None, None]:
        """``frames`` with the small copy of each that the detectors look at
        (``DecodedFrame.to_small_bgr``), decoded and scaled down in a thread of their own
        while the detectors run on the caller's."""
        return self.read_ahead(
            frames, lambda decoded: decoded.to_small_bgr(width), depth=_READ_AHEAD
        )

    @property
    def closing(self) -> bool:
        """Whether ``close`` has begun: work ``in_parallel`` stops at its next frame."""
        return self._closing.is_set()

    def close(self) -> None:
        """Close the file, after any read-ahead and background work still running on it
        (see ``read_ahead``, ``in_background`` and ``in_parallel``)."""
        self._closing.set()
        for ahead in list(self._ahead):
            ahead.close()
        self._background.shutdown(wait=True, cancel_futures=True)
        self._parallel.shutdown(wait=True, cancel_futures=True)
        for aside in self._asides.values():
            aside.close()
        self._container.close()

    def aside(self, threads: int | None = None) -> VideoReader:
        """A second reader of the file with the same settings, one for each thread that
        asks, opened on first use and closed with this one: to decode a few frames from
        while this one is decoding elsewhere (the frames of scenes a scan did not keep), or
        a stretch beside others (``in_parallel``).

        Args:
            threads: Its decoding threads when it is opened (0: one per core); default a
                share of the cores for each of ``BACKGROUND_THREADS``.
        """
        thread = threading.get_ident()
        with self._asides_lock:
            if thread not in self._asides:
                self._asides[thread] = VideoReader(
                    self.path,
                    threads=max(1, cores() // BACKGROUND_THREADS) if threads is None else threads,
                    skip_nonref=self.skipping_at_open,
                    decode_device=self._decode_device,
                    name=self.name,
                    beside=self,
                )
                self._asides[thread].damage = self.damage
            return self._asides[thread]

    def set_skipping(self, skip: bool) -> None:
        """Skip non-reference frames, or not, in the packets decoded from now on (a seek
        first flushes the decoder), forgetting where it stopped skipping: for an ``aside``
        reader, whose every decode says (``scan.FrameGrab``, the keyframe scan's stretches)."""
        self.skip_nonref = skip
        self.skipping_stopped_at = None
        self._stream.codec_context.skip_frame = "NONREF" if skip else "DEFAULT"

    def in_background(self, work: Callable[[], T]) -> Future[T]:
        """Run ``work`` (a short decode from an ``aside`` reader) on one of this reader's
        ``BACKGROUND_THREADS``, finished or cancelled before the reader closes: FFmpeg
        decodes without holding the interpreter, so such decodes run beside the scan and,
        on many cores, beside each other."""
        return self._background.submit(work)

    def in_parallel(self, work: Callable[[], T]) -> Future[T]:
        """Run ``work`` (a stretch decoded from an ``aside`` reader) on one of this reader's
        ``PARALLEL_DECODES`` threads, finished or cancelled before the reader closes; it
        should stop once the reader is ``closing``."""
        return self._parallel.submit(work)

    def _open_again(self) -> tuple[InputContainer, VideoStream]:
        """A second handle on the file and its stream that this reader decodes, for a pass
        beside this reader's own."""
        container = _open(self.path, self._hwaccel, probe=False)
        stream = _same_stream(container, self._stream)
        stream.codec_context.reorder_depth = self._facts.reorder
        stream.thread_type = "AUTO"
        stream.thread_count = self._stream.thread_count
        return container, stream

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class GroupOfPictures:
    """The packets from one keyframe to the next, as the keyframe pass saw them."""

    start: float
    """Presentation time of the keyframe, seconds."""
    end: float
    """Presentation time of the next keyframe, or the end of the stream."""
    intra: int | None = None
    """Frames coded as intra (I) in the group besides its keyframe. An encoder that sees a
    scene change too soon after a keyframe to start a new group (x264 and x265 within
    ``min-keyint``) codes that frame as intra: a cut may lie there. None where unknown: a
    codec outside ``INTRA_CODECS``, or a stream with no such frame anywhere (so far) whose
    encoder does not say it marks scene changes (x264 with scene-cut detection on does): it
    may code its cuts as other frames (scene-cut detection off, some hardware encoders,
    clips joined with keyframes only at the joins)."""
    sizes: tuple[int, ...] = ()
    """Sizes of the group's other packets in presentation order, bytes."""
    next_key_size: int | None = None
    """Size of the keyframe's packet that ends the group, bytes; None for the last group."""
    last_intra: float | None = None
    """Time of the last of those intra frames; None where there is none, or it is unknown."""
    interval_share: float | None = None
    """How far into its keyframe interval (x264's and x265's ``keyint``) the encoder ended
    the group on a keyframe: its frames over ``keyint``, 1 for a group ended by the clock;
    None where the encoder does not say (or does not mark scene changes), or the stream
    ends the group. Short of the clock, the encoder keyed a scene change it saw, and how
    early tells how sure it was: x264 and x265 key a frame early in the interval only where
    the frame before predicts it badly (a cut, a flash); late in it a fast camera move is
    enough (``scene_change``)."""
    clock: bool = False
    """The encoder ended the group by the clock: it is exactly its keyframe interval long
    (``keyint`` frames, which x264 and x265 write into the stream), and that encoder marks
    the scene changes it sees. With no intra frame inside (``intra`` 0), no scene change the
    encoder saw lies in the group or put its next keyframe there."""

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def scene_change(self) -> bool:
        """The encoder ended the group for a scene change it saw in the first half of its
        keyframe interval (``interval_share``). Such a keyframe may look like the one before
        it and still be a cut (a countdown leader: each number's first frame like the last
        number's first frame)."""
        return self.interval_share is not None and self.interval_share <= 0.5

    @property
    def spike(self) -> float:
        """The largest packet after the first ``KEYFRAME_FOLLOWERS`` over the upper quartile
        of the group's packets (0 when there are none): a frame coded mostly as intra, as an
        encoder codes one after a cut it put no keyframe on, or a flash, or a source's
        periodic quality refresh (packet sizes cannot tell which)."""
        later = self.sizes[KEYFRAME_FOLLOWERS:]
        if not later:
            return 0.0
        return max(later) / max(float(np.percentile(self.sizes, 75)), 1.0)


KEYFRAME_FOLLOWERS = 4
"""Packets decoded after each keyframe by ``KeyframePass``: with up to three B-frames they
give the two frames shown right after the keyframe, which tell how fast the shot moves."""


INTRA_CODECS = frozenset({"h264", "hevc"})
"""Codecs whose packets' slice headers the keyframe pass reads (``slices.SliceTypes``) to
find their intra frames, for ``GroupOfPictures.intra``."""


class KeyframePass:
    """One pass over the file that demuxes every packet but decodes only the keyframes, the
    first few packets after each (``KEYFRAME_FOLLOWERS``); for ``INTRA_CODECS`` it reads
    every packet's first slice header to find the other intra frames.

    Iterating yields the decoded frames in presentation order (``frame.key_frame`` tells
    the keyframes); once it is done, ``groups`` lists every group of pictures and ``end``
    is the end of the stream. A keyframe refers to no other frame and the packets right
    after it refer only to it and each other, so the decoder is never sent a packet whose
    references it lacks, in any codec (the packets it does not send are skipped unread).
    On 60 s of Big Buck Bunny at 720p (x264's default groups, two cores) it took 0.15 s,
    0.21 CPU s, against 2.2 s for ``ffmpeg -f null``; more where groups are short, since
    each keyframe and the packets after it are decoded. (In an open-GOP stream, leading pictures
    after a keyframe lack references and come out damaged: the shot then looks busy, and
    the scan decodes more, not less.)

    Raises (while iterating):
        VideoOpenFailure: not a single keyframe could be decoded.
        VideoIncomplete: the file breaks off part-way.
    """

    def __init__(self, reader: VideoReader) -> None:
        self._reader = reader
        self.groups: list[GroupOfPictures] = []
        self.end = 0.0
        self._keys: list[float] = []
        self._intra: list[float] = []
        self._reads_intra = False
        self._done = False
        settings = reader.encoder_settings
        self._marks_scene_changes = settings is not None and settings.scene_cuts
        self._keyint = None if settings is None else settings.keyint
        self._packets: list[tuple[float, int]] = []
        self._key_sizes: dict[float, int] = {}
        self._demuxed_at: dict[float, tuple[int, int, int]] = {}
        """For each keyframe (``round(time, 6)``): how many keyframes, intra frames and
        other packets had been demuxed once it was, itself included (``groups_so_far``)."""
        self._intra_inside = False
        """An intra frame that is not a keyframe has been demuxed."""
        self._keys_intra = True
        """Every keyframe demuxed so far is an intra picture. Where one is not (x264's
        periodic intra refresh marks P-frames as keyframes, the intra macroblocks spread
        over the frames after them), the encoder's intra frames tell nothing of where it saw
        scene changes."""

    def groups_so_far(self, since: float | None = None) -> list[GroupOfPictures]:
        """While iterating: the groups whose next keyframe has been demuxed, in order; from
        the one that starts on the keyframe at ``since`` on, where given (a frame shown
        after a keyframe is demuxed after it, so only what came since is looked at). The last
        may still lack packets: in an open-GOP stream the pictures shown just before a
        keyframe come after it in decoding order (the plan judges no group until the
        keyframe after it is decoded, ``scan._seen_plan``)."""
        keys, intra, packets = (1, 0, 0) if since is None else self._demuxed_at[round(since, 6)]
        # From the keyframe at ``since`` (the last of ``keys``), which starts the first group.
        return self._groups(
            sorted(self._keys[keys - 1 :]), None, self._intra[intra:], self._packets[packets:]
        )

    @property
    def tells_intra(self) -> bool:
        """Whether the stream says, so far, which frames its encoder coded as intra
        (``GroupOfPictures.intra`` is known)."""
        return (
            self._reads_intra
            and (self._intra_inside or self._marks_scene_changes)
            and self._keys_intra
        )

    def _groups(
        self,
        keyframes: list[float],
        end: float | None,
        intra_frames: list[float],
        demuxed: list[tuple[float, int]],
    ) -> list[GroupOfPictures]:
        """The groups from each of ``keyframes`` (in order) to the next, and from the last to
        ``end`` where given (the end of the stream), with the intra frames and other packets
        among ``intra_frames`` and ``demuxed`` that fall inside them."""
        starts, ends = (
            (keyframes[:-1], keyframes[1:]) if end is None else (keyframes, [*keyframes[1:], end])
        )
        keys = {round(key, 6) for key in keyframes}
        intra = sorted(time for time in intra_frames if round(time, 6) not in keys)
        known = self.tells_intra
        packets = sorted(demuxed)
        times = [time for time, _ in packets]

        def within(start: float, end: float) -> tuple[int, ...]:
            first = bisect.bisect_right(times, start + _TIME_EPSILON)
            return tuple(size for _, size in packets[first : bisect.bisect_left(times, end)])

        groups = []
        for start, end in zip(starts, ends, strict=True):
            sizes = within(start, end)
            first = bisect.bisect_right(intra, start + _TIME_EPSILON)
            after = bisect.bisect_left(intra, end - _TIME_EPSILON)
            groups.append(
                GroupOfPictures(
                    start=start,
                    end=end,
                    intra=after - first if known else None,
                    last_intra=intra[after - 1] if known and after > first else None,
                    sizes=sizes,
                    next_key_size=self._key_sizes.get(round(end, 6)),
                    interval_share=(len(sizes) + 1) / self._keyint
                    if known
                    and self._marks_scene_changes
                    and self._keyint is not None
                    and round(end, 6) in keys
                    else None,
                    clock=known
                    and self._marks_scene_changes
                    and len(sizes) + 1 == self._keyint
                    and round(end, 6) in keys,
                )
            )
        return groups

    def __iter__(self) -> Iterator[DecodedFrame]:
        reader = self._reader
        container, stream = reader._open_again()
        assert stream.time_base is not None
        base, origin = stream.time_base, reader._origin
        step = 1 / float(reader.info.frame_rate)
        slices = (
            SliceTypes(reader.codec, stream.codec_context.extradata)
            if reader.codec in INTRA_CODECS
            else None
        )
        self._reads_intra = slices is not None
        keys = self._keys
        end = 0.0
        jumps = _Jumps(reader)
        damage = reader.damage
        count = 0
        followers = 0
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                time = seconds(packet.pts, base) - origin
                # Decoding times only go forward (presentation times come back by the
                # B-frames' delay, seconds at a slide show's frame rate).
                if packet.dts is not None:
                    jumps.follow(seconds(packet.dts, base) - origin)
                length = seconds(packet.duration, base) if packet.duration else step
                end = max(end, time + length)
                intra = (
                    slices is not None
                    and (keys or packet.is_keyframe)
                    and slices.intra(bytes(packet))
                )
                if intra:
                    self._intra.append(time)
                if packet.is_keyframe:
                    keys.append(time)
                    self._key_sizes[round(time, 6)] = packet.size
                    self._demuxed_at[round(time, 6)] = (
                        len(keys),
                        len(self._intra),
                        len(self._packets),
                    )
                    self._keys_intra = self._keys_intra and intra
                    followers = KEYFRAME_FOLLOWERS
                elif not keys:
                    continue
                else:
                    self._intra_inside = self._intra_inside or intra
                    self._packets.append((time, packet.size))
                    if not followers:
                        continue
                    followers -= 1
                for frame in damage.decode(stream.codec_context, packet, time) or ():
                    count += 1
                    yield self._decoded(frame, base, origin)
            for frame in damage.decode(stream.codec_context, None, None) or ():
                count += 1
                yield self._decoded(frame, base, origin)
        except av.FFmpegError as exc:
            if count == 0:
                raise VideoOpenFailure(
                    f"{reader.name}: no frame could be decoded ({exc}); the file is damaged"
                ) from exc
            raise reader.incomplete(end, f" ({exc})") from exc
        finally:
            container.close()
        if count == 0:
            raise reader.no_frame("keyframe")
        declared = reader._declared_stream_duration()
        if declared is not None and end < declared - INCOMPLETE_SLACK:
            raise reader.incomplete(end, "")
        keys.sort()
        self.end = end
        self._done = True
        self.groups = self._groups(keys, end, self._intra, self._packets)

    def _decoded(self, frame: av.VideoFrame, base: Fraction, origin: float) -> DecodedFrame:
        # The stream's time base: frames drained at the end carry none of their own (their
        # ``time`` is NaN).
        time = seconds(frame.pts, base) - origin if frame.pts is not None else 0.0
        return DecodedFrame(
            time=time,
            frame=frame,
            reformatter=self._reader._reformatter,
            scale_threads=self._reader._scale_threads,
            stream_size=self._reader._stream_size,
            pixel_aspect=self._reader._pixel_aspect,
        )


_ENCODERS = (b"x264 - core", b"x265 (build")
"""How x264's and x265's options strings begin."""
_SCENECUT = re.compile(rb" scenecut=(\d+)")
_KEYINT = re.compile(rb" keyint=(\d+)")
_OPTIONS_LENGTH = 8000
"""Bytes of an options string searched for its settings."""


@dataclass(frozen=True)
class EncoderSettings:
    """What x264 or x265 wrote of its options into the stream."""

    encoder: str
    """``x264`` or ``x265``."""
    scene_cuts: bool
    """Whether scene-cut detection was on: then every scene change the encoder saw is a
    keyframe or, too soon after one, an intra frame, and a group with no intra frame inside
    has no such change. Off (``scenecut=0``, ffmpeg's ``-sc_threshold 0``), the keyframes
    fall by the clock alone, as in streaming encodes."""
    keyint: int | None
    """The keyframe interval in frames; None where unlimited."""


def encoder_settings(headers: bytes) -> EncoderSettings | None:
    """x264's or x265's settings from the options string it writes (an SEI message in the
    first packet, or in the codec's extradata) in ``headers``; None for other encoders."""
    for encoder in _ENCODERS:
        at = headers.find(encoder)
        if at >= 0:
            scenecut = _SCENECUT.search(headers, at, at + _OPTIONS_LENGTH)
            keyint = _KEYINT.search(headers, at, at + _OPTIONS_LENGTH)
            return EncoderSettings(
                encoder=encoder[:4].decode(),
                scene_cuts=scenecut is not None and int(scenecut.group(1)) > 0,
                keyint=int(keyint.group(1)) if keyint is not None else None,
            )
    return None
