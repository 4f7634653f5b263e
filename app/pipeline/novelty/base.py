"""The novelty scorer contract, what every scorer registers, and the filter that uses one.

A :class:`NoveltyScorer` says how similar two captions are (0 unrelated, 1 same content);
:class:`NoveltyFilter` keeps the last accepted captions and calls a new one a repeat when its
similarity to any of them reaches the threshold.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

_WORD = re.compile(r"[^\W_]+")


def tokenize(text: str) -> list[str]:
    """Split a caption into lowercase words (runs of letters and digits, in any script).

    Args:
        text: A caption.

    Returns:
        Its words in order; punctuation is dropped.
    """
    return _WORD.findall(text.lower())


def obvious_similarity(previous: str, current: str) -> float | None:
    """The similarity no scorer needs to compute: 0.0 when either text has no word, 1.0 for
    the same words in the same order (case and punctuation aside); None otherwise."""
    previous_words = tokenize(previous)
    current_words = tokenize(current)
    if not previous_words or not current_words:
        return 0.0
    if previous_words == current_words:
        return 1.0
    return None


@runtime_checkable
class NoveltyScorer(Protocol):
    """Anything that scores how similar two captions are. Must be safe to call from several
    threads (jobs share one scorer)."""

    def similarity(self, previous: str, current: str) -> float:
        """Score how much of ``current`` ``previous`` already says, from 0.0 to 1.0."""
        ...


@dataclass(frozen=True)
class ScorerSpec:
    """A novelty scorer settings can pick by name, with the defaults measured for it.

    Each scorer module defines one; the registry in :mod:`app.pipeline.novelty` names it.
    """

    #: Builds the scorer with its default options (it may load its model lazily).
    factory: Callable[[], NoveltyScorer]
    #: Similarity at or above which a caption is a repeat.
    threshold: float
    #: How many accepted captions a new one is compared with.
    history: int
    #: One line for ``--help`` texts and error messages.
    description: str
    #: Languages (ISO 639-1) it was measured to work in; None: any.
    languages: frozenset[str] | None = None


class NoveltyFilter:
    """Tells new captions from repeats of the last accepted ones.

    Each caption is compared with the captions accepted before it, not with the previous
    rejected one, so a slowly drifting series of repeats cannot creep past the filter.
    """

    def __init__(self, scorer: NoveltyScorer, threshold: float, *, history: int = 1) -> None:
        """Create a filter with nothing accepted yet.

        Args:
            scorer: Similarity measure between two captions.
            threshold: Similarity at or above which a caption is a repeat, in (0, 1];
                :data:`DEFAULT_METEOR_THRESHOLD` for :class:`MeteorScorer`.
            history: How many accepted captions to compare with (the most similar one
                counts); 1 compares with the last accepted caption only.

        Raises:
            ValueError: ``threshold`` or ``history`` is out of range.
        """
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if history < 1:
            raise ValueError(f"history must be at least 1, got {history}")
        self.scorer = scorer
        self.threshold = threshold
        self._accepted: deque[str] = deque(maxlen=history)

    def check(self, text: str) -> tuple[bool, float]:
        """Decide whether ``text`` is new, and remember it if so.

        Args:
            text: The next caption.

        Returns:
            ``(is_new, similarity)``: similarity to the most similar remembered caption,
            0.0 for the first caption, which is always new. A text without any word is
            never new (there is nothing to narrate) and is not remembered.
        """
        if not tokenize(text):
            return False, 0.0
        similarity = max(
            (self.scorer.similarity(previous, text) for previous in self._accepted),
            default=0.0,
        )
        is_new = similarity < self.threshold
        if is_new:
            self._accepted.append(text)
        return is_new, similarity
