"""The W3C DAPT script writer: parsed back with lxml."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from lxml import etree

from app.pipeline.dapt import CONTENT_PROFILE, DAPTM, TT, TTP, XML
from app.pipeline.writers import OutputFormat, open_writer, render
from tests.test_writers import DESCRIPTIONS

NS = {"tt": TT, "daptm": DAPTM}


def seconds(value: str) -> float:
    assert value.endswith("s")
    return float(value[:-1])


def parse(text: str) -> etree._Element:
    return etree.fromstring(text.encode())


def test_dapt_parses_and_declares_the_profile() -> None:
    root = parse(render(DESCRIPTIONS, OutputFormat.DAPT, language="ru"))
    assert root.tag == f"{{{TT}}}tt"
    assert root.nsmap[None] == TT and root.nsmap["daptm"] == DAPTM and root.nsmap["ttp"] == TTP
    assert root.get(f"{{{TTP}}}contentProfiles") == CONTENT_PROFILE
    assert root.get(f"{{{XML}}}lang") == "ru"
    assert root.get(f"{{{DAPTM}}}scriptRepresents") == "visual.nonText"
    assert root.get(f"{{{DAPTM}}}scriptType") == "preRecording"
    assert not root.xpath("//tt:audio", namespaces=NS)


def test_dapt_round_trips_texts_and_times() -> None:
    root = parse(render(DESCRIPTIONS, OutputFormat.DAPT))
    divs = root.xpath("/tt:tt/tt:body/tt:div", namespaces=NS)
    assert len(divs) == len(DESCRIPTIONS)
    ids = [div.get(f"{{{XML}}}id") for div in divs]
    assert len(set(ids)) == len(ids)
    for div, d in zip(divs, DESCRIPTIONS, strict=True):
        assert seconds(div.get("begin")) == pytest.approx(d.start, abs=5e-4)
        assert seconds(div.get("end")) == pytest.approx(d.end, abs=5e-4)
        assert div.get(f"{{{DAPTM}}}represents") == "visual.nonText"
        (p,) = div.xpath("tt:p", namespaces=NS)
        assert "".join(p.itertext()) == " ".join(d.text.split())  # <, > and & survive


def test_dapt_refers_to_the_rendered_audio() -> None:
    spoken = [replace(d, spoken_duration=1.25) for d in DESCRIPTIONS]
    buffer = io.StringIO()
    with open_writer(OutputFormat.DAPT, buffer, language="en", audio="film-ad.wav") as writer:
        for d in spoken:
            writer.write(d)
    root = parse(buffer.getvalue())
    assert root.get(f"{{{DAPTM}}}scriptType") == "asRecorded"
    for div, d in zip(root.xpath("//tt:div", namespaces=NS), spoken, strict=True):
        (span,) = div.xpath("tt:p/tt:span", namespaces=NS)
        assert (seconds(span.get("begin")), seconds(span.get("end"))) == (0.0, 1.25)
        (audio,) = span.xpath("tt:audio", namespaces=NS)
        assert audio.get("src") == "film-ad.wav"
        assert seconds(audio.get("clipBegin")) == pytest.approx(d.start, abs=5e-4)
        assert seconds(audio.get("clipEnd")) == pytest.approx(d.start + 1.25, abs=5e-4)
        assert "".join(span.itertext()) == " ".join(d.text.split())
