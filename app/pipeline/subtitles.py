"""Read speech intervals from an SRT, WebVTT or ASS/SSA subtitles file, whatever its encoding.

The cue format is parsed by libraries: pysrt for SubRip, webvtt-py for WebVTT, pysubs2 for
Advanced SubStation Alpha (ASS) and SubStation Alpha (SSA). This module only decodes the
bytes, splits the text into cues (blank-line separated blocks; for ASS/SSA, the event lines),
so that a broken cue can be reported by its line number and skipped without losing the rest,
and hands each cue to the parser of the format.

Decisions:

* The encoding is taken from a byte order mark (UTF-8, UTF-16, UTF-32), else strict UTF-8
  when the bytes are valid UTF-8, else the best guess of charset-normalizer (cp1251 and
  other legacy code pages). Cue timings are ASCII in all of these, so a wrong guess on a
  very short legacy file can garble the cue text but never the intervals.
* The format is WebVTT when the text starts with the ``WEBVTT`` header, ASS/SSA when it
  starts with ``[Script Info]``, SRT otherwise, whatever the file name says.
* In ASS/SSA every ``Dialogue`` event is speech, signs and songs included (they keep
  narration off, which errs on the safe side); ``Comment`` events and vector drawings
  (override tag ``p1``) are not.
* A cue whose text is empty or only whitespace (after removing markup tags) is not speech
  and is skipped; so are cues of zero length. A cue that ends before it starts is broken
  and is skipped with a warning, like a cue that cannot be parsed.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import charset_normalizer
import pysrt
import pysubs2
import webvtt
from webvtt.errors import MalformedCaptionError, MalformedFileError

from app.errors import InputError, SubtitleError
from app.pipeline.pauses import merge_intervals
from app.pipeline.types import DialogueLine, Interval

logger = logging.getLogger(__name__)

# Longest BOMs first: the UTF-32 LE mark begins with the UTF-16 LE one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

# Line breaks of subtitle files; str.splitlines() would also split on form feeds and
# Unicode separators and so shift the line numbers reported for broken cues.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

# Blocks of a WebVTT file that are not cues and carry no timing.
_VTT_NON_CUE_BLOCKS = ("NOTE", "STYLE", "REGION")

# Broken cues reported one by one; past this, one summary line (a binary file decoded by
# mistake would otherwise log every block).
_MAX_CUE_WARNINGS = 10


class SubtitleFormat(StrEnum):
    """Subtitle formats that can be read."""

    SRT = "srt"
    VTT = "vtt"
    ASS = "ass"
    """Advanced SubStation Alpha, and its predecessor SubStation Alpha (SSA)."""


@dataclass(frozen=True)
class _Block:
    """Lines of text between blank lines; ``line`` is the 1-based number of the first one."""

    line: int
    lines: list[str]


@dataclass(frozen=True)
class _Cue:
    """A parsed cue, times in seconds, with the line number where its block starts."""

    line: int
    start: float
    end: float
    text: str


class _BrokenCue(Exception):
    """A block that should be a cue but cannot be parsed; the message says why."""


def load_speech_intervals(path: Path) -> list[Interval]:
    """Read the times when someone speaks from an SRT, WebVTT or ASS/SSA subtitles file.

    As :func:`load_dialogue`, then :func:`speech_intervals`.

    Returns:
        The cue intervals in seconds, sorted by start, with overlapping or touching cues
        merged into one interval.
    """
    return speech_intervals(load_dialogue(path))


def speech_intervals(lines: Sequence[DialogueLine]) -> list[Interval]:
    """The times of ``lines``, sorted, with overlapping or touching ones merged."""
    return merge_intervals([Interval(line.start, line.end) for line in lines])


def load_dialogue(path: Path) -> list[DialogueLine]:
    """Read the cues of an SRT, WebVTT or ASS/SSA subtitles file with their text.

    Broken cues are skipped, each with a WARNING naming its line; cues with no text and
    cues of zero length are skipped silently. A cue's lines are joined by spaces.

    Args:
        path: The subtitles file, SRT, WebVTT or ASS/SSA, in UTF-8/16/32 (with or without a byte
            order mark) or a legacy code page such as cp1251.

    Returns:
        The cues, sorted by start.

    Raises:
        InputError: The file cannot be read.
        SubtitleError: The file is empty, binary, cannot be decoded, or holds no usable cue.
    """
    text = read_subtitle_text(path)
    fmt = detect_format(text)
    if fmt is SubtitleFormat.SRT and path.suffix.lower() == ".vtt":
        logger.warning("%s has no WEBVTT header; reading it as SRT", path)
    cues = _parse_cues(path, fmt, _LINE_BREAK.split(text))
    lines: list[DialogueLine] = []
    for cue in cues:
        if cue.end < cue.start:
            logger.warning(
                "%s:%d: skipped a cue that ends (%.3f s) before it starts (%.3f s)",
                path,
                cue.line,
                cue.end,
                cue.start,
            )
        elif not cue.text.strip():
            logger.debug("%s:%d: skipped a cue without text", path, cue.line)
        elif cue.end > cue.start:
            lines.append(DialogueLine(cue.start, cue.end, " ".join(cue.text.split())))
    if not lines:
        raise SubtitleError(
            f"subtitles file {path} holds no cue with text and a positive duration; "
            "check that it is an SRT, WebVTT or ASS/SSA file with dialogue"
        )
    logger.info("%s: %d cues of speech (%s)", path, len(lines), fmt.value)
    return sorted(lines, key=lambda line: (line.start, line.end))


def read_subtitle_text(path: Path) -> str:
    """Read a subtitles file and decode it, detecting its encoding.

    Args:
        path: The file to read.

    Returns:
        The decoded text, without a byte order mark.

    Raises:
        InputError: The file cannot be read.
        SubtitleError: The file is empty or binary, or its encoding cannot be detected.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read subtitles file {path}: {exc.strerror or exc}") from exc
    if not data.strip():
        raise SubtitleError(
            f"subtitles file {path} is empty; give a file with SRT, WebVTT or ASS/SSA cues"
        )
    encoding = detect_encoding(data)
    if encoding is None:
        raise SubtitleError(
            f"cannot detect the text encoding of subtitles file {path}; "
            "check that it is a subtitles file and save it as UTF-8"
        )
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise SubtitleError(
            f"subtitles file {path} is not valid {encoding} ({exc.reason} at byte {exc.start}); "
            "save it as UTF-8"
        ) from exc
    if "\x00" in text:
        raise SubtitleError(
            f"subtitles file {path} holds binary data; give an SRT, WebVTT or ASS/SSA text file"
        )
    logger.debug("%s: decoded as %s", path, encoding)
    return text.removeprefix("\ufeff")


