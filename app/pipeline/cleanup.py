"""Narration style: turn a captioning model's text into a short spoken sentence.

:func:`clean_caption` removes what BLIP-style models add that a listener should not hear
("arafed", "there is a ... that is ...", "a picture of", doubled words, "t - shirt"), makes
the cheap present-tense rewrites and returns one sentence. :func:`trim_to_words` shortens a
description to a word budget without leaving it hanging on "a" or "of".

Decisions, each for a reason a listener would notice:

* "arafed", "araffe", "arafly" and their spellings are decoding artefacts of BLIP, with no
  meaning; where one stood for the article ("arafed man sitting") an "a" takes its place.
* "a picture of", "a photo of", "an image of", "a blurry photo of", "this is", "there is" and
  "there are" at the start say nothing: every frame is a picture of something.
* "a close up of" stays, spelt "a close-up of": it tells the listener the framing. So do
  "a view of", "a painting of" and "a drawing of", which are content.
* Present tense only where the rewrite is safe without a parser: "there is X that is V-ing"
  becomes "X is V-ing", and "a man sitting ..." (a person or animal noun right before a
  V-ing word) becomes "a man is sitting ...". Anything else keeps the model's noun phrase.
"""

from __future__ import annotations

import logging
import re

logger = logging.getLogger(__name__)

#: BLIP artefacts: "arafed", "araffe", "arafly", "arrafed", "araffes" ... but not "Arafat".
_ARTEFACT = re.compile(r"\b(?!arafat\b)ar{1,2}af{1,2}\w*", re.IGNORECASE)
#: Leading phrases that only say "this frame shows"; removed repeatedly ("there is a picture of").
_FILLER_PREFIX = re.compile(
    r"^(?:"
    r"there\s+(?:is|are|'s)\s+|there's\s+|this\s+is\s+|"
    r"(?:a|an|the)\s+(?:[a-z-]+\s+){0,3}?"
    r"(?:picture|photo|photograph|image|pic|still|screenshot|screen\s+shot|snapshot)\s+of\s+"
    r")",
    re.IGNORECASE,
)
#: "... that is running" after a removed "there is": the relative clause becomes the verb.
_RELATIVE = re.compile(
    r"^(?P<subject>(?:\S+\s+){1,6}?)(?:that|who|which)\s+(?P<verb>is|are|has|have)\b", re.IGNORECASE
)
#: The same one to three words twice in a row: "car car", "on the beach on the beach".
_REPEATED = re.compile(r"\b(\w+(?:\s+\w+){0,2}?)(?:\s+\1\b)+", re.IGNORECASE)
#: Doubles that are English: "had had", "that that".
_ALLOWED_DOUBLES = frozenset({"had", "that"})
_CLOSE_UP = re.compile(r"\bclose\s*-?\s*up\b", re.IGNORECASE)
#: Word-piece spacing left by BERT-style decoders: "man ' s", "t - shirt".
_POSSESSIVE = re.compile(r"(\w)\s+'\s*s\b")
_HYPHEN = re.compile(r"(\w)\s+-\s+(\w)")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
#: A letter or digit in any script: a caption in the viewer's language (Russian) is a text.
_WORD = re.compile(r"[^\W_]")

