"""Write descriptions as JSON, WebVTT, SRT or DAPT, each one as soon as it is ready.

A writer puts its header on the stream when it is opened, each description when it is
written, and its footer when it is closed, flushing after each, so that a reader of a file
or a chunked HTTP response sees descriptions while the video is still being scanned.

JSON is one array of objects (all fields of :class:`~app.pipeline.types.Description`),
written as ``[`` then the items then ``]``: the stream is a valid JSON document once the
writer is closed, and each item sits on its own line while it streams. JSON Lines was not
chosen so that the same output is a plain ``application/json`` body for the HTTP API.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from enum import StrEnum
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from app.pipeline import dapt
from app.pipeline.types import Description

if TYPE_CHECKING:
    from app.pipeline.scan import ListedScene


class OutputFormat(StrEnum):
    """Formats descriptions can be written in."""

    JSON = "json"
    VTT = "vtt"
    SRT = "srt"
    DAPT = "dapt"
    """A W3C DAPT script (TTML2): see ``app.pipeline.dapt``."""

    @property
    def media_type(self) -> str:
        """The MIME type of this format, for HTTP responses."""
        return _MEDIA_TYPES[self]


_MEDIA_TYPES = {
    OutputFormat.JSON: "application/json",
    OutputFormat.VTT: "text/vtt",
    OutputFormat.SRT: "application/x-subrip",
    OutputFormat.DAPT: "application/ttml+xml",
}


class DescriptionWriter(ABC):
    """Writes descriptions to a text stream, one at a time, flushing after each.

    The header is written when the writer is created; :meth:`close` writes the footer but
    leaves the stream open, as the caller owns it. A writer is also a context manager that
    closes itself on a normal exit; when an exception leaves the block it writes no footer,
    so that a run that failed half way does not look like a complete JSON document.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._count = 0
        self._closed = False
        self._emit(self._header())

    def write(self, description: Description) -> None:
        """Write one description and flush the stream.

        Args:
            description: The description to write.

        Raises:
            ValueError: The writer is closed, or a time is negative or not finite.
        """
        if self._closed:
            raise ValueError("cannot write a description after the writer was closed")
        self._emit(self._item(description, self._count))
        self._count += 1

    def close(self) -> None:
        """Write the footer and flush; the stream stays open. Closing twice does nothing."""
        if self._closed:
            return
        self._closed = True
        self._emit(self._footer())

    def __enter__(self) -> DescriptionWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._closed = True

    def _emit(self, text: str) -> None:
        if text:
            self._stream.write(text)
            self._stream.flush()

    def _header(self) -> str:
        """Text written when the writer opens."""
        return ""

    @abstractmethod
    def _item(self, description: Description, index: int) -> str:
        """Text of one description; ``index`` counts the descriptions written, from 0."""

    def _footer(self) -> str:
        """Text written when the writer closes."""
        return ""


class JsonWriter(DescriptionWriter):
    """A JSON array of description objects, one per line."""

    def _header(self) -> str:
        return "[\n"

    def _item(self, description: Description, index: int) -> str:
        # allow_nan=False: NaN and Infinity are not JSON, refuse them instead of writing them.
        item = json.dumps(dataclasses.asdict(description), ensure_ascii=False, allow_nan=False)
        return item if index == 0 else ",\n" + item

    def _footer(self) -> str:
        return "\n]\n"


class VttWriter(DescriptionWriter):
    """A WebVTT file of ``Kind: descriptions``, one cue per description."""

    def _header(self) -> str:
        return "WEBVTT\nKind: descriptions\n\n"

    def _item(self, description: Description, index: int) -> str:
        # Cue text is markup in WebVTT: escape &, < and > so the text reads as written.
        text = html.escape(_one_line(description.text), quote=False)
        return f"{_timings(description, '.')}\n{text}\n\n"


class SrtWriter(DescriptionWriter):
    """A SubRip file, cues numbered from 1."""

    def _item(self, description: Description, index: int) -> str:
        return f"{index + 1}\n{_timings(description, ',')}\n{_one_line(description.text)}\n\n"


class DaptWriter(DescriptionWriter):
    """A W3C DAPT script, one ``div`` per description (see ``app.pipeline.dapt``).

    Args:
        stream: Where to write.
        language: ISO 639-1 code of the descriptions' language.
        audio: The description-only track the script refers to; None: no audio rendered.
    """

    def __init__(self, stream: TextIO, *, language: str, audio: str | None = None) -> None:
        self._language = language
        self._audio = audio
        super().__init__(stream)

    def _header(self) -> str:
        return dapt.header(self._language, self._audio)

    def _item(self, description: Description, index: int) -> str:
        return dapt.div(description, index, self._audio)

    def _footer(self) -> str:
        return dapt.FOOTER


_WRITERS: dict[OutputFormat, type[DescriptionWriter]] = {
    OutputFormat.JSON: JsonWriter,
    OutputFormat.VTT: VttWriter,
    OutputFormat.SRT: SrtWriter,
}


