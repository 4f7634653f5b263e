"""Tests of the streaming JSON, WebVTT and SRT writers of descriptions."""

from __future__ import annotations

import dataclasses
import html
import io
import json

import pysrt
import pytest
import webvtt

from app.pipeline.types import Description
from app.pipeline.writers import OutputFormat, format_timestamp, open_writer, render

DESCRIPTIONS = [
    Description(
        start=1.0,
        end=3.5,
        frame_time=1.2,
        scene_index=0,
        scene_start=0.0,
        scene_end=4.0,
        text="A woman opens a red door.",
        similarity=0.0,
        max_words=6,
        fits=True,
    ),
    Description(
        start=65.25,
        end=70.0,
        frame_time=66.0,
        scene_index=3,
        scene_start=64.0,
        scene_end=71.5,
        text="Дети бегут \n по мосту <быстро> & смеются.",
        similarity=0.125,
        max_words=11,
        fits=False,
    ),
    Description(
        start=3723.004,
        end=3725.0,
        frame_time=3723.5,
        scene_index=10,
        scene_start=3720.0,
        scene_end=3730.0,
        text="The city at night -- lights everywhere.",
        similarity=0.5,
        max_words=4,
        fits=True,
    ),
]


def _one_line(text: str) -> str:
    return " ".join(text.split())


class FlushCountingStream(io.StringIO):
    """A text stream that records what had been written at each flush."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[str] = []

    def flush(self) -> None:
        super().flush()
        self.flushed.append(self.getvalue())


def test_json_is_a_document_holding_every_field() -> None:
    items = json.loads(render(DESCRIPTIONS, OutputFormat.JSON))

    assert items == [dataclasses.asdict(d) for d in DESCRIPTIONS]
    assert [Description(**item) for item in items] == DESCRIPTIONS


def test_json_with_no_description_is_an_empty_array() -> None:
    assert json.loads(render([], OutputFormat.JSON)) == []


def test_json_refuses_nan() -> None:
    bad = dataclasses.replace(DESCRIPTIONS[0], similarity=float("nan"))
    writer = open_writer(OutputFormat.JSON, io.StringIO())

    with pytest.raises(ValueError, match="JSON"):
        writer.write(bad)


def test_srt_round_trips_through_pysrt() -> None:
    items = pysrt.from_string(render(DESCRIPTIONS, OutputFormat.SRT))

    assert [item.index for item in items] == [1, 2, 3]
    assert [item.start.ordinal for item in items] == [1000, 65250, 3723004]
    assert [item.end.ordinal for item in items] == [3500, 70000, 3725000]
    assert [item.text for item in items] == [_one_line(d.text) for d in DESCRIPTIONS]


def test_vtt_round_trips_through_webvtt() -> None:
    text = render(DESCRIPTIONS, OutputFormat.VTT)
    parsed = webvtt.from_string(text, strict=True)

    assert text.startswith("WEBVTT\nKind: descriptions\n\n")
    assert parsed.metadata == ["Kind: descriptions"]
    assert [c.start_time.in_milliseconds() for c in parsed.captions] == [1000, 65250, 3723004]
    assert [c.end_time.in_milliseconds() for c in parsed.captions] == [3500, 70000, 3725000]
    assert [html.unescape(c.raw_text) for c in parsed.captions] == [
        _one_line(d.text) for d in DESCRIPTIONS
    ]


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_each_description_is_flushed_as_it_is_written(fmt: OutputFormat) -> None:
    stream = FlushCountingStream()
    writer = open_writer(fmt, stream)
    after_open = stream.getvalue()

    writer.write(DESCRIPTIONS[0])
    first = stream.flushed[-1]
    writer.write(DESCRIPTIONS[1])
    second = stream.flushed[-1]
    writer.close()

    assert first.startswith(after_open)
    assert len(first) > len(after_open)
    assert "red door" in first
    assert "red door" in second and "по мосту" in second
    assert stream.getvalue() == render(DESCRIPTIONS[:2], fmt)
    assert not stream.closed


def test_write_after_close_raises_and_close_twice_is_harmless() -> None:
    stream = io.StringIO()
    writer = open_writer(OutputFormat.SRT, stream)
    writer.close()
    writer.close()

    with pytest.raises(ValueError, match="closed"):
        writer.write(DESCRIPTIONS[0])
    assert stream.getvalue() == ""


def test_json_stays_unterminated_when_the_run_fails() -> None:
    stream = io.StringIO()

    with pytest.raises(RuntimeError), open_writer(OutputFormat.JSON, stream) as writer:
        writer.write(DESCRIPTIONS[0])
        raise RuntimeError("captioning failed")

    assert "red door" in stream.getvalue()
    with pytest.raises(json.JSONDecodeError):
        json.loads(stream.getvalue())
    with pytest.raises(ValueError, match="closed"):
        writer.write(DESCRIPTIONS[1])


@pytest.mark.parametrize(
    ("seconds", "separator", "expected"),
    [
        (0.0, ".", "00:00:00.000"),
        (1.0004, ",", "00:00:01,000"),
        (59.9996, ".", "00:01:00.000"),
        (3723.004, ",", "01:02:03,004"),
        (360000.0, ".", "100:00:00.000"),
    ],
)
def test_format_timestamp(seconds: float, separator: str, expected: str) -> None:
    assert format_timestamp(seconds, separator) == expected


@pytest.mark.parametrize("seconds", [-0.5, float("nan"), float("inf")])
def test_format_timestamp_refuses_bad_times(seconds: float) -> None:
    with pytest.raises(ValueError, match="times must be >= 0"):
        format_timestamp(seconds, ".")


def test_media_types() -> None:
    assert OutputFormat("json").media_type == "application/json"
    assert OutputFormat.VTT.media_type == "text/vtt"
    assert OutputFormat.SRT.media_type == "application/x-subrip"