_ARTICLES = frozenset({"a", "an", "the"})
_DETERMINERS = _ARTICLES | frozenset(
    {"this", "that", "these", "those", "his", "her", "their", "its", "my", "our", "your",
     "some", "many", "several", "few", "one", "two", "three", "four", "five", "six", "seven",
     "eight", "nine", "ten", "no", "each", "every", "another", "other"}
)  # fmt: skip
_NUMBERS_ABOVE_ONE = frozenset(
    {"two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "several",
     "many", "some", "few"}
)  # fmt: skip
#: Nouns after which a V-ing word is the verb, not a noun ("a man sitting", not "a tall
#: building"): people and animals, singular then plural.
_SINGULAR_AGENTS = frozenset(
    {"man", "woman", "person", "boy", "girl", "child", "kid", "baby", "guy", "lady", "player",
     "soldier", "officer", "dog", "cat", "horse", "bird", "cow", "sheep", "elephant", "bear",
     "couple", "family", "crowd", "group", "team"}
)  # fmt: skip
_PLURAL_AGENTS = frozenset(
    {"men", "women", "people", "persons", "boys", "girls", "children", "kids", "babies", "guys",
     "ladies", "players", "soldiers", "officers", "dogs", "cats", "horses", "birds", "cows",
     "sheep", "elephants", "bears"}
)  # fmt: skip
#: Words a trimmed description must not end on: articles, prepositions, conjunctions,
#: possessives, auxiliaries. Not "up", "down", "out", "off", "over": after a verb they are
#: particles ("sits down"). Not "her": it is also an object ("hugs her").
DANGLING_WORDS = frozenset(
    {"a", "an", "the", "of", "with", "on", "in", "at", "to", "for", "from", "by", "into",
     "onto", "under", "near", "behind", "beside", "between", "through", "across", "along",
     "around", "against", "toward", "towards", "and", "or", "but", "while", "as", "that",
     "who", "which", "whose", "his", "their", "its", "my", "our", "your", "is", "are", "was",
     "were", "very"}
) | frozenset(
    # Russian prepositions and conjunctions, for translated descriptions.
    {"в", "во", "на", "с", "со", "к", "ко", "у", "о", "об", "по", "из", "за", "под",  # noqa: RUF001
     "над", "перед", "при", "для", "от", "до", "через", "между", "и", "а", "но", "или",  # noqa: RUF001
     "что", "который", "которая", "которое", "которые"}
)  # fmt: skip
#: Words an "an" goes before although they start with a consonant, and the reverse.
_AN_EXCEPTIONS = frozenset({"hour", "hours", "honest", "heir", "honor", "honour"})
_A_EXCEPTIONS = ("one", "uni", "use", "usu", "eu", "ewe")
_STRIP_END = ",;:-–—"  # noqa: RUF001 - en and em dashes are what models emit
_PUNCTUATION = ".,;:!?'\"()" + _STRIP_END
#: The punctuation a caption ends with: kept as one "?" or "!" if it has one, else a full stop.
_TRAILING = re.compile(r"[\s.,;:!?\-–—]*$")  # noqa: RUF001


def _article_for(word: str) -> str:
    """Return "a" or "an" for the word that follows it."""
    lowered = word.lower()
    if lowered in _AN_EXCEPTIONS:
        return "an"
    if lowered.startswith(_A_EXCEPTIONS):
        return "a"
    return "an" if lowered[:1] in "aeiou" else "a"


def _looks_plural(word: str) -> bool:
    """Guess whether a noun is plural: a known plural, or "-s" but not "-ss", "-us", "-is"."""
    lowered = word.lower()
    if lowered in _PLURAL_AGENTS:
        return True
    return lowered.endswith("s") and not lowered.endswith(("ss", "us", "is"))


def _remove_artefacts(words: list[str]) -> list[str]:
    """Drop "arafed"-like tokens, keeping an article in front of the noun they stood for."""
    result: list[str] = []
    for index, word in enumerate(words):
        if not _ARTEFACT.fullmatch(word.strip(_PUNCTUATION)):
            result.append(word)
            continue
        following = words[index + 1] if index + 1 < len(words) else ""
        if not following.isalpha() or _ARTEFACT.fullmatch(following):
            # Before punctuation, the end or another artefact: nothing to put an article to.
            continue
        if result and result[-1].lower() in ("a", "an"):
            # "an arafed man" -> "a man": the article now meets another word.
            result[-1] = _article_for(following)
        elif (
            (not result or result[-1].lower() not in _DETERMINERS)
            and following.lower() not in _DETERMINERS
            and not _looks_plural(following)
            and following.lower() not in DANGLING_WORDS
        ):
            # BLIP writes "arafed man" where "a man" is meant.
            result.append(_article_for(following))
    return result


def _collapse_repeats(text: str) -> str:
    """Say a doubled word or phrase once: "a red car car" -> "a red car"."""

    def once(match: re.Match[str]) -> str:
        phrase = match.group(1)
        if phrase.lower() in _ALLOWED_DOUBLES:
            return match.group(0)
        return phrase

    # Shortest unit first ("car car car car" -> "car"), until nothing changes
    # ("a a picture of picture of" needs two rounds).
    while True:
        collapsed = _REPEATED.sub(once, text)
        if collapsed == text:
            return text
        text = collapsed


def _strip_fillers(text: str) -> tuple[str, bool]:
    """Remove leading "there is", "a picture of" ...; say whether "there is/are" was one."""
    had_there = False
    while True:
        match = _FILLER_PREFIX.match(text)
        if match is None or match.end() == len(text):
            return text, had_there
        had_there = had_there or match.group(0).lower().startswith("there")
        text = text[match.end() :]


