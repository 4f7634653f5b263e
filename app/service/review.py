"""The rules a reviewer's change to a description must follow, and what it warns about.

A description keeps to its scene's window and stays off known dialogue (the job's subtitles)
and off the job's other descriptions (two voices at once);
a text longer than its window holds at the narration speed is accepted with a warning, as the
reviewer may mean to speed the voice up or to shorten it later.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from app.pipeline.types import Description, Interval
from app.service.jobs import InvalidEdit

#: Seconds a description inserted without an end lasts at least.
MIN_INSERTED_SECONDS = 1.0


@dataclass(frozen=True)
class Change:
    """What a reviewer changes in a description (None: kept)."""

    text: str | None = None
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class SceneSpan:
    """A scene the service knows of: its index and bounds, seconds."""

    index: int
    start: float
    end: float


def known_scenes(described: Sequence[Description], duration: float | None) -> list[SceneSpan]:
    """The scenes a job's descriptions name, in time order, with the stretches between them
    (scenes that got no description) as spans of their own.

    A stretch between two described scenes may hold several undescribed scenes; their bounds
    are not kept, so it counts as one, indexed after the scene before it.
    """
    named = sorted(
        {(d.scene_index, d.scene_start, d.scene_end) for d in described}, key=lambda s: s[1]
    )
    spans: list[SceneSpan] = []
    cursor, index = 0.0, 0
    for scene_index, start, end in named:
        if start > cursor:
            spans.append(SceneSpan(index, cursor, start))
        spans.append(SceneSpan(scene_index, start, end))
        cursor, index = max(cursor, end), scene_index + 1
    if duration is not None and duration > cursor:
        spans.append(SceneSpan(index, cursor, duration))
    return spans


def scene_at(spans: Sequence[SceneSpan], time: float) -> SceneSpan:
    """The span holding ``time``. Raises ``InvalidEdit`` (field ``start``) when none does."""
    for span in spans:
        if span.start <= time < span.end:
            return span
    raise InvalidEdit("start", f"start: {time:.3f} s is not inside the video")


def word_count(text: str) -> int:
    return len(text.split())


def max_words(start: float, end: float, words_per_second: float) -> int:
    """Words that fit ``[start, end]`` at ``words_per_second`` (as the pipeline counts)."""
    return math.floor((end - start) * words_per_second + 1e-9)


def apply(
    current: Description,
    change: Change,
    dialogue: Sequence[Interval],
    words_per_second: float,
    others: Sequence[Description] = (),
) -> tuple[Description, list[str]]:
    """The description with ``change`` applied, and warnings about it.

    Args:
        others: The job's other descriptions, whose windows this one may not overlap.

    Raises:
        InvalidEdit: The text is empty, the window is reversed, leaves the scene, overlaps
            dialogue or another description; ``field`` names the offending field.
    """
    text = current.text if change.text is None else change.text.strip()
    start = current.start if change.start is None else change.start
    end = current.end if change.end is None else change.end
    if not text:
        raise InvalidEdit("text", "text: a description needs some words")
    if end <= start:
        field = "end" if change.end is not None else "start"
        raise InvalidEdit(field, f"{field}: the window must end after it starts ({start} ≥ {end})")
    if start < current.scene_start:
        raise InvalidEdit(
            "start",
            f"start: {start:.3f} s is before its scene, which starts at "
            f"{current.scene_start:.3f} s",
        )
    if end > current.scene_end:
        raise InvalidEdit(
            "end",
            f"end: {end:.3f} s is after its scene, which ends at {current.scene_end:.3f} s",
        )
    busy = [(line, "dialogue") for line in dialogue]
    busy += [(Interval(o.start, o.end), "another description") for o in others]
    for span, what in busy:
        if span.start < end and start < span.end:
            field = "start" if change.start is not None or change.end is None else "end"
            raise InvalidEdit(
                field,
                f"{field}: the window {start:.3f}-{end:.3f} s overlaps {what} at "
                f"{span.start:.3f}-{span.end:.3f} s",
            )
    budget = max_words(start, end, words_per_second)
    words = word_count(text)
    warnings = []
    if words > budget:
        warnings.append(
            f"text: {words} words; the window holds {budget} at {words_per_second:g} words/s"
        )
    spoken = current.spoken_duration if (text, start, end) == _key(current) else None
    revised = dataclasses.replace(
        current,
        text=text,
        start=start,
        end=end,
        max_words=budget,
        fits=words <= budget,
        spoken_duration=spoken,
    )
    return revised, warnings


def _key(description: Description) -> tuple[str, float, float]:
    return description.text, description.start, description.end


def new_description(
    scene: SceneSpan, start: float, end: float | None, text: str, words_per_second: float
) -> Description:
    """A reviewer's description in ``scene`` (not yet checked: pass it to ``apply``); without
    an end it lasts as long as its words take, at least ``MIN_INSERTED_SECONDS``, within the
    scene."""
    if end is None:
        spoken = max(MIN_INSERTED_SECONDS, word_count(text) / words_per_second)
        end = min(scene.end, start + spoken)
    return Description(
        start=start,
        end=end,
        frame_time=start,
        scene_index=scene.index,
        scene_start=scene.start,
        scene_end=scene.end,
        text=text,
        similarity=0.0,
        max_words=0,
        fits=True,
    )
