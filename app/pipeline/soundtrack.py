"""Narration as sound: the description-only track, and the film with an audio-description
track added.

Both are made in one streaming pass with PyAV, block by block, so a two-hour film never sits
in memory: each description's speech (a ``Clip``) is resampled when the timeline reaches it.

* ``write_track``: the descriptions on the film's timeline, silence elsewhere; the format
  follows the file's extension (``AUDIO_FORMATS``).
* ``mix_film``: the film's video, audio and subtitle streams copied packet for packet (not
  re-encoded; with their language and title, and the film's chapters and attached fonts),
  plus a new audio track: the original track FFmpeg would play (the default one) lowered
  by ``duck_db`` under each description (linear ramps of ``ramp`` seconds on either side),
  with the description spoken over it, in the centre channel where there is one (a 5.1 or
  7.1 film, as dialogue is mixed), else in the front pair. The new track is tagged with
  the descriptions' language, titled "Audio description" and marked for the visually
  impaired; the original stays the default track. A film without audio gets the
  descriptions as its only audio track. The new track follows the film's timeline (the
  one descriptions are timed on): when the original sound starts later than the film, the
  track is silent until it does, so the ducking lands under the descriptions. MP4 holds
  only its own subtitle format (``mov_text``) and no attached files (a styled subtitle's
  fonts): other subtitle tracks and the attachments are left out there, with a warning.

Every output is written to a temporary file beside its target and renamed onto it once
complete (``atomic_output``): a failure leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
import numpy.typing as npt
import pycountry
from av.audio.stream import AudioStream
from av.subtitles.stream import SubtitleStream

from app.errors import RenderError, Stopped
from app.pipeline.damage import Damage
from app.pipeline.narration import Clip
from app.pipeline.types import StopSignal
from app.pipeline.video import film_stream

logger = logging.getLogger(__name__)

#: Extension -> (container format, audio codec) of a description-only track.
AUDIO_FORMATS = {
    ".wav": ("wav", "pcm_s16le"),
    ".flac": ("flac", "flac"),
    ".m4a": ("ipod", "aac"),
    ".mp3": ("mp3", "libmp3lame"),
    ".opus": ("opus", "libopus"),
}

#: Extension -> container format of a film with its description track.
FILM_FORMATS = {".mkv": "matroska", ".mp4": "mp4"}

TRACK_RATE = 48_000
"""Sample rate of a description-only track (the rate Opus requires, and films use)."""

TITLE = "Audio description"
"""Title of the added audio track."""

_BLOCK = 4096
"""Samples rendered at a time."""

_TAGS = ("language", "title", "handler_name")
"""Tags copied with each stream: what a player lists tracks by (MP4 titles a track by its
handler's name)."""

_ORDERED = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}
"""The channels' order taken for a track that states none (PCM in Matroska), by how many
there are: FFmpeg's default layouts. The AAC encoder refuses a track without an order."""

Block = npt.NDArray[np.float32]


@dataclass(frozen=True)
class MixOptions:
    """How the description track of a film is mixed.

    Attributes:
        duck_db: How far the original sound is lowered under a description, dB.
        ramp: Seconds over which it is lowered before a description and raised after it.
        language: ISO 639-1 code of the descriptions, tagged on the track (as ISO 639-2).
    """

    duck_db: float = 12.0
    ramp: float = 0.25
    language: str = "en"

    def __post_init__(self) -> None:
        if not 0 <= self.duck_db <= 60:
            raise ValueError(f"duck_db must be between 0 and 60 dB, got {self.duck_db}")
        if not 0 <= self.ramp <= 2:
            raise ValueError(f"the ducking ramp must be 0 to 2 seconds, got {self.ramp}")
        language_tag(self.language)

    @property
    def gain(self) -> float:
        """The original's gain under a description, linear."""
        return float(10 ** (-self.duck_db / 20))


