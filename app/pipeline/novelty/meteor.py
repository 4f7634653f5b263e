"""The ``meteor`` novelty scorer: METEOR word overlap with WordNet synonyms.

How the METEOR score is computed, and why:

* The current caption is METEOR's *reference* and the previous one the *hypothesis*. METEOR
  weighs recall 9:1 over precision, so the score says how much of the current caption the
  previous one already said: a caption that only drops details is a repeat, one that adds
  details ("... at night") scores lower.
* Articles, forms of "be" and "there" are ignored. Most captions have them ("there is a man
  ..."), and their matches alone put unrelated captions at 0.4-0.5 ("a car on the road" /
  "a boat on the water": 0.511 with them, 0.167 without), right where rephrased repeats fall.
* Words are reduced to their shortest WordNet base form instead of Porter stems. NLTK's
  METEOR looks synonyms up by the stemmed word, so with Porter stems "automobile"
  ("automobil") never matched "car" and "bicycle" ("bicycl") never matched "bike".
* Identical word sequences score 1.0; METEOR's fragmentation penalty would leave a
  one-word caption at 0.5 against itself.

``DEFAULT_METEOR_THRESHOLD`` was chosen on these pairs (previous | current), scored as
above; in brackets plain NLTK METEOR on all words with Porter stems, same direction:

===== ============================================================ ======= ===========
score previous | current                                           plain   verdict
===== ============================================================ ======= ===========
0.992 a man is walking down the street | a man walks down a street   (0.610) repeat
0.981 a car on the road | an automobile on the road                  (0.589) repeat
0.992 a woman sitting on a couch | a woman is sitting on a sofa       (0.853) repeat
0.992 a dog running on the beach | a dog runs along the beach        (0.998) repeat
0.996 two men talking in a room | two men are talking in a room      (0.853) repeat
0.998 a group of people standing around a table |                    (0.999) repeat
      a group of people stand around a table
0.770 a woman holding a cup of coffee | a woman is holding a coffee   (0.730) repeat
      cup
0.938 a tall building | tall buildings                               (0.893) repeat
0.644 a city street at night | a street in the city at night         (0.547) repeat
0.636 a girl riding a bike down the road |                           (0.418) repeat
      a young girl rides a bicycle on a road
0.613 a man driving a car | a man is driving a car at night          (0.629) repeat
0.920 a man is driving a car at night | a man driving a car          (0.913) repeat
0.167 a car on the road | a boat on the water                        (0.511) new
0.125 a woman walking in the rain | a woman talking on the phone     (0.426) new
0.102 a man sitting at a desk | a man lying in a hospital bed        (0.370) new
0.100 a close up of a man's face | a view of a city at night         (0.360) new
0.094 a man in a suit standing in front of a building |              (0.203) new
      a woman in a red dress dancing
0.000 a dog runs on the beach | two women sit at a table             (0.083) new
0.000 a man is walking down the street | a woman is sitting on a bed (0.143) new
0.000 a woman sitting on a couch | a man standing in a kitchen       (0.167) new
0.000 a man driving a car | a plane flying in the sky                (0.085) new
===== ============================================================ ======= ===========

Repeats score 0.613 and above, new scenes 0.167 and below; 0.4 sits in the middle of that
gap. No lexical score separates captions that differ in one content word, and these count
as repeats: "two men talking in a room" | "two men fighting in a room" 0.750, "a house in the
woods" | "a house in the snow" 0.625, "a close up of a man's face" | "a close up of a man
with a beard" 0.673. A semantic scorer is the fix for those.
"""

from __future__ import annotations

import threading

from nltk.corpus.reader.wordnet import WordNetCorpusReader
from nltk.stem.api import StemmerI
from nltk.translate.meteor_score import meteor_score

from app.pipeline.novelty.base import ScorerSpec, tokenize
from app.pipeline.wordnet import load_wordnet

