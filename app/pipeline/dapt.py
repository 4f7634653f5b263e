"""A W3C DAPT script (Dubbing and Audio description Profiles of TTML2) of the descriptions.

DAPT is the W3C's exchange format for audio description scripts, a profile of TTML2. The
features used here:

* ``tt`` with the DAPT content profile (``ttp:contentProfiles``), ``xml:lang`` (the
  language descriptions are written in), ``daptm:scriptRepresents="visual.nonText"`` (what
  is described: the picture) and ``daptm:scriptType``: ``preRecording`` for text only,
  ``asRecorded`` once audio was rendered;
* one Script Event per description: a ``div`` with ``xml:id``, ``begin`` and ``end`` (the
  dialogue-free window, offset times in seconds on the film's timeline) and
  ``daptm:represents="visual.nonText"``, holding one Text ``p``;
* when audio was rendered, the text sits in a ``span`` timed from the start of its window to
  the end of the speech, holding an ``audio`` element that refers to the description-only
  track (``src``) with ``clipBegin`` and ``clipEnd``: the part of the track that speaks it.

Not used: audio mixing instructions (``tta:gain`` animations; the mixed film carries the
ducking already), character metadata and embedded audio. ``writers.DaptWriter`` writes
each description as soon as it comes, with the pieces below; the document is complete once
closed.
"""

from __future__ import annotations

from lxml import etree

from app.pipeline.types import Description

TT = "http://www.w3.org/ns/ttml"
TTP = "http://www.w3.org/ns/ttml#parameter"
DAPTM = "http://www.w3.org/ns/ttml/profile/dapt#metadata"
XML = "http://www.w3.org/XML/1998/namespace"
CONTENT_PROFILE = "http://www.w3.org/ns/ttml/profile/dapt1.0/content"
NAMESPACES = {None: TT, "ttp": TTP, "daptm": DAPTM}
REPRESENTS = "visual.nonText"


def offset_time(seconds: float) -> str:
    """A TTML offset time in seconds, to the millisecond: ``"12.345s"``.

    Raises:
        ValueError: The time is negative or not finite.
    """
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"cannot write a time of {seconds} s; times must be >= 0")
    return f"{seconds:.3f}s"


def header(language: str, audio: str | None) -> str:
    """The start of a script, up to the opened ``body``; ``audio`` as for :func:`div`."""
    root = etree.Element(f"{{{TT}}}tt", nsmap=NAMESPACES)
    root.set(f"{{{TTP}}}contentProfiles", CONTENT_PROFILE)
    root.set(f"{{{XML}}}lang", language)
    root.set(f"{{{DAPTM}}}scriptRepresents", REPRESENTS)
    root.set(f"{{{DAPTM}}}scriptType", "preRecording" if audio is None else "asRecorded")
    etree.SubElement(root, f"{{{TT}}}body").text = "\n"
    document = etree.tostring(root, encoding="unicode")
    # Left open: the divs follow as they come, and FOOTER closes body and tt.
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + document.removesuffix(FOOTER.strip())


def div(description: Description, index: int, audio: str | None) -> str:
    """One description as a Script Event.

    Args:
        description: The description.
        index: Its position in the script, from 0 (its ``xml:id`` is ``d<index + 1>``).
        audio: The description-only track (a path or URL, as the reader of the script will
            find it), referred to when the description was spoken; None: no audio.
    """
    element = etree.Element(f"{{{TT}}}div", nsmap=NAMESPACES)
    element.set(f"{{{XML}}}id", f"d{index + 1}")
    element.set("begin", offset_time(description.start))
    element.set("end", offset_time(description.end))
    element.set(f"{{{DAPTM}}}represents", REPRESENTS)
    p = etree.SubElement(element, f"{{{TT}}}p")
    text = " ".join(description.text.split())
    if audio is None or description.spoken_duration is None:
        p.text = text
    else:
        spoken = description.spoken_duration
        span = etree.SubElement(p, f"{{{TT}}}span", begin="0s", end=offset_time(spoken))
        clip = etree.SubElement(span, f"{{{TT}}}audio", src=audio)
        clip.set("clipBegin", offset_time(description.start))
        clip.set("clipEnd", offset_time(description.start + spoken))
        clip.tail = text
    # Each div is serialised alone, so it repeats the namespace declarations (valid XML).
    return etree.tostring(element, encoding="unicode") + "\n"


FOOTER = "</body></tt>\n"
"""The end of a script."""
