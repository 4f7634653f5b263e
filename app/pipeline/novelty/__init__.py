"""Novelty of captions: drop a description that only restates a recent one.

Scorers are plug-ins, one module each in this folder, named in :data:`SCORERS` with the
threshold and history measured for each by ``bench/novelty.py``: ``meteor`` (word overlap
with WordNet synonyms) and ``semantic`` (sentence embeddings). :func:`make_novelty_filter`
builds a filter from a name.
"""

from __future__ import annotations

from app.pipeline.novelty.base import NoveltyFilter, NoveltyScorer, ScorerSpec, tokenize
from app.registry import Member, Registry

#: Scorers by the name settings use. A new scorer: a module defining a ``ScorerSpec``, and a
#: line here.
SCORERS: Registry[ScorerSpec] = Registry(
    "novelty scorer",
    {
        "meteor": Member("app.pipeline.novelty.meteor:METEOR", {"nltk": "nltk"}),
        "semantic": Member(
            "app.pipeline.novelty.semantic:SEMANTIC", {"transformers": "transformers"}
        ),
    },
)
#: The scorer used when settings name none.
DEFAULT_SCORER = "meteor"


def scorer_spec(name: str) -> ScorerSpec:
    """Look up a scorer by name.

    Raises:
        ValueError: ``name`` is not an installed scorer; the message lists the valid names.
    """
    return SCORERS.load(name)


def make_scorer(name: str = DEFAULT_SCORER) -> NoveltyScorer:
    """Build a scorer by name, to be shared by the filters of many jobs.

    Raises:
        ValueError: ``name`` is not an installed scorer; the message lists the valid names.
        WordNetMissing: ``"meteor"`` was asked for and no WordNet is installed.
    """
    return scorer_spec(name).factory()


def make_novelty_filter(
    name: str = DEFAULT_SCORER,
    threshold: float | None = None,
    history: int | None = None,
    *,
    scorer: NoveltyScorer | None = None,
) -> NoveltyFilter:
    """Build a filter for one video with a named scorer and that scorer's measured defaults.

    Args:
        name: A key of :data:`SCORERS`; decides the default threshold and history.
        threshold: Similarity at or above which a caption is a repeat; None for the scorer's
            default.
        history: How many accepted captions to compare with; None for the scorer's default.
        scorer: An already built scorer of that kind, shared between videos so its model is
            loaded once; None builds one with the scorer's factory.

    Raises:
        ValueError: ``name`` is not a known scorer (the message lists the valid names), or
            ``threshold`` or ``history`` is out of range.
        WordNetMissing: ``"meteor"`` was asked for without ``scorer`` and no WordNet is
            installed.
    """
    spec = scorer_spec(name)
    return NoveltyFilter(
        scorer if scorer is not None else spec.factory(),
        spec.threshold if threshold is None else threshold,
        history=spec.history if history is None else history,
    )


__all__ = [
    "DEFAULT_SCORER",
    "SCORERS",
    "NoveltyFilter",
    "NoveltyScorer",
    "ScorerSpec",
    "make_novelty_filter",
    "make_scorer",
    "scorer_spec",
    "tokenize",
]
