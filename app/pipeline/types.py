"""Plain data types shared by the pipeline steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Protocol


@dataclass(frozen=True, order=True)
class Interval:
    """A time span in seconds, ``start <= end``."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class DialogueLine:
    """One subtitle cue: what is said from ``start`` to ``end``, seconds, on one line."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Scene:
    """One shot of the video, ``[start, end)`` in seconds; ``index`` counts from 0."""

    index: int
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Description:
    """A description ready to be narrated.

    Attributes:
        start: When narration may begin (start of the dialogue-free window), seconds.
        end: When the dialogue-free window ends (or the scene ends), seconds.
        frame_time: Presentation time of the captioned frame, seconds.
        scene_index: Index of the described scene.
        scene_start: Start of the described scene, seconds.
        scene_end: End of the described scene, seconds.
        text: The description, cleaned up for narration and trimmed to ``max_words``.
        similarity: Similarity to the closest recent description, 0 to 1 (0 when first):
            higher means more alike. Called ``novelty`` in earlier versions; the callback body
            carries that name too (deprecated).
        max_words: Words that fit the window at the configured speaking rate.
        fits: Whether the caption fitted the budget without being shortened; once narrated,
            whether its spoken audio fits the window.
        spoken_duration: Seconds its synthesized speech lasts; None when no audio was rendered.
    """

    start: float
    end: float
    frame_time: float
    scene_index: int
    scene_start: float
    scene_end: float
    text: str
    similarity: float
    max_words: int
    fits: bool
    spoken_duration: float | None = None


class Stage(StrEnum):
    """Pipeline stages, as reported in progress updates."""

    DOWNLOADING = "downloading"
    SCANNING = "scanning"
    CAPTIONING = "captioning"
    DONE = "done"
    RENDERING = "rendering"
    """The service renders a job's spoken descriptions after them (``"audio": true``)."""


@dataclass(frozen=True)
class Progress:
    """How far a video got: the one progress record, from the pipeline to the API.

    The service stores it whole and the API's progress schema is generated from its fields
    and their docstrings, so a new counter is a new field here and nothing else.
    """

    # Read by pydantic when it builds the API schema from this class (a plain dict: the
    # pipeline does not import pydantic).
    __pydantic_config__: ClassVar[dict[str, object]] = {"use_attribute_docstrings": True}

    stage: Stage | None = None
    """downloading, scanning, captioning, done, or rendering (the service's spoken track,
    after done); None before the job started."""
    scanned_seconds: float = 0.0
    """Seconds of video scanned."""
    duration: float | None = None
    """Length of the video, seconds, when known."""
    scenes_found: int = 0
    """Scenes found so far."""
    scenes_without_pause: int = 0
    """Scenes without a dialogue-free window long enough: never captioned."""
    scenes_similar: int = 0
    """Scenes whose frame looks like the last captioned one: not captioned."""
    scenes_captioned: int = 0
    """Frames given to the captioner."""
    captions_dropped: int = 0
    """Captions not used: empty, or too close to a recent description."""
    fraction: float = field(init=False, default=0.0)
    """Share of the video scanned, 0 to 1: 1 once done, 0 while the duration is unknown."""

    def __post_init__(self) -> None:
        if self.stage is Stage.DONE:
            share = 1.0
        elif not self.duration:
            share = 0.0
        else:
            share = min(1.0, self.scanned_seconds / self.duration)
        object.__setattr__(self, "fraction", share)


class StopSignal(Protocol):
    """Asked at safe points whether to stop (a ``threading.Event`` is one)."""

    def is_set(self) -> bool:
        """True once the work should stop."""
        ...
