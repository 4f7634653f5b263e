"""Semantic novelty: cosine similarity of sentence embeddings (all-MiniLM-L6-v2 by default).

:class:`SemanticScorer` implements :class:`~app.pipeline.novelty.NoveltyScorer`. Unlike
METEOR it sees meaning, not words: "two men talking in a room" and "two men fighting in a
room" share all but one word yet are different scenes, and "a man walks down a street" and
"a person strolling along a road" share one word yet say the same. ``bench/novelty.py``
measures both scorers; :data:`DEFAULT_SEMANTIC_THRESHOLD` comes from
there (it holds for all-MiniLM-L6-v2; another model needs its own measurement).

The model is loaded by :mod:`app.models.sentences`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from app.models.sentences import SemanticOptions, SentenceEncoder, load_sentence_encoder
from app.pipeline.novelty.base import ScorerSpec, obvious_similarity

if TYPE_CHECKING:
    import torch

#: Cosine similarity at or above which a caption repeats an earlier one under
#: :class:`SemanticScorer` with all-MiniLM-L6-v2: the middle of the
#: gap between new pairs (0.800 and below) and repeats (0.834 and above, all but five of
#: 27) in ``bench/novelty.py``; another model needs its own measurement.
DEFAULT_SEMANTIC_THRESHOLD = 0.82
#: Accepted captions a new one is compared with under the semantic scorer: recall of repeats
#: 0.41, 0.86 and 0.91 with 1, 2 and 3 (no more with 5), no false repeat with any of them.
DEFAULT_SEMANTIC_HISTORY = 3

#: Captions' embeddings kept per scorer, so that comparing with several remembered captions
#: encodes each caption once.
EMBEDDING_CACHE_SIZE = 64


class SemanticScorer:
    """Cosine similarity of sentence embeddings; a :class:`~app.pipeline.novelty.NoveltyScorer`.

    The model is loaded on the first call to :meth:`similarity` (or :meth:`load`), once,
    however many threads call at the same time. Scoring is serialised per scorer.
    """

    def __init__(self, options: SemanticOptions | None = None) -> None:
        """Create a scorer; nothing is loaded yet.

        Args:
            options: Which model and where to run it; defaults to ``SemanticOptions()``.
        """
        self.options = options or SemanticOptions()
        self._encoder: SentenceEncoder | None = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    def load(self) -> SentenceEncoder:
        """Load the model if it is not loaded yet, e.g. at startup to fail early.

        Returns:
            The encoder.

        Raises:
            ModelLoadError: The model cannot be found or loaded.
        """
        with self._lock:
            return self._load_locked()

    def _load_locked(self) -> SentenceEncoder:
        if self._encoder is None:
            self._encoder = load_sentence_encoder(self.options)
        return self._encoder

    def similarity(self, previous: str, current: str) -> float:
        """Score how similar two captions are (symmetric, unlike METEOR).

        Args:
            previous: The caption already narrated.
            current: The new caption.

        Returns:
            Cosine similarity of the two embeddings clipped to [0, 1]: 1.0 for the same words
            in the same order (case and punctuation aside), 0.0 when either text has no word
            (see :func:`~app.pipeline.novelty.tokenize`).

        Raises:
            ModelLoadError: The model was not loaded yet and cannot be.
        """
        obvious = obvious_similarity(previous, current)
        if obvious is not None:
            return obvious
        # Lowercased with spaces collapsed: the model is uncased, and equal texts share a
        # cache entry.
        first, second = " ".join(previous.lower().split()), " ".join(current.lower().split())
        with self._lock:
            vectors = self._embed_locked([first, second])
        cosine = float(vectors[first] @ vectors[second])
        return min(max(cosine, 0.0), 1.0)

    def _embed_locked(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Embeddings of ``texts``, encoding in one batch only those not cached."""
        missing = [text for text in dict.fromkeys(texts) if text not in self._cache]
        if missing:
            for text, vector in zip(missing, self._load_locked().encode(missing), strict=True):
                self._cache[text] = vector
        result = {}
        for text in texts:
            self._cache.move_to_end(text)
            result[text] = self._cache[text]
        while len(self._cache) > EMBEDDING_CACHE_SIZE:
            self._cache.popitem(last=False)
        return result


SEMANTIC = ScorerSpec(
    factory=SemanticScorer,
    threshold=DEFAULT_SEMANTIC_THRESHOLD,
    history=DEFAULT_SEMANTIC_HISTORY,
    description="cosine similarity of all-MiniLM-L6-v2 sentence embeddings",
)