def detect_encoding(data: bytes) -> str | None:
    """Guess the text encoding of subtitle bytes.

    Args:
        data: The raw file content.

    Returns:
        A Python codec name: from the byte order mark if there is one, ``"utf-8"`` when the
        bytes are valid UTF-8, else charset-normalizer's best guess; ``None`` when
        charset-normalizer finds no encoding that fits (binary data).
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        # Not UTF-8: a legacy code page (or not text at all), which needs a statistical guess.
        best = charset_normalizer.from_bytes(data).best()
        return None if best is None else best.encoding
    return "utf-8"


def detect_format(text: str) -> SubtitleFormat:
    """Tell the format by the content: WebVTT files start with a ``WEBVTT`` line, ASS and
    SSA files with a ``[Script Info]`` section.

    Args:
        text: The decoded file, without a byte order mark.

    Returns:
        ``SubtitleFormat.VTT`` when the first line is ``WEBVTT``, alone or followed by a
        space or tab; ``SubtitleFormat.ASS`` when the first non-blank line is
        ``[Script Info]`` (any case); ``SubtitleFormat.SRT`` otherwise.
    """
    first_line = _LINE_BREAK.split(text, maxsplit=1)[0]
    if first_line == "WEBVTT" or first_line.startswith(("WEBVTT ", "WEBVTT\t")):
        return SubtitleFormat.VTT
    if text.lstrip().lower().startswith("[script info]"):
        return SubtitleFormat.ASS
    return SubtitleFormat.SRT


def _parse_cues(path: Path, fmt: SubtitleFormat, lines: Sequence[str]) -> list[_Cue]:
    """Parse every cue of the file, skipping and reporting the broken ones."""
    blocks: Iterator[_Block]
    parse_block: Callable[[_Block], list[_Cue]]
    if fmt is SubtitleFormat.ASS:
        parser = _AssEvents(path, lines)
        blocks, parse_block = parser.events(), parser.parse
    else:
        blocks = _iter_blocks(lines)
        parse_block = _parse_vtt_block if fmt is SubtitleFormat.VTT else _parse_srt_block
    cues: list[_Cue] = []
    broken = 0
    for block in blocks:
        try:
            cues.extend(parse_block(block))
        except _BrokenCue as exc:
            broken += 1
            if broken <= _MAX_CUE_WARNINGS:
                logger.warning("%s:%d: skipped a broken cue: %s", path, block.line, exc)
    if broken > _MAX_CUE_WARNINGS:
        logger.warning("%s: skipped %d more broken cues", path, broken - _MAX_CUE_WARNINGS)
    if not cues:
        raise SubtitleError(
            f"subtitles file {path} holds no parseable {fmt.value.upper()} cue "
            f"({broken} broken); check that it is an SRT, WebVTT or ASS/SSA file"
        )
    return cues


def _iter_blocks(lines: Sequence[str]) -> Iterator[_Block]:
    """Split lines into blocks at lines that are empty or only whitespace."""
    start = 0
    block: list[str] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            if not block:
                start = number
            block.append(line)
        elif block:
            yield _Block(start, block)
            block = []
    if block:
        yield _Block(start, block)


def _parse_srt_block(block: _Block) -> list[_Cue]:
    """Parse one SRT block with pysrt."""
    try:
        item = pysrt.SubRipItem.from_lines(block.lines)
    except pysrt.InvalidItem as exc:
        raise _BrokenCue(f"no 'start --> end' timing line in {block.lines[:2]!r}") from exc
    except pysrt.InvalidTimeString as exc:
        raise _BrokenCue(f"unreadable timestamp in {block.lines[:2]!r}") from exc
    # pysrt reads a field that is not a number ("00:00:aa,000") or a missing end time as 0;
    # refuse those rather than invent a time. The timing line is where pysrt took it from.
    timing = block.lines[0] if "-->" in block.lines[0] else block.lines[1]
    start, end, _position = pysrt.SubRipItem.split_timestamps(timing)
    for stamp in (start, end):
        if not all(f.isdigit() for f in pysrt.SubRipTime.RE_TIME_SEP.split(stamp)):
            raise _BrokenCue(f"unreadable timestamp {stamp!r} in {timing!r}")
    return [
        _Cue(block.line, item.start.ordinal / 1000, item.end.ordinal / 1000, item.text_without_tags)
    ]


def _parse_vtt_block(block: _Block) -> list[_Cue]:
    """Parse one WebVTT block with webvtt-py; blocks that are not cues give no cue."""
    first = block.lines[0]
    has_timing = any("-->" in line for line in block.lines)
    if not has_timing:
        if first.startswith(("WEBVTT", *_VTT_NON_CUE_BLOCKS)):
            return []
        raise _BrokenCue(f"text without a 'start --> end' timing line: {first!r}")
    # webvtt-py reads whole files: give the block a header of its own, unless it is the
    # header block (a file whose first cue follows the header without a blank line).
    header = "" if first.startswith("WEBVTT") else "WEBVTT\n\n"
    try:
        captions = webvtt.from_string(header + "\n".join(block.lines)).captions
    except (MalformedCaptionError, MalformedFileError) as exc:
        raise _BrokenCue(f"{exc} in {block.lines[:2]!r}") from exc
    if not captions:
        # webvtt-py skips a cue block whose timings it cannot read.
        raise _BrokenCue(f"unreadable cue timings in {block.lines[:2]!r}")
    return [
        _Cue(
            block.line,
            caption.start_time.in_milliseconds() / 1000,
            caption.end_time.in_milliseconds() / 1000,
            caption.text,
        )
        for caption in captions
    ]


class _AssEvents:
    """The ``Dialogue`` lines of an ASS/SSA file, each parsed by pysubs2 on its own.

    pysubs2 reads whole files and gives up on the first bad timestamp, so each event line
    is handed to it behind the file's own header (script info, styles, the events' Format
    line), which keeps one broken line from losing the others.
    """

    def __init__(self, path: Path, lines: Sequence[str]) -> None:
        sections = [i for i, line in enumerate(lines) if line.strip().lower() == "[events]"]
        if not sections:
            raise SubtitleError(
                f"subtitles file {path} has no [Events] section; it is not a complete ASS/SSA file"
            )
        self._start = sections[0] + 1
        self._lines = lines
        formats = [line for line in lines[self._start :] if line.lower().startswith("format:")]
        self._header = "\n".join([*lines[: self._start], *formats[:1]]) + "\n"
        self._format = (
            "ssa"
            if any(line.strip().lower() == "[v4 styles]" for line in lines[: self._start])
            else "ass"
        )

    def events(self) -> Iterator[_Block]:
        """Each ``Dialogue`` line, with its line number."""
        for number, line in enumerate(self._lines[self._start :], start=self._start + 1):
            if line.lower().startswith("dialogue:"):
                yield _Block(number, [line])

    def parse(self, block: _Block) -> list[_Cue]:
        """Parse one ``Dialogue`` line; a vector drawing gives no cue."""
        try:
            events = pysubs2.SSAFile.from_string(
                self._header + block.lines[0], format_=self._format
            ).events
        except (ValueError, pysubs2.Pysubs2Error) as exc:
            raise _BrokenCue(f"{exc} in {block.lines[0]!r}") from exc
        if len(events) != 1:
            raise _BrokenCue(f"not a dialogue event: {block.lines[0]!r}")
        event = events[0]
        if event.is_drawing:
            return []
        return [_Cue(block.line, event.start / 1000, event.end / 1000, event.plaintext)]
