"""Tests of reading speech intervals from SRT, WebVTT and ASS/SSA files in several encodings."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest

from app.errors import InputError, SubtitleError
from app.pipeline.subtitles import (
    SubtitleFormat,
    detect_encoding,
    detect_format,
    load_speech_intervals,
    read_subtitle_text,
)
from app.pipeline.types import Interval

LOGGER = "app.pipeline.subtitles"

RUSSIAN_SRT = """\
1
00:00:01,000 --> 00:00:02,500
Привет! Как ты сюда попал?

2
00:00:04,000 --> 00:00:06,250
<i>Дверь была открыта, я просто вошёл.</i>

3
00:00:08,000 --> 00:00:09,000
Мы не знаем, что она сказала.

4
00:00:10,500 --> 00:00:12,000
Где Андрей? Он обещал прийти вечером.

5
00:01:00,000 --> 00:01:03,000
Хорошо, спасибо. Увидимся завтра утром.
"""

RUSSIAN_INTERVALS = [
    Interval(1.0, 2.5),
    Interval(4.0, 6.25),
    Interval(8.0, 9.0),
    Interval(10.5, 12.0),
    Interval(60.0, 63.0),
]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("encoding", "newline"),
    [
        ("utf-8", "\n"),
        ("utf-8-sig", "\r\n"),
        ("utf-16", "\r\n"),  # Python writes a BOM, little-endian here
        ("utf-16-be", "\n"),  # no BOM from this codec: written by hand below
        ("cp1251", "\r\n"),
    ],
)
def test_srt_in_every_encoding_gives_the_same_intervals(
    tmp_path: Path, encoding: str, newline: str
) -> None:
    data = RUSSIAN_SRT.replace("\n", newline).encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    path = _write(tmp_path, "film.srt", data)

    assert load_speech_intervals(path) == RUSSIAN_INTERVALS
    assert "Дверь была открыта" in read_subtitle_text(path)


def test_cp1251_is_detected_and_decoded(tmp_path: Path) -> None:
    data = RUSSIAN_SRT.encode("cp1251")

    assert detect_encoding(data) == "cp1251"
    text = read_subtitle_text(_write(tmp_path, "film.srt", data))
    assert text == RUSSIAN_SRT


def test_bom_decides_the_encoding() -> None:
    assert detect_encoding("x".encode("utf-8-sig")) == "utf-8-sig"
    assert detect_encoding("x".encode("utf-16")) == "utf-16"
    assert detect_encoding(b"\xfe\xff" + "x".encode("utf-16-be")) == "utf-16"
    assert detect_encoding("x".encode("utf-32")) == "utf-32"
    assert detect_encoding(b"plain ascii") == "utf-8"


def test_webvtt_with_header_settings_and_note(tmp_path: Path) -> None:
    vtt = """\
WEBVTT - a test file
Kind: captions

NOTE This block is a comment
with two lines; it has no timing.

STYLE
::cue { color: yellow }

intro
00:01.000 --> 00:02.000 align:start line:0 position:10%
<v Anna>Hello there</v>

00:00:03.500 --> 00:00:04.000
Second &amp; last

01:00:00.000 --> 01:00:01.250 size:50%
Much later
"""
    path = _write(tmp_path, "film.vtt", vtt.encode("utf-8"))

    assert load_speech_intervals(path) == [
        Interval(1.0, 2.0),
        Interval(3.5, 4.0),
        Interval(3600.0, 3601.25),
    ]


def test_format_is_taken_from_content_not_extension(tmp_path: Path) -> None:
    vtt = "WEBVTT\n\n00:05.000 --> 00:06.000\nHi\n"
    path = _write(tmp_path, "named-wrong.srt", vtt.encode("utf-8"))

    assert detect_format(vtt) is SubtitleFormat.VTT
    assert detect_format(RUSSIAN_SRT) is SubtitleFormat.SRT
    assert detect_format("WEBVTTX\n") is SubtitleFormat.SRT
    assert load_speech_intervals(path) == [Interval(5.0, 6.0)]


def test_overlapping_and_touching_cues_are_merged_and_sorted(tmp_path: Path) -> None:
    srt = """\
1
00:00:10,000 --> 00:00:12,000
Later cue first in the file

2
00:00:01,000 --> 00:00:03,000
One

3
00:00:02,000 --> 00:00:04,000
Overlaps one

4
00:00:04,000 --> 00:00:05,000
Touches the previous

5
00:00:11,000 --> 00:00:11,500
Inside the later cue

6
00:00:20,000 --> 00:00:20,000
Zero length

7
00:00:30,000 --> 00:00:31,000
<i> </i>
"""
    path = _write(tmp_path, "film.srt", srt.encode("utf-8"))

    assert load_speech_intervals(path) == [Interval(1.0, 5.0), Interval(10.0, 12.0)]


def test_broken_cues_are_skipped_with_a_warning_naming_the_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    srt = """\
1
00:00:01,000 --> 00:00:02,000
Good

2
00:00:03,000 -> 00:00:04,000
Arrow is broken

3
00:00:05,000 --> 00:00:06,000
Good too

4
00:00:aa,000 --> 00:00:08,000
Bad timestamp

