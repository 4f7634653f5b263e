"""Novelty of captions: drop a description that only restates a recent one.

Scorers are plug-ins, one module each in this folder, named in :data:`SCORERS` with the
threshold and history measured for each by ``bench/novelty.py``: ``meteor`` (word overlap
with WordNet synonyms, English), ``semantic`` (sentence embeddings) and ``chrf`` (character
n-grams, any language). :func:`make_novelty_filter` builds a filter from a name;
:func:`scorer_for_language` turns the setting "auto" into the scorer for a language.
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
        "chrf": Member("app.pipeline.novelty.chrf:CHRF", {"sacrebleu": "sacrebleu"}),
    },
)
#: The scorer for English when settings name none.
DEFAULT_SCORER = "meteor"
#: The scorer for every other language when settings name none (``bench/novelty.py
#: --language ru``).
MULTILINGUAL_SCORER = "chrf"
#: The setting that picks the scorer by language: :data:`DEFAULT_SCORER` for English,
#: :data:`MULTILINGUAL_SCORER` for the rest.
AUTO_SCORER = "auto"


def scorer_for_language(name: str, language: str) -> str:
    """The scorer that ``name`` means for captions in ``language`` ("auto" picks one)."""
    if name != AUTO_SCORER:
        return name
    return DEFAULT_SCORER if language == "en" else MULTILINGUAL_SCORER


def check_scorer(name: str, language: str) -> str:
    """Return ``name`` if it is "auto" or an installed scorer that works in ``language``.

    Raises:
        ValueError: Unknown or not installed (the message lists the valid names), or made
            for other languages (the message says which scorer to use instead).
    """
    if name == AUTO_SCORER:
        return name
    spec = SCORERS.load(name)
    if spec.languages is not None and language not in spec.languages:
        raise ValueError(
            f"the novelty scorer {name!r} compares {', '.join(sorted(spec.languages))} "
            f"captions only; for {language!r} use {MULTILINGUAL_SCORER!r} or "
            f"{AUTO_SCORER!r}"
        )
    return name


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
    "AUTO_SCORER",
    "DEFAULT_SCORER",
    "MULTILINGUAL_SCORER",
    "SCORERS",
    "NoveltyFilter",
    "NoveltyScorer",
    "ScorerSpec",
    "check_scorer",
    "make_novelty_filter",
    "make_scorer",
    "scorer_for_language",
    "scorer_spec",
    "tokenize",
]
