"""Labelled captions for measuring novelty scorers: pairs, and streams for the history length.

A pair is ``(previous, current, is_repeat, kind)``: ``is_repeat`` says whether narrating
``current`` after ``previous`` would tell the listener nothing new. Kinds:

* ``paraphrase``: the same content in other words.
* ``blip``: the same content where one or both captions carry BLIP-style artefacts
  ("arafed", "there is a ... that is ...", "a picture of", doubled words).
* ``detail``: one caption adds or drops a minor detail; still a repeat.
* ``new``: a different scene.
* ``hard``: a different scene or event that differs in one content word (verb, object,
  colour), the case METEOR cannot tell.

A stream is one scene's captions in order, each labelled ``True`` when it repeats a caption
narrated shortly before: usually the last one (the same shot described again in the next
pause), sometimes one two or three back (shot / reverse-shot dialogue, cross-cutting and
cut-aways return to a shot). Streams also hold new events in one place ("cooking", then
"crying" in the same kitchen), which a long history must not swallow. The first caption of
a stream is always new.
"""

from __future__ import annotations

from typing import NamedTuple


class Pair(NamedTuple):
    """Two consecutive captions and whether the second repeats the first."""

    previous: str
    current: str
    is_repeat: bool
    kind: str


class Stream(NamedTuple):
    """Captions of one scene in order, each marked ``True`` when it is a repeat."""

    name: str
    captions: tuple[tuple[str, bool], ...]


PAIRS: tuple[Pair, ...] = (
    # Repeats phrased differently.
    Pair("a man is walking down the street", "a man walks down a street", True, "paraphrase"),
    Pair("a car on the road", "an automobile on the road", True, "paraphrase"),
    Pair("a woman sitting on a couch", "a woman is sitting on a sofa", True, "paraphrase"),
    Pair("a dog running on the beach", "a dog runs along the beach", True, "paraphrase"),
    Pair("two men talking in a room", "two men are talking in a room", True, "paraphrase"),
    Pair(
        "a group of people standing around a table",
        "a group of people stand around a table",
        True,
        "paraphrase",
    ),
    Pair(
        "a woman holding a cup of coffee",
        "a woman is holding a coffee cup",
        True,
        "paraphrase",
    ),
    Pair("a tall building", "tall buildings", True, "paraphrase"),
    Pair("a city street at night", "a street in the city at night", True, "paraphrase"),
    Pair(
        "a girl riding a bike down the road",
        "a young girl rides a bicycle on a road",
        True,
        "paraphrase",
    ),
    Pair("a man walking along a road", "a person strolling down a street", True, "paraphrase"),
    Pair(
        "a child playing with a ball in the park",
        "a kid plays with a ball in a park",
        True,
        "paraphrase",
    ),
    Pair("a man speaking into a microphone", "a man talking into a microphone", True, "paraphrase"),
    Pair("an old woman smiling", "an elderly woman is smiling", True, "paraphrase"),
    Pair("a plane flying in the sky", "an airplane flying through the sky", True, "paraphrase"),
    # Repeats with BLIP-style artefacts.
    Pair("arafed man sitting on a couch", "a man sitting on a couch", True, "blip"),
    Pair(
        "there is a dog that is running on the beach",
        "a dog running on the beach",
        True,
        "blip",
    ),
    Pair("a picture of a red car car", "a red car", True, "blip"),
    Pair(
        "there are two men that are talking in a room",
        "two men talking in a room",
        True,
        "blip",
    ),
    Pair(
        "araffe woman in a red dress standing in front of a building",
        "a woman in a red dress standing in front of a building",
        True,
        "blip",
    ),
    Pair(
        "there is a woman that is holding a cup of coffee",
        "arafed woman holding a coffee cup",
        True,
        "blip",
    ),
    Pair("a blurry photo of a man running", "a man running", True, "blip"),
    Pair(
        "there is a man that is standing in the kitchen",
        "a man standing in a kitchen",
        True,
        "blip",
    ),
    # Repeats that add or drop a detail.
    Pair("a man driving a car", "a man is driving a car at night", True, "detail"),
    Pair("a man is driving a car at night", "a man driving a car", True, "detail"),
    Pair(
        "a close up of a man with a beard",
        "a man with a beard looking at the camera",
        True,
        "detail",
    ),
    Pair("a woman sitting at a table", "a woman sitting at a wooden table", True, "detail"),
    # New scenes.
    Pair("a dog runs on the beach", "two women sit at a table", False, "new"),
    Pair("a car on the road", "a boat on the water", False, "new"),
    Pair("a woman walking in the rain", "a woman talking on the phone", False, "new"),
    Pair("a man sitting at a desk", "a man lying in a hospital bed", False, "new"),
    Pair("a close up of a man's face", "a view of a city at night", False, "new"),
    Pair(
        "a man in a suit standing in front of a building",
        "a woman in a red dress dancing",
        False,
        "new",
    ),
    Pair("a man is walking down the street", "a woman is sitting on a bed", False, "new"),
    Pair("a woman sitting on a couch", "a man standing in a kitchen", False, "new"),
    Pair("a man driving a car", "a plane flying in the sky", False, "new"),
    Pair(
        "arafed man sitting on a couch",
        "there is a cat that is sleeping on a bed",
        False,
        "new",
    ),
    Pair("a picture of a mountain with snow", "a crowd of people at a concert", False, "new"),
    # New scenes or events that differ in one content word.
    Pair("two men talking in a room", "two men fighting in a room", False, "hard"),
    Pair("a house in the woods", "a house in the snow", False, "hard"),
    Pair("a man riding a horse", "a man riding a bicycle", False, "hard"),
    Pair("a woman cooking in a kitchen", "a woman crying in a kitchen", False, "hard"),
    Pair("a dog sitting on a couch", "a cat sitting on a couch", False, "hard"),
    Pair("a man opening a door", "a man closing a door", False, "hard"),
    Pair("a car driving on a highway", "a car crashing on a highway", False, "hard"),
    Pair("a woman reading a book in bed", "a woman sleeping in bed", False, "hard"),
    Pair("a man holding a gun", "a man holding a phone", False, "hard"),
    Pair("a boy swimming in a pool", "a boy standing next to a pool", False, "hard"),
    Pair("people dancing at a party", "people fighting at a party", False, "hard"),
    Pair("a man in a red shirt", "a man in a blue shirt", False, "hard"),
    Pair("a plane taking off from a runway", "a plane landing on a runway", False, "hard"),
    Pair("a woman singing on a stage", "a woman dancing on a stage", False, "hard"),
)