def language_tag(code: str) -> str:
    """The ISO 639-2 code (bibliographic form, as Matroska wants) of an ISO 639-1 code.

    Raises:
        ValueError: Not an ISO 639-1 code.
    """
    language = pycountry.languages.get(alpha_2=code)
    if language is None:
        raise ValueError(f"{code!r} is not an ISO 639-1 language code (en, ru, ...)")
    return str(getattr(language, "bibliographic", language.alpha_3))


def check_output(path: str | Path, formats: Sequence[str]) -> Path:
    """Return ``path`` if its extension is one of ``formats`` and its folder can be written,
    so that a long run does not end in an error it could have reported at once.

    Raises:
        RenderError: Another extension (the message lists the valid ones), or a folder
            that cannot be written.
    """
    path = Path(path)
    if path.suffix.lower() not in formats:
        raise RenderError(
            f"cannot tell the format of {path} from its extension: use one of {', '.join(formats)}"
        )
    _temporary(path).unlink()
    return path


def _temporary(path: Path) -> Path:
    """A new empty file beside ``path``, with its extension (FFmpeg picks formats by it).

    Raises:
        RenderError: The folder cannot be written.
    """
    try:
        handle, name = tempfile.mkstemp(
            prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent
        )
    except OSError as exc:
        raise RenderError(f"cannot write {path}: {exc.strerror or exc}") from exc
    os.close(handle)
    return Path(name)


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` (same extension), renamed onto it once the body
    ends without an error; removed otherwise. It is created at once, so an unwritable
    directory fails before any work is done.

    Raises:
        RenderError: The directory cannot be written.
    """
    name = _temporary(path)
    try:
        yield name
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(name, 0o666 & ~umask)  # mkstemp made it private; a finished file is not
        os.replace(name, path)
    except BaseException:
        name.unlink(missing_ok=True)
        raise


class _Voices:
    """The descriptions' speech at one sample rate, handed out block by block."""

    def __init__(self, clips: Sequence[Clip], rate: int) -> None:
        self._pending = sorted(clips, key=lambda c: c.start)
        self._playing: list[tuple[int, Block]] = []
        self.rate = rate
        self.end = max((round(c.end * rate) for c in clips), default=0)
        """Sample at which the last description ends."""

    def block(self, start: int, count: int) -> Block:
        """The speech of samples ``[start, start + count)`` of the timeline, mono."""
        out = np.zeros(count, np.float32)
        while self._pending and round(self._pending[0].start * self.rate) < start + count:
            clip = self._pending.pop(0)
            self._playing.append((round(clip.start * self.rate), _resample(clip, self.rate)))
        for first, samples in self._playing:
            lo, hi = max(start, first), min(start + count, first + samples.size)
            if lo < hi:
                out[lo - start : hi - start] += samples[lo - first : hi - first]
        self._playing = [(f, s) for f, s in self._playing if f + s.size > start + count]
        return out


def _resample(clip: Clip, rate: int) -> Block:
    """A clip's samples at ``rate``."""
    if clip.sample_rate == rate or not clip.samples.size:
        return clip.samples
    frame = av.AudioFrame.from_ndarray(clip.samples.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = clip.sample_rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    frames = [*resampler.resample(frame), *resampler.resample(None)]  # None: flush
    parts = [f.to_ndarray().reshape(-1) for f in frames]
    return np.concatenate(parts).astype(np.float32) if parts else clip.samples[:0]


class _Ducker:
    """The original's gain, block by block: 1, ramping down to ``options.gain`` before each
    description and back up after it. Blocks must come in time order."""

    def __init__(self, clips: Sequence[Clip], options: MixOptions, rate: int) -> None:
        self._clips = sorted(clips, key=lambda c: c.start)
        self._options = options
        self._rate = rate

    def block(self, start: int, count: int) -> Block:
        """The gain over samples ``[start, start + count)`` of the timeline."""
        ramp, floor = self._options.ramp, self._options.gain
        t = (start + np.arange(count)) / self._rate
        gain = np.ones(count)
        while self._clips and self._clips[0].end + ramp < t[0]:
            self._clips.pop(0)  # passed
        for clip in self._clips:
            if clip.start - ramp > t[-1]:
                break
            if ramp > 0:
                # 0 outside, 1 under the speech, linear over the ramps.
                depth = np.clip(np.minimum(t - clip.start + ramp, clip.end + ramp - t) / ramp, 0, 1)
            else:
                depth = ((t >= clip.start) & (t < clip.end)).astype(np.float64)
            gain = np.minimum(gain, 1 - depth * (1 - floor))
        return gain.astype(np.float32)


def film_duration(path: Path) -> float:
    """The length of a media file, seconds.

    Raises:
        RenderError: FFmpeg cannot read it.
    """
    try:
        with av.open(str(path)) as container:
            if container.duration is None:
                raise RenderError(f"{path.name} does not say how long it is")
            return float(container.duration / av.time_base)
    except av.FFmpegError as exc:
        raise RenderError(f"cannot read {path.name}: {exc}") from exc


def write_track(
    path: str | Path, clips: Sequence[Clip], duration: float, stop: StopSignal | None = None
) -> Path:
    """Write the descriptions alone on the film's timeline, silence elsewhere.

    Args:
        path: Output file; its extension picks the format (``AUDIO_FORMATS``).
        clips: The descriptions' speech.
        duration: Length of the film, seconds; the track is as long (or until the last
            description ends, if that is later).
        stop: Asked between blocks; once set, the file is abandoned (``Stopped``).

    Raises:
        RenderError: An unknown extension, or the file cannot be written.
        Stopped: ``stop`` was set; nothing is left behind.
    """
    target = check_output(path, list(AUDIO_FORMATS))
    container_format, codec = AUDIO_FORMATS[target.suffix.lower()]
    voices = _Voices(clips, TRACK_RATE)
    total = max(round(duration * TRACK_RATE), voices.end)
    with atomic_output(target) as temporary:
        try:
            with av.open(str(temporary), "w", format=container_format) as out:
                stream = cast(AudioStream, out.add_stream(codec, rate=TRACK_RATE, layout="mono"))
                for start in range(0, total, _BLOCK):
                    _check(stop, target)
                    block = np.clip(voices.block(start, min(_BLOCK, total - start)), -1, 1)
                    out.mux(stream.encode(_frame(block.reshape(1, -1), "mono", start)))
                out.mux(stream.encode(None))
        except (av.FFmpegError, OSError) as exc:
            raise RenderError(f"cannot write {target}: {exc}") from exc
    logger.info("wrote the description track %s (%.1f s)", target, total / TRACK_RATE)
    return target


def _check(stop: StopSignal | None, target: Path) -> None:
    if stop is not None and stop.is_set():
        raise Stopped(f"stopped while writing {target}")


def _frame(planes: Block, layout: str, start: int, rate: int = TRACK_RATE) -> av.AudioFrame:
    """A frame of ``planes`` (a row a channel), packed: PyAV cannot hand more than eight
    planes to FFmpeg (a 7.1 film's planar frame crashed it)."""
    packed = np.ascontiguousarray(planes.T).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(packed, format="flt", layout=layout)
    frame.sample_rate = rate
    frame.pts = start
    frame.time_base = Fraction(1, rate)
    return frame


def mix_film(
    video: str | Path,
    clips: Sequence[Clip],
    path: str | Path,
    options: MixOptions,
    stop: StopSignal | None = None,
) -> Path:
    """Write the film with an audio-description track added (see the module docstring).

    Args:
        video: The film.
        clips: The descriptions' speech.
        path: Output file, ``.mkv`` or ``.mp4``.
        options: Ducking and the track's language.
        stop: Asked between packets; once set, the file is abandoned (``Stopped``).

    Raises:
        RenderError: An unknown extension, a film FFmpeg cannot read, streams the container
            cannot hold (then use .mkv), or a file that cannot be written.
        Stopped: ``stop`` was set; nothing is left behind.
    """
    target = check_output(path, list(FILM_FORMATS))
    with atomic_output(target) as temporary:
        try:
            with (
                av.open(str(video)) as source,
                av.open(str(temporary), "w", format=FILM_FORMATS[target.suffix.lower()]) as out,
            ):
                _mix(source, out, clips, options, lambda: _check(stop, target))
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise RenderError(
                f"cannot write {target}: {exc}"
                + (" (a .mkv file holds any codec)" if target.suffix.lower() != ".mkv" else "")
            ) from exc
    logger.info("wrote %s with its audio-description track", target)
    return target


def _mix(
    source: av.container.InputContainer,
    out: av.container.OutputContainer,
    clips: Sequence[Clip],
    options: MixOptions,
    check: Callable[[], None],
) -> None:
    film = Path(source.name).name
    copied = [
        *(s for s in source.streams if s.type in ("video", "audio")),
        *_subtitles(source, out, film),
    ]
    # Opaque: copied as they are, whether or not this FFmpeg could encode them (Theora).
    outputs = {s.index: out.add_stream_from_template(s, opaque=True) for s in copied}
    for stream in copied:
        outputs[stream.index].disposition = stream.disposition
        outputs[stream.index].metadata.update(
            {key: value for key, value in stream.metadata.items() if key in _TAGS}
        )
    if "title" in source.metadata:
        out.metadata["title"] = source.metadata["title"]
    out.set_chapters(source.chapters())
    _attach(source, out, film)
    best = source.streams.best("audio", film_stream(source))
    original = best if isinstance(best, av.AudioStream) else None
    rate = original.rate if original is not None else TRACK_RATE
    layout = "mono" if original is None else _layout(original)
    if original is not None:
        outputs[original.index].disposition |= av.stream.Disposition.default
    described = out.add_stream("aac", rate=rate, layout=layout)
    described.metadata["language"] = language_tag(options.language)
    described.metadata["title"] = TITLE  # Matroska
    described.metadata["handler_name"] = TITLE  # MP4
    described.disposition = av.stream.Disposition.visual_impaired
    if original is None:  # the only sound: the one to play
        described.disposition |= av.stream.Disposition.default
    voices = _Voices(clips, rate)
    ducker = _Ducker(clips, options, rate)
    origin = (source.start_time or 0) / av.time_base
    voiced = _voiced(described.layout)
    written = 0  # samples of the new track encoded so far

    def add(original_planes: Block | None, start: int, count: int) -> None:
        nonlocal written
        speech = voiced * voices.block(start, count)
        if original_planes is None:
            mixed = speech
        else:
            mixed = original_planes * ducker.block(start, count) + speech
        out.mux(described.encode(_frame(np.clip(mixed, -1, 1), layout, start, rate)))
        written = start + count

    skip = 0  # samples of the original before the film's start, dropped
    placed = False

    def place(time: float | None) -> None:
        """Line the original up with the film at its first frame: its sound may start
        later than the film (silence first) or a little before it (dropped)."""
        nonlocal skip, placed
        if placed or time is None:
            return
        placed = True
        lead = round((time - origin) * rate)
        if lead > 0:
            silence_until(lead)
        else:
            skip = -lead

    def add_frame(frame: av.AudioFrame) -> None:
        nonlocal skip
        # Packed (``_frame``): a row of samples, the channels interleaved.
        planes = frame.to_ndarray().reshape(-1, voiced.shape[0]).T.astype(np.float32)
        if skip:
            cut = min(skip, planes.shape[1])
            planes, skip = planes[:, cut:], skip - cut
        if planes.shape[1]:
            add(planes, written, planes.shape[1])

    def silence_until(end: int) -> None:
        while written < end:
            add(None, written, min(_BLOCK, end - written))

    def decode(packet: av.Packet) -> None:
        """Mix the sound of a packet of the original; silence of its length where it is
        damaged (``damage.py``), so that the sound after it stays in step with the film."""
        assert original is not None and original.time_base is not None
        base = original.time_base
        shown = None if packet.pts is None else float(packet.pts * base) - origin
        frames = damage.decode(original.codec_context, packet, shown)
        if frames is None:
            if placed:
                silence_until(written + round(float((packet.duration or 0) * base) * rate))
            return
        for frame in _resampled(frames, decoder, place):
            add_frame(frame)

    damage = Damage(film, "audio")
    decoder = av.AudioResampler(format="flt", layout=layout, rate=rate)
    for packet in source.demux(copied):
        check()
        if packet.dts is None:  # a demuxer's flush packet
            if packet.stream is original:
                decode(packet)
            continue
        stream = packet.stream
        if stream is original:
            decode(packet)
        elif original is None and packet.pts is not None and stream.time_base is not None:
            # No sound to follow: the new track keeps pace with the video packets.
            silence_until(round((float(packet.pts * stream.time_base) - origin) * rate))
        packet.stream = outputs[stream.index]
        out.mux(packet)
    for frame in decoder.resample(None):
        add_frame(frame)
    end = voices.end
    if original is None:
        end = max(end, round((source.duration or 0) / av.time_base * rate))
    silence_until(end)
    out.mux(described.encode(None))


def _subtitles(
    source: av.container.InputContainer, out: av.container.OutputContainer, film: str
) -> list[SubtitleStream]:
    """The subtitle tracks of ``film`` that ``out`` can hold (text and picture ones in
    Matroska, ``mov_text`` in MP4); each other one is left out, with a warning."""
    kept = []
    matroska = out.format.name == "matroska"
    for stream in source.streams.subtitles:
        name = None if stream.codec_context is None else stream.codec_context.name
        if name in out.supported_codecs:
            kept.append(stream)
            continue
        if name is None:
            logger.warning(
                "%s: its subtitle track %d is in a format this FFmpeg cannot read and is left out",
                film,
                stream.index,
            )
            continue
        logger.warning(
            "%s: its subtitle track %d (%s%s) cannot be stored in %s file and is left out%s",
            film,
            stream.index,
            name,
            f", {stream.metadata['language']}" if "language" in stream.metadata else "",
            "a .mkv" if matroska else "an .mp4",
            "" if matroska else " (a .mkv file holds more kinds of subtitles)",
        )
    return kept


def _attach(
    source: av.container.InputContainer, out: av.container.OutputContainer, film: str
) -> None:
    """Copy the attachments of ``film`` (the fonts its styled subtitles are drawn with)
    where ``out`` holds them (Matroska); else tell that they are left out."""
    attachments = source.streams.attachments
    if not attachments:
        return
    if out.format.name != "matroska":
        logger.warning(
            "%s: its attached files (%s) cannot be stored in an .mp4 file and are left out; "
            "styled subtitles are drawn with other fonts",
            film,
            ", ".join(attachment.name or "unnamed" for attachment in attachments),
        )
        return
    for attachment in attachments:
        # Matroska needs a name and a type for each; a file without them gets neutral ones.
        out.add_attachment(
            attachment.name or f"attachment-{attachment.index}",
            attachment.mimetype or "application/octet-stream",
            attachment.data,
        )


def _layout(stream: AudioStream) -> str:
    """The channel layout of the new track: the original's, or FFmpeg's default order for
    as many channels where it states none (``_ORDERED``)."""
    layout = stream.layout
    if all(channel.name != "NONE" for channel in layout.channels):
        return layout.name
    return _ORDERED.get(len(layout.channels), layout.name)


def _voiced(layout: av.AudioLayout) -> Block:
    """The speech's gain in each channel (a column): the centre channel alone where there is
    one (mono's only channel is one), else the front pair, else every channel."""
    names = [channel.name for channel in layout.channels]
    speakers = {"FC"} if "FC" in names else {"FL", "FR"} if "FL" in names else set(names)
    return np.array([[1.0 if name in speakers else 0.0] for name in names], np.float32)


def _resampled(
    frames: list[av.AudioFrame], resampler: av.AudioResampler, place: Callable[[float | None], None]
) -> Iterator[av.AudioFrame]:
    """Decoded audio frames, converted to the resampler's format; ``place`` is told each
    frame's time (seconds) first."""
    for frame in frames:
        place(frame.time)
        yield from resampler.resample(frame)