def open_writer(
    fmt: OutputFormat, stream: TextIO, *, language: str = "en", audio: str | None = None
) -> DescriptionWriter:
    """Start writing descriptions in a format; the header is written at once.

    Args:
        fmt: The output format.
        stream: Where to write; it is flushed after each description and left open.
        language: The descriptions' language (ISO 639-1), for formats that declare it (DAPT).
        audio: Where the description-only track is, for formats that refer to it (DAPT).

    Returns:
        A writer; call :meth:`DescriptionWriter.close` (or use it as a context manager)
        to finish the document.
    """
    if fmt is OutputFormat.DAPT:
        return DaptWriter(stream, language=language, audio=audio)
    return _WRITERS[fmt](stream)


def render(
    descriptions: Iterable[Description],
    fmt: OutputFormat,
    language: str = "en",
    audio: str | None = None,
) -> str:
    """Render descriptions to a complete document in one string.

    Args:
        descriptions: The descriptions, in the order to write them.
        fmt: The output format.
        language: The descriptions' language (ISO 639-1), for DAPT.
        audio: URL of their spoken track, referenced by DAPT; None when none was rendered.

    Returns:
        The same text a writer of that format would stream.

    Raises:
        ValueError: A time is negative or not finite.
    """
    buffer = io.StringIO()
    with open_writer(fmt, buffer, language=language, audio=audio) as writer:
        for description in descriptions:
            writer.write(description)
    return buffer.getvalue()


def format_timestamp(seconds: float, separator: str) -> str:
    """Format a time as ``HH:MM:SS<separator>mmm``, rounded to the millisecond.

    Args:
        seconds: The time; hours grow past two digits when needed.
        separator: Between seconds and milliseconds: ``"."`` for WebVTT, ``","`` for SRT.

    Returns:
        The timestamp, e.g. ``"00:01:02.500"``.

    Raises:
        ValueError: The time is negative or not finite.
    """
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"cannot write a timestamp for {seconds} s; times must be >= 0")
    total_ms = round(seconds * 1000)
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def _timings(description: Description, separator: str) -> str:
    """The ``start --> end`` line of a cue."""
    start = format_timestamp(description.start, separator)
    end = format_timestamp(description.end, separator)
    return f"{start} --> {end}"


def _one_line(text: str) -> str:
    """Collapse whitespace and line breaks: a blank line would end the cue early."""
    return " ".join(text.split())


class SceneListFormat(StrEnum):
    """Formats a list of scenes (``python -m app scenes``) can be written in."""

    CSV = "csv"
    JSON = "json"


def _timecode(seconds: float) -> str:
    """``HH:MM:SS.mmm``, as PySceneDetect writes times."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    return f"{hours:02d}:{minutes:02d}:{millis / 1000:06.3f}"


SCENE_CSV_COLUMNS = (
    "Scene Number",
    "Start Frame",
    "Start Timecode",
    "Start Time (seconds)",
    "End Frame",
    "End Timecode",
    "End Time (seconds)",
    "Length (frames)",
    "Length (timecode)",
    "Length (seconds)",
    "Frame Timecode",
    "Frame Time (seconds)",
)
"""PySceneDetect's ``list-scenes`` columns (frames counted from 1, the end frame included),
then the frame that would be captioned."""


def write_scene_list(
    scenes: Iterable[ListedScene], fmt: SceneListFormat, stream: TextIO, frame_rate: float
) -> None:
    """Write scenes as CSV (a row each, as they come) or as one JSON document.

    Args:
        scenes: The scenes, in order.
        fmt: The format.
        stream: Where to write.
        frame_rate: Frames per second, for the frame numbers.
    """
    if fmt == SceneListFormat.CSV:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(SCENE_CSV_COLUMNS)
    items = []
    for listed in scenes:
        scene = listed.scene
        first, last = round(scene.start * frame_rate), round(scene.end * frame_rate)
        if fmt == SceneListFormat.JSON:
            items.append(
                {
                    "index": scene.index,
                    "start": round(scene.start, 6),
                    "end": round(scene.end, 6),
                    "start_frame": first,
                    "end_frame": last,
                    "frame_time": None
                    if listed.frame_time is None
                    else round(listed.frame_time, 6),
                }
            )
            continue
        frame = listed.frame_time
        writer.writerow(
            [
                scene.index + 1,
                first + 1,
                _timecode(scene.start),
                f"{scene.start:.3f}",
                last,
                _timecode(scene.end),
                f"{scene.end:.3f}",
                last - first,
                _timecode(scene.end - scene.start),
                f"{scene.end - scene.start:.3f}",
                "" if frame is None else _timecode(frame),
                "" if frame is None else f"{frame:.3f}",
            ]
        )
        stream.flush()
    if fmt == SceneListFormat.JSON:
        json.dump({"frame_rate": frame_rate, "scenes": items}, stream, indent=1)
        stream.write("\n")
