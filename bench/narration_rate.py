"""Narration rate: how many words per second espeak-ng actually speaks, in English and Russian.

The word budget of each description (``words_per_second``, DESCRIBER_WORDS_PER_SECOND) is an
estimate of how much the narrator can say in a pause; narration measures the truth. This
script speaks a fixed set of description-like sentences (as ``clean_caption`` writes them:
present tense, one sentence, 5 to 12 words) in each language with the default engine and
voice, at the given rates (speed 1.0 is espeak-ng's 175 words per minute), cuts the leading
and trailing silence as narration does, and prints words per second: the total words over the
total spoken seconds, and the slowest sentence's rate (the one a budget must not exceed).

Run::

    .venv/bin/python -m bench.narration_rate [--rates 1.0 1.25]
"""

from __future__ import annotations

import argparse

from app.pipeline.narration import Narrator
from app.pipeline.tts import TtsOptions, load_engine
from app.pipeline.types import Description

SENTENCES = {
    "en": [
        "A woman opens a red door.",
        "A man in a dark coat walks along a wet street at night.",
        "Two children run across a wooden bridge.",
        "A car drives slowly through the snow.",
        "An old man sits alone on a bench in the park.",
        "The detective picks up a letter from the floor.",
        "A dog jumps into the lake.",
        "Soldiers march past a burning house.",
        "A girl looks out of the window at the rain.",
        "A crowd gathers in front of the station.",
        "She hides the key under a flower pot.",
        "A boat sails towards the lighthouse at sunset.",
    ],
    "ru": [
        "Женщина открывает красную дверь.",
        "Мужчина в тёмном пальто идёт по мокрой улице ночью.",
        "Двое детей бегут по деревянному мосту.",
        "Машина медленно едет по снегу.",
        "Старик сидит один на скамейке в парке.",
        "Детектив поднимает письмо с пола.",
        "Собака прыгает в озеро.",
        "Солдаты проходят мимо горящего дома.",
        "Девочка смотрит в окно на дождь.",
        "Толпа собирается перед вокзалом.",
        "Она прячет ключ под цветочным горшком.",
        "Лодка плывёт к маяку на закате.",
    ],
}


def measure(language: str, rate: float) -> tuple[int, float, float]:
    """Words, spoken seconds and the slowest sentence's words per second."""
    narrator = Narrator(load_engine(TtsOptions(language=language, rate=rate)))
    words, seconds, slowest = 0, 0.0, float("inf")
    for text in SENTENCES[language]:
        # A window long enough that nothing is sped up or shortened.
        item = Description(0.0, 60.0, 0.0, 0, 0.0, 60.0, text, 0.0, 100, True)
        spoken = narrator.narrate(item).description.spoken_duration or 0.0
        count = len(text.split())
        words += count
        seconds += spoken
        slowest = min(slowest, count / spoken)
    return words, seconds, slowest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[1.0, 1.25])
    args = parser.parse_args()
    print("language  rate  words  seconds  words/s  slowest sentence words/s")
    for language in SENTENCES:
        for rate in args.rates:
            words, seconds, slowest = measure(language, rate)
            print(
                f"{language:8}  {rate:4.2f}  {words:5d}  {seconds:7.2f}  {words / seconds:7.2f}"
                f"  {slowest:6.2f}"
            )


if __name__ == "__main__":
    main()
