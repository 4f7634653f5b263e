"""Tests for narration style: cleaning captioning-model text and trimming it to a word budget."""

from __future__ import annotations

import pytest

from app.pipeline.cleanup import DANGLING_WORDS, clean_caption, trim_to_words

CLEAN_CASES = [
    # BLIP artefacts; an "a" takes the place of one that stood for the article.
    ("arafed man sitting on a couch", "A man is sitting on a couch."),
    ("an arafed man with a beard", "A man with a beard."),
    ("there is arafed woman in a kitchen", "A woman in a kitchen."),
    ("a man and araffe elephant", "A man and an elephant."),
    ("arafed people walking down a street", "People are walking down a street."),
    (
        "araffe woman in a red dress standing in front of a building",
        "A woman in a red dress standing in front of a building.",
    ),
    ("Yasser Arafat giving a speech", "Yasser Arafat giving a speech."),
    # "there is / are ... that is / are ..." becomes the present tense.
    ("there is a dog that is running on the beach", "A dog is running on the beach."),
    ("there are two men that are talking in a room", "Two men are talking in a room."),
    ("there is a man who has a beard", "A man has a beard."),
    ("there's a cat on a bed", "A cat on a bed."),
    ("there is a sign that says stop", "A sign that says stop."),
    # "a picture of" and kin say nothing; "a close up of" and "a view of" say the framing.
    ("a picture of a red car car", "A red car."),
    ("a blurry photo of a man running", "A man is running."),
    ("a black and white photo of a woman", "A woman."),
    ("this is an image of a dog", "A dog."),
    ("there is a picture of a dog on the wall", "A dog on the wall."),
    ("a close up of a man's face", "A close-up of a man's face."),
    ("a closeup of a flower", "A close-up of a flower."),
    ("a view of a city at night", "A view of a city at night."),
    ("a painting of a woman", "A painting of a woman."),
    # Doubled words and phrases, decoder word pieces.
    ("a dog on the beach on the beach", "A dog on the beach."),
    ("a man in a t - shirt", "A man in a t-shirt."),
    ("a man ' s hand on a table", "A man's hand on a table."),
    ("a woman   holding an umbrella ,", "A woman is holding an umbrella."),
    # Cheap present tense only after a person or animal noun; -ing nouns stay nouns.
    ("a young girl riding a bike", "A young girl is riding a bike."),
    ("a man and a woman sitting on a bench", "A man and a woman are sitting on a bench."),
    ("two dogs playing in the snow", "Two dogs are playing in the snow."),
    ("a tall building", "A tall building."),
    ("a swimming pool", "A swimming pool."),
    ("a building with a clock on it", "A building with a clock on it."),
    ("a man in a suit walking", "A man in a suit walking."),
    # Sentence case, one final full stop, nothing left hanging.
    ("a man sitting on a bench with a", "A man is sitting on a bench."),
    ("A dog.", "A dog."),
    ("what is this?", "What is this?"),
    # Nothing but an artefact: the original comes back rather than nothing.
    ("arafed", "Arafed."),
    ("a picture of", "A picture."),
    # Nothing to narrate.
    ("", ""),
    ("   ", ""),
    ("...", ""),
]


@pytest.mark.parametrize(("raw", "expected"), CLEAN_CASES)
def test_clean_caption(raw: str, expected: str) -> None:
    assert clean_caption(raw) == expected


@pytest.mark.parametrize("raw", [raw for raw, expected in CLEAN_CASES if expected])
def test_clean_caption_is_idempotent(raw: str) -> None:
    once = clean_caption(raw)
    assert clean_caption(once) == once


TRIM_CASES = [
    # (text, max_words, expected text, fits)
    ("A dog runs.", 3, "A dog runs.", True),
    ("A dog runs.", 2, "A dog.", False),
    ("  A dog runs.  ", 5, "A dog runs.", True),
    ("A man in a red shirt is walking.", 4, "A man.", False),
    ("A man is walking down the street.", 3, "A man.", False),
    ("A man is walking down the street.", 4, "A man is walking.", False),
    ("A man is walking down the street.", 5, "A man is walking down.", False),
    ("A woman holding a cup of coffee.", 6, "A woman holding a cup.", False),
    ("A man with a beard, smiling.", 4, "A man.", False),
    ("Two men fighting, shouting and crying.", 4, "Two men fighting, shouting.", False),
    ("The dog and the cat.", 4, "The dog.", False),
    ("Rain falls on the roof of a house.", 5, "Rain falls on the roof.", False),
    ("The of a thing.", 2, "", False),
]


@pytest.mark.parametrize(("text", "max_words", "expected", "fits"), TRIM_CASES)
def test_trim_to_words(text: str, max_words: int, expected: str, fits: bool) -> None:
    assert trim_to_words(text, max_words) == (expected, fits)


@pytest.mark.parametrize(("text", "max_words", "expected", "fits"), TRIM_CASES)
def test_trimmed_text_is_a_whole_sentence(
    text: str, max_words: int, expected: str, fits: bool
) -> None:
    trimmed, _ = trim_to_words(text, max_words)
    if trimmed:
        words = trimmed.split()
        assert len(words) <= max_words
        assert trimmed.endswith(".")
        assert words[-1].rstrip(".").lower() not in DANGLING_WORDS


@pytest.mark.parametrize("max_words", [0, -3])
def test_trim_to_words_rejects_an_empty_budget(max_words: int) -> None:
    with pytest.raises(ValueError, match="max_words must be at least 1"):
        trim_to_words("A dog runs.", max_words)
