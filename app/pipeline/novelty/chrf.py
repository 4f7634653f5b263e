"""The ``chrf`` novelty scorer: chrF, the F-score of character n-grams (sacrebleu), which
works in any language written with spaces between words.

METEOR's synonyms come from WordNet, which is English; in Russian a noun changes its ending
with its case ("улица" / "по улице" / "на улице") and a verb with its form ("сидит" /
"сидящий"), so whole-word overlap misses repeats. Character n-grams share the stem.

The previous caption is chrF's hypothesis and the current one its reference, with recall
weighed over precision (beta 2), so the score says how much of the current caption the
previous one already said, as METEOR's direction does. Case is ignored. Threshold and history
were measured by ``bench/novelty.py --language ru`` on ``bench/novelty_pairs_ru.py``
(Russian versions of the English pairs); see :data:`DEFAULT_CHRF_THRESHOLD`.
"""

from __future__ import annotations

from sacrebleu.metrics import CHRF as ChrF

from app.pipeline.novelty.base import ScorerSpec, obvious_similarity, tokenize

#: chrF (0..1) at or above which a caption repeats an earlier one: the middle of the gap
#: between the Russian new-scene pairs (0.271 and below) and the repeats (0.370 and above, all
#: but two of 27) of ``bench/novelty.py --language ru``. There, at 0.32: precision 0.676,
#: recall 0.926 (F1 0.781) of "repeat", against METEOR 0.583 / 0.519 on the same Russian
#: pairs and METEOR 0.694 / 0.926 on their English sources; like METEOR in English, it calls
#: 12 of the 14 pairs that differ in one content word ("открывает" / "закрывает") repeats.
DEFAULT_CHRF_THRESHOLD = 0.32
#: Accepted captions a new one is compared with: on the Russian streams recall 0.36, 0.77 and
#: 0.86 with 1, 2 and 3 (no more with 5), precision 0.53, 0.68 and 0.68.
DEFAULT_CHRF_HISTORY = 3
#: Recall weighs this many times precision (chrF's beta; sacrebleu's default).
BETA = 2


class ChrfScorer:
    """chrF of two captions; a :class:`~app.pipeline.novelty.NoveltyScorer`. Thread-safe:
    sacrebleu builds its statistics per call."""

    def __init__(self) -> None:
        self._metric = ChrF(beta=BETA, lowercase=True)

    def similarity(self, previous: str, current: str) -> float:
        """Score how much of ``current`` ``previous`` already says, 0.0 to 1.0.

        Returns:
            1.0 for the same words in the same order (case and punctuation aside); 0.0 when
            either text has no word.
        """
        obvious = obvious_similarity(previous, current)
        if obvious is not None:
            return obvious
        score = self._metric.sentence_score(
            " ".join(tokenize(previous)), [" ".join(tokenize(current))]
        )
        return min(max(score.score / 100.0, 0.0), 1.0)


CHRF = ScorerSpec(
    factory=ChrfScorer,
    threshold=DEFAULT_CHRF_THRESHOLD,
    history=DEFAULT_CHRF_HISTORY,
    description="chrF character n-gram F-score (any language)",
)