def _present_tense(text: str, had_there: bool) -> str:
    """Turn "X that is V-ing" (after "there is") and "a man V-ing" into "X is V-ing"."""
    if had_there:
        match = _RELATIVE.match(text)
        if match is not None:
            return f"{match.group('subject')}{match.group('verb')}{text[match.end() :]}"
    words = text.split()
    # "[determiner] [up to two modifiers] agent V-ing ..." and "... agent and ... agent V-ing".
    for index, word in enumerate(words[:8]):
        if not (word.lower().endswith("ing") and len(word) > 4 and index > 0):
            continue
        agent = words[index - 1].lower()
        if agent not in _SINGULAR_AGENTS and agent not in _PLURAL_AGENTS:
            return text
        subject = [w.lower() for w in words[:index]]
        if any(not w.isalpha() for w in subject) or any(
            w in DANGLING_WORDS - _ARTICLES - {"and"} for w in subject
        ):
            # A comma, a preposition or a clause in the subject: not a simple noun phrase.
            return text
        plural = agent in _PLURAL_AGENTS or "and" in subject or subject[0] in _NUMBERS_ABOVE_ONE
        verb = "are" if plural else "is"
        return " ".join([*words[:index], verb, *words[index:]])
    return text


def _sentence(text: str) -> str:
    """Capitalise the first letter and end with one "?", "!" or full stop (as the text did)."""
    trailing = _TRAILING.search(text)
    ending = trailing.group(0) if trailing else ""
    text = text[: len(text) - len(ending)]
    if not text:
        return text
    mark = "?" if "?" in ending else "!" if "!" in ending else "."
    return text[0].upper() + text[1:] + mark


def _normalise(text: str) -> str:
    """Collapse whitespace and rejoin decoder word pieces ("man ' s", "t - shirt")."""
    text = " ".join(text.split())
    text = _POSSESSIVE.sub(r"\1's", text)
    text = _HYPHEN.sub(r"\1-\2", text)
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


def _drop_dangling(words: list[str]) -> list[str]:
    """Drop trailing words a sentence cannot end on ("a man holding a" -> "a man holding")."""
    while words and words[-1].lower().rstrip(".!?" + _STRIP_END) in DANGLING_WORDS | {""}:
        words = words[:-1]
    return words


def clean_caption(text: str) -> str:
    """Turn a captioning model's output into one narration sentence.

    See the module docstring for what is removed and rewritten. Never returns an empty
    string for a text with a word in it: if cleaning leaves nothing (the caption was only
    "arafed"), the original comes back, whitespace-normalised, as a sentence.

    Args:
        text: A caption, e.g. ``"there is a dog that is running on the beach"``.

    Returns:
        The sentence, e.g. ``"A dog is running on the beach."``; an empty string for a text
        without any letter or digit.
    """
    original = _normalise(text)
    if not _WORD.search(original):
        return ""
    cleaned = " ".join(_remove_artefacts(original.split()))
    cleaned = _collapse_repeats(cleaned)
    cleaned, had_there = _strip_fillers(cleaned)
    cleaned = _CLOSE_UP.sub("close-up", cleaned)
    cleaned = _present_tense(cleaned, had_there)
    # A question or exclamation keeps its mark; anything else ends with a full stop.
    trailing = _TRAILING.search(cleaned)
    ending = trailing.group(0) if trailing else ""
    mark = "?" if "?" in ending else "!" if "!" in ending else ""
    cleaned = " ".join(_drop_dangling(cleaned[: len(cleaned) - len(ending)].split()))
    if not _WORD.search(cleaned):
        logger.debug("Cleaning removed every word of %r; keeping it as it was", text)
        return _sentence(original)
    return _sentence(cleaned + mark)


def trim_to_words(text: str, max_words: int) -> tuple[str, bool]:
    """Shorten a description to at most ``max_words`` words at a word boundary.

    Args:
        text: A description, usually from :func:`clean_caption`.
        max_words: The most words that fit the pause, at least 1.

    Returns:
        ``(text, fits)``: ``text`` unchanged (stripped) and True when it has at most
        ``max_words`` words; else its first ``max_words`` words less any trailing article,
        preposition, conjunction or auxiliary ("a", "of", "with", "is" ...), ending with a
        full stop, and False. The trimmed text is empty when no meaningful word fits.

    Raises:
        ValueError: ``max_words`` is less than 1.
    """
    if max_words < 1:
        raise ValueError(f"max_words must be at least 1, got {max_words}")
    words = text.split()
    if len(words) <= max_words:
        return text.strip(), True
    kept = _drop_dangling(words[:max_words])
    if not kept:
        return "", False
    return _sentence(_TRAILING.sub("", " ".join(kept))), False