STREAMS: tuple[Stream, ...] = (
    Stream(
        "office dialogue (shot / reverse shot, cut-away)",
        (
            ("a man in a suit sitting at a desk", False),
            ("arafed man in a suit sitting at a desk", True),
            ("a woman standing in an office doorway", False),
            ("a man in a suit is sitting behind a desk", True),
            ("there is a woman standing in the doorway of an office", True),
            ("a view of a city skyline at night", False),
            ("a city skyline at night", True),
            ("a woman standing in a doorway", True),
            ("a woman walking out of an office", False),
        ),
    ),
    Stream(
        "night chase (cross-cutting)",
        (
            ("a car driving down a street at night", False),
            ("a car driving down a dark street", True),
            ("a man running down an alley", False),
            ("a car driving down a city street at night", True),
            ("a police car with flashing lights", False),
            ("a man running through an alley", True),
            ("a man climbing over a fence", False),
            ("there is a man that is climbing over a fence", True),
            ("a police car with its lights on", True),
        ),
    ),
    Stream(
        "beach",
        (
            ("a dog running on the beach", False),
            ("a dog runs along the beach", True),
            ("a woman throwing a ball", False),
            ("there is a dog that is running on the beach", True),
            ("a woman throwing a ball on the beach", True),
            ("a sunset over the ocean", False),
            ("a dog running along the beach", True),
            ("a dog swimming in the ocean", False),
            ("a woman sitting on the sand", False),
        ),
    ),
    Stream(
        "kitchen (new events in one place)",
        (
            ("a woman cooking in a kitchen", False),
            ("a woman cooking food in a kitchen", True),
            ("a man walking into the kitchen", False),
            ("a woman crying in a kitchen", False),
            ("a man hugging a woman in a kitchen", False),
            ("a close up of a pot on a stove", False),
            ("a man and a woman sitting at a kitchen table", False),
        ),
    ),
    Stream(
        "dinner (one place, changing action)",
        (
            ("a man sitting at a table", False),
            ("a woman walking into a room", False),
            ("a man standing up from a table", False),
            ("a woman sitting down at a table", False),
            ("a man pouring wine into a glass", False),
            ("a man pouring a glass of wine", True),
            ("a woman sitting at a table", True),
        ),
    ),
    Stream(
        "fight (one place, changing action)",
        (
            ("two men talking in a room", False),
            ("two men are talking in a room", True),
            ("two men fighting in a room", False),
            ("a man falling to the floor", False),
            ("a man lying on the floor", False),
            ("a man getting up from the floor", False),
        ),
    ),
    Stream(
        "mountain (one long shot, then a new subject)",
        (
            ("a mountain covered in snow", False),
            ("a snowy mountain under a blue sky", True),
            ("a picture of a mountain with snow on it", True),
            ("a view of a snow covered mountain", True),
            ("a person skiing down a mountain", False),
            ("a skier going down a snowy slope", True),
        ),
    ),
)