5
00:00:09,000 --> 00:00:10,000
Last good
"""
    path = _write(tmp_path, "film.srt", srt.encode("utf-8"))

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        intervals = load_speech_intervals(path)

    assert intervals == [Interval(1.0, 2.0), Interval(5.0, 6.0), Interval(9.0, 10.0)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert f"{path}:5:" in warnings[0]
    assert f"{path}:13:" in warnings[1]
    assert "00:00:aa,000" in warnings[1]


def test_broken_webvtt_cues_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vtt = """\
WEBVTT

00:01.000 --> 00:02.000
Good

00:03.000 --> 00:0x.000
Bad end time

Text that lost its timing line

00:05.000 --> 00:04.000
Ends before it starts

00:07.000 --> 00:08.000
Good too
"""
    path = _write(tmp_path, "film.vtt", vtt.encode("utf-8"))

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        intervals = load_speech_intervals(path)

    assert intervals == [Interval(1.0, 2.0), Interval(7.0, 8.0)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w.split(": ", 1)[0] for w in warnings] == [f"{path}:{n}" for n in (6, 9, 11)]


def test_file_without_any_valid_cue_raises(tmp_path: Path) -> None:
    path = _write(tmp_path, "notes.srt", b"just some text\n\nand more text\n")

    with pytest.raises(SubtitleError, match=r"notes\.srt holds no parseable SRT cue"):
        load_speech_intervals(path)


def test_file_with_only_empty_cues_raises(tmp_path: Path) -> None:
    srt = "1\n00:00:01,000 --> 00:00:02,000\n\n2\n00:00:03,000 --> 00:00:04,000\n<i></i>\n"
    path = _write(tmp_path, "empty-cues.srt", srt.encode("utf-8"))

    with pytest.raises(SubtitleError, match="holds no cue with text"):
        load_speech_intervals(path)


@pytest.mark.parametrize("data", [b"", b"  \r\n\n"])
def test_empty_file_raises(tmp_path: Path, data: bytes) -> None:
    path = _write(tmp_path, "empty.srt", data)

    with pytest.raises(SubtitleError, match=r"empty\.srt is empty"):
        load_speech_intervals(path)


def test_binary_file_raises(tmp_path: Path) -> None:
    rng = random.Random(7)
    data = b"\x89PNG\r\n\x1a\n" + bytes(rng.getrandbits(8) for _ in range(4096))
    path = _write(tmp_path, "picture.srt", data)

    with pytest.raises(SubtitleError, match=r"picture\.srt"):
        load_speech_intervals(path)


def test_text_with_nul_bytes_raises(tmp_path: Path) -> None:
    path = _write(tmp_path, "nul.srt", b"1\n00:00:01,000 --> 00:00:02,000\nhi\x00there\n")

    with pytest.raises(SubtitleError, match="binary data"):
        load_speech_intervals(path)


def test_missing_file_raises_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read subtitles file"):
        load_speech_intervals(tmp_path / "absent.srt")


def test_many_broken_blocks_log_a_bounded_number_of_warnings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = "".join(f"{n}\nnot a timing line\n\n" for n in range(50))
    srt = broken + "99\n00:00:01,000 --> 00:00:02,000\nFinally\n"
    path = _write(tmp_path, "film.srt", srt.encode("utf-8"))

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert load_speech_intervals(path) == [Interval(1.0, 2.0)]

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 11
    assert "skipped 40 more broken cues" in warnings[-1]


ASS = """\
[Script Info]
Title: Test
ScriptType: v4.00+

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, \
Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, \
Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,\
2,2,2,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:01.00,0:00:03.50,Default,Anna,0,0,0,,{\\i1}Где ты был?{\\i0}
Comment: 0,0:00:04.00,0:00:05.00,Default,,0,0,0,,a note for the translator, not spoken
Dialogue: 0,0:00:0x.00,0:00:07.00,Default,,0,0,0,,broken start time
Dialogue: 0,0:00:08.00,0:00:09.00,Default,,0,0,0,,{\\p1}m 0 0 l 100 0 100 100{\\p0}
Dialogue: 0,0:00:10.00,0:00:12.00,Default,Ivan,0,0,0,,На вокзале.\\NПоезд опоздал.
Dialogue: 1,0:00:11.50,0:00:13.25,Default,Anna,0,0,0,,Опять?
"""

SSA = """\
[Script Info]
ScriptType: v4.00

[V4 Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, TertiaryColour, BackColour, \
Bold, Italic, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, AlphaLevel, \
Encoding
Style: Default,Arial,20,16777215,255,0,0,0,0,1,2,2,2,10,10,10,0,1

[Events]
Format: Marked, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: Marked=0,0:00:02.00,0:00:04.00,Default,,0000,0000,0000,,Hello there
"""


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1251"])
def test_ass_dialogue_events_are_speech(
    tmp_path: Path, encoding: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path, "film.ass", ASS.encode(encoding))
    assert detect_format(ASS) is SubtitleFormat.ASS
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        intervals = load_speech_intervals(path)
    # The comment and the vector drawing are not speech; overlapping lines merge.
    assert intervals == [Interval(1.0, 3.5), Interval(10.0, 13.25)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"{path}:13:" in warnings[0] and "0:00:0x.00" in warnings[0]


def test_ssa_is_read_too(tmp_path: Path) -> None:
    path = _write(tmp_path, "old.ssa", SSA.encode("utf-8"))
    assert load_speech_intervals(path) == [Interval(2.0, 4.0)]


def test_ass_without_events_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "styles.ass", ASS.split("[Events]")[0].encode("utf-8"))
    with pytest.raises(SubtitleError, match=r"no \[Events\] section"):
        load_speech_intervals(path)
