"""Plain data types shared by the pipeline steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from PIL import Image


@dataclass(frozen=True, order=True)
class Interval:
    """A time span in seconds, ``start <= end``."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Scene:
    """One shot of the video, ``[start, end)`` in seconds; ``index`` counts from 0."""

    index: int
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class SceneFrame:
    """The frame chosen to represent a scene, with its exact presentation time."""

    scene: Scene
    time: float
    image: Image.Image = field(repr=False)


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
        novelty: Similarity to the closest recent description (0 when first); lower means
            more novel.
        max_words: Words that fit the window at the configured speaking rate.
        fits: Whether the caption fitted the budget without being shortened.
    """

    start: float
    end: float
    frame_time: float
    scene_index: int
    scene_start: float
    scene_end: float
    text: str
    novelty: float
    max_words: int
    fits: bool


class Stage(StrEnum):
    """Pipeline stages, as reported in progress updates."""

    DOWNLOADING = "downloading"
    SCANNING = "scanning"
    CAPTIONING = "captioning"
    DONE = "done"


@dataclass(frozen=True)
class Progress:
    """A progress update: stage, seconds of video scanned, and what became of the scenes."""

    stage: Stage
    scanned_seconds: float = 0.0
    duration: float | None = None
    scenes_found: int = 0
    scenes_without_pause: int = 0
    """Scenes without a dialogue-free window long enough: never captioned."""
    scenes_similar: int = 0
    """Scenes whose frame looks like the last captioned one: not captioned."""
    scenes_captioned: int = 0
    """Frames given to the captioner."""
    captions_dropped: int = 0
    """Captions not used: empty, or too close to a recent description."""

    @property
    def fraction(self) -> float:
        """Share of the video scanned, 0..1 (0 when the duration is unknown)."""
        if not self.duration:
            return 0.0
        return min(1.0, self.scanned_seconds / self.duration)