#: Similarity at or above which a caption repeats the previous one (see the module docstring).
DEFAULT_METEOR_THRESHOLD = 0.4
#: Accepted captions a new one is compared with under METEOR. ``bench/novelty.py``, caption
#: streams with returns to earlier shots: recall of repeats 0.36 with 1, 0.77 with 2 and 3;
#: false repeats 2, 3 and 4 of 24 new captions (one-word changes matched in more references).
DEFAULT_METEOR_HISTORY = 2
#: Words left out before scoring: articles and forms of "be" say nothing about the picture,
#: and "s" is what is left of a possessive ("man's") after tokenization.
IGNORED_WORDS = frozenset(
    {"a", "an", "the", "am", "is", "are", "was", "were", "be", "been", "being", "there", "s"}
)

# One lock for every scorer: they share the cached WordNet reader, which reads its data files
# by seek-then-readline on shared handles.
_WORDNET_LOCK = threading.Lock()
_WORDNET_POS = ("n", "v", "a", "r")


class _LemmaStemmer(StemmerI):
    """Reduces a word to its shortest WordNet base form, e.g. "buildings" -> "build".

    Forms of the same word meet at one base ("walking" and "walks" -> "walk"), and a word
    that is already a base form stays one WordNet can find synonyms for.
    """

    def __init__(self, wordnet: WordNetCorpusReader) -> None:
        self._wordnet = wordnet
        self._cache: dict[str, str] = {}

    def stem(self, token: str) -> str:
        """Return the shortest base form of ``token`` over all parts of speech."""
        base = self._cache.get(token)
        if base is None:
            base = token
            # Follow bases down ("buildings" -> "building" -> "build"); a few steps suffice.
            for _ in range(3):
                forms = {self._wordnet.morphy(base, pos) for pos in _WORDNET_POS} - {None}
                shortest = min(forms | {base}, key=lambda form: (len(form), form))
                if shortest == base:
                    break
                base = shortest
            self._cache[token] = base
        return base


class MeteorScorer:
    """METEOR similarity with WordNet synonyms, as measured in the module docstring.

    Safe to use from several threads: scoring is serialised across all scorers, since they
    share a WordNet reader that is not thread-safe.
    """

    def __init__(self, wordnet: WordNetCorpusReader | None = None) -> None:
        """Create a scorer.

        Args:
            wordnet: WordNet reader; by default :func:`~app.pipeline.wordnet.load_wordnet`.

        Raises:
            WordNetMissing: No WordNet reader was given and none is installed.
        """
        self._wordnet = load_wordnet() if wordnet is None else wordnet
        self._stemmer = _LemmaStemmer(self._wordnet)

    def similarity(self, previous: str, current: str) -> float:
        """Score how much of ``current`` ``previous`` already says.

        Args:
            previous: The caption already narrated (METEOR's hypothesis).
            current: The new caption (METEOR's reference).

        Returns:
            1.0 for the same words in the same order, 0.0 when either text has no word left
            after dropping :data:`IGNORED_WORDS`, else the METEOR score.
        """
        previous_words = tokenize(previous)
        current_words = tokenize(current)
        if previous_words and previous_words == current_words:
            return 1.0
        hypothesis = [word for word in previous_words if word not in IGNORED_WORDS]
        reference = [word for word in current_words if word not in IGNORED_WORDS]
        if not hypothesis or not reference:
            return 0.0
        with _WORDNET_LOCK:
            score = meteor_score(
                [reference], hypothesis, stemmer=self._stemmer, wordnet=self._wordnet
            )
        return float(score)


METEOR = ScorerSpec(
    factory=MeteorScorer,
    threshold=DEFAULT_METEOR_THRESHOLD,
    history=DEFAULT_METEOR_HISTORY,
    description="METEOR with WordNet synonyms (lexical; needs WordNet)",
    # WordNet and the stop words are English.
    languages=frozenset({"en"}),
)
