"""Narration, the step after ``describe``: each description is spoken by a text-to-speech
engine and its spoken length measured, and a description that overruns its window is made
to fit.

The word budget of ``describe`` is an estimate; the measured audio is the truth. A
description whose speech is longer than its dialogue-free window is first spoken faster, up
to ``max_speedup`` times the set rate; if that is not enough, it is shortened at a word
boundary (keeping as many words as the measured speed allows) and spoken again, down to
``min_words``. If even that overruns, the shortest version is kept, marked ``fits=False``
with its ``spoken_duration``: a late description is better than none, and the flag lets a
reviewer find it. The CLI and the service both run this step on ``describe``'s output.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from app.pipeline.cleanup import trim_to_words
from app.pipeline.tts import Samples, TtsEngine, TtsOptions
from app.pipeline.types import Description

logger = logging.getLogger(__name__)

AUDIBLE = 1e-3
"""Samples below this magnitude (-60 dBFS) at either end are the engine's silence, not speech."""


@dataclass(frozen=True)
class NarrationOptions:
    """How descriptions are spoken and fitted to their windows.

    Attributes:
        tts: The engine, voice and speaking rate.
        max_speedup: How much faster than ``tts.rate`` an overrunning description may be
            spoken (1.25: up to 25 % faster) before it is shortened.
        min_words: Shortening stops at this many words.
        shorten: Whether an overrunning description may be shortened at all; False for a
            reviewer's text, which is spoken whole (faster, then flagged).
    """

    tts: TtsOptions = field(default_factory=TtsOptions)
    max_speedup: float = 1.25
    min_words: int = 3
    shorten: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.max_speedup <= 2:
            raise ValueError(f"max_speedup must be between 1 and 2, got {self.max_speedup}")
        if self.min_words < 1:
            raise ValueError(f"min_words must be at least 1, got {self.min_words}")


@dataclass(frozen=True)
class Clip:
    """A description's speech, placed on the film's timeline."""

    start: float
    """Seconds from the start of the film at which the speech begins."""
    samples: Samples
    """Mono float32 speech, without leading or trailing silence."""
    sample_rate: int

    @property
    def duration(self) -> float:
        return self.samples.size / self.sample_rate

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True)
class Attempt:
    """One synthesis of a description: what was said, how fast, and how long it took."""

    text: str
    speed: float
    """Relative to the set rate (1.0 is the set rate)."""
    duration: float


@dataclass(frozen=True)
class Narration:
    """A description as spoken: its text (maybe shortened), fit and spoken duration filled
    in, its speech, and every synthesis tried, in order."""

    description: Description
    clip: Clip
    attempts: tuple[Attempt, ...]


class Narrator:
    """Speaks descriptions with one engine and fits them to their windows.

    Args:
        engine: The text-to-speech engine (``load_engine``).
        options: Speed-up cap and shortest text.
    """

    def __init__(self, engine: TtsEngine, options: NarrationOptions | None = None) -> None:
        self.engine = engine
        self.options = options or NarrationOptions()

    def narrate(self, description: Description) -> Narration:
        """Speak one description, faster or shorter when it overruns its window.

        Raises:
            VoiceError: The engine failed.
        """
        window = description.end - description.start
        attempts: list[Attempt] = []

        def say(text: str, speed: float) -> Samples:
            samples = _trim(self.engine.synthesize(text, speed))
            attempts.append(Attempt(text, speed, samples.size / self.engine.sample_rate))
            return samples

        text, speed = description.text, 1.0
        samples = say(text, speed)
        cap = self.options.max_speedup
        # Speech time does not scale exactly with the asked speed (pauses do not shrink as
        # much), so ask for a little more than the ratio, and for the cap if that fell short.
        for wanted in (attempts[-1].duration / window * 1.03, cap):
            if attempts[-1].duration <= window or speed >= cap:
                break
            speed = min(cap, max(wanted, speed))
            samples = say(text, speed)
        words = len(description.text.split())
        while (
            self.options.shorten
            and attempts[-1].duration > window
            and words > self.options.min_words
        ):
            by_rate = math.floor(words * window / attempts[-1].duration)
            words = max(self.options.min_words, min(words - 1, by_rate))
            shorter, _ = trim_to_words(description.text, words)
            if not shorter:
                break
            text = shorter
            samples = say(text, speed)
        spoken = attempts[-1].duration
        fits = spoken <= window
        if not fits:
            logger.warning(
                "scene %d: %r takes %.2f s to say, %.2f s too long for its window even at "
                "%.0f %% speed; kept",
                description.scene_index, text, spoken, spoken - window, speed * 100,
            )  # fmt: skip
        narrated = replace(description, text=text, fits=fits, spoken_duration=round(spoken, 3))
        clip = Clip(description.start, samples, self.engine.sample_rate)
        return Narration(narrated, clip, tuple(attempts))


def narrate(descriptions: Iterable[Description], narrator: Narrator) -> Iterator[Narration]:
    """Speak each description as it comes (``describe``'s output stays a stream).

    Raises:
        VoiceError: The engine failed.
    """
    for description in descriptions:
        yield narrator.narrate(description)


def _trim(samples: Samples) -> Samples:
    """Cut the engine's leading and trailing silence: the spoken duration is the speech."""
    audible = np.flatnonzero(np.abs(samples) >= AUDIBLE)
    if not audible.size:
        return samples[:0]
    return samples[audible[0] : audible[-1] + 1]
