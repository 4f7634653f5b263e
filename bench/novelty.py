"""Measure the novelty scorers on labelled captions: precision and recall of "repeat".

Run from the repository root::

    .venv/bin/python bench/novelty.py                # English pairs
    .venv/bin/python bench/novelty.py --language ru  # their Russian versions

Prints, for each scorer in :data:`app.pipeline.novelty.SCORERS`: precision, recall and F1 of
"repeat" on the pairs of ``bench/novelty_pairs.py`` at the scorer's default threshold, on the
captions as the model wrote them and after :func:`app.pipeline.cleanup.clean_caption`; the
errors at the default; every pair's score; a threshold sweep; and the same figures on the
caption streams for history lengths 1 to 5. With ``--language ru`` the pairs and streams of
``bench/novelty_pairs_ru.py`` are scored as written (``clean_caption`` is English). Every
scorer is run in every language, also those not made for it, to compare. Deterministic: the
same numbers on every run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# A script run by path gets its own folder on sys.path, not the repository root.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import novelty_pairs  # noqa: E402
import novelty_pairs_ru  # noqa: E402
from novelty_pairs import Pair  # noqa: E402

from app.pipeline.cleanup import clean_caption  # noqa: E402
from app.pipeline.novelty import SCORERS, NoveltyFilter, NoveltyScorer, scorer_spec  # noqa: E402

SWEEP = tuple(
    sorted(
        {round(0.30 + 0.05 * step, 2) for step in range(14)}
        | {s.threshold for s in SCORERS.values()}
    )
)
HISTORIES = (1, 2, 3, 5)


def _identity(text: str) -> str:
    return text


PREPARE: dict[str, Callable[[str], str]] = {"raw": _identity, "cleaned": clean_caption}
#: Labelled pairs and streams by language.
LANGUAGES = {"en": novelty_pairs, "ru": novelty_pairs_ru}


def counts(predicted: Sequence[bool], actual: Sequence[bool]) -> tuple[int, int, int]:
    """True positives, false positives and false negatives of "repeat"."""
    tp = sum(p and a for p, a in zip(predicted, actual, strict=True))
    fp = sum(p and not a for p, a in zip(predicted, actual, strict=True))
    fn = sum(a and not p for p, a in zip(predicted, actual, strict=True))
    return tp, fp, fn


def prf(predicted: Sequence[bool], actual: Sequence[bool]) -> tuple[float, float, float]:
    """Precision, recall and F1 of "repeat" (0.0 where undefined)."""
    tp, fp, fn = counts(predicted, actual)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def score_pairs(
    scorer: NoveltyScorer, pairs: Sequence[Pair], prepare: Callable[[str], str]
) -> list[float]:
    """Each pair's similarity, the captions passed through ``prepare`` first."""
    return [scorer.similarity(prepare(p.previous), prepare(p.current)) for p in pairs]


def run_stream(
    scorer: NoveltyScorer,
    threshold: float,
    history: int,
    captions: Sequence[str],
) -> list[bool]:
    """Whether a filter calls each caption after the first of a stream a repeat."""
    novelty = NoveltyFilter(scorer, threshold, history=history)
    verdicts = [not novelty.check(caption)[0] for caption in captions]
    return verdicts[1:]


def _row(label: str, predicted: Sequence[bool], actual: Sequence[bool]) -> str:
    precision, recall, f1 = prf(predicted, actual)
    tp, fp, fn = counts(predicted, actual)
    return (
        f"{label:<34} {precision:>9.3f} {recall:>6.3f} {f1:>6.3f}   "
        f"tp={tp:<2} fp={fp:<2} fn={fn:<2}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print the measurement tables.

    Args:
        argv: Command-line arguments; ``--scorers`` picks scorers by name.

    Returns:
        The exit status, 0.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorers", nargs="+", default=list(SCORERS), choices=list(SCORERS))
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: two-caption batches gain nothing from more, and "
        "on a busy machine more threads made each call 15 times slower)",
    )
    parser.add_argument("--language", choices=list(LANGUAGES), default="en")
    args = parser.parse_args(argv)
    labelled = LANGUAGES[args.language]
    PAIRS, STREAMS = labelled.PAIRS, labelled.STREAMS
    prepares = PREPARE if args.language == "en" else {"raw": _identity}
    if "semantic" in args.scorers:
        import torch

        torch.set_num_threads(args.threads)

    actual = [pair.is_repeat for pair in PAIRS]
    repeats = sum(actual)
    print(f"{len(PAIRS)} pairs: {repeats} repeats, {len(PAIRS) - repeats} new")
    scorers = {name: scorer_spec(name).factory() for name in args.scorers}
    scores = {
        (name, mode): score_pairs(scorer, PAIRS, prepare)
        for name, scorer in scorers.items()
        for mode, prepare in prepares.items()
    }

    print("\n== Pairs at each scorer's default threshold ==")
    print(f"{'scorer (threshold, captions)':<34} precision recall     F1")
    for (name, mode), values in scores.items():
        threshold = scorer_spec(name).threshold
        predicted = [value >= threshold for value in values]
        print(_row(f"{name} ({threshold}, {mode})", predicted, actual))

    print("\n== Recall of 'repeat' / share of new pairs kept new, by kind, at the default ==")
    kinds = list(dict.fromkeys(pair.kind for pair in PAIRS))
    print(f"{'scorer, captions':<22}" + "".join(f"{kind:>12}" for kind in kinds))
    for (name, mode), values in scores.items():
        threshold = scorer_spec(name).threshold
        cells = []
        for kind in kinds:
            chosen = [
                (value, pair.is_repeat)
                for value, pair in zip(values, PAIRS, strict=True)
                if pair.kind == kind
            ]
            right = sum((value >= threshold) == is_repeat for value, is_repeat in chosen)
            cells.append(f"{right:>9}/{len(chosen):<2}")
        print(f"{name + ', ' + mode:<22}" + "".join(cells))

    print("\n== Each pair's score (raw captions); * marks a wrong verdict at the default ==")
    names = list(scorers)
    print("".join(f"{name:>10}" for name in names) + "  label   previous | current")
    for index, pair in enumerate(PAIRS):
        cells = []
        for name in names:
            value = scores[(name, "raw")][index]
            wrong = (value >= scorer_spec(name).threshold) != pair.is_repeat
            cells.append(f"{value:>9.3f}{'*' if wrong else ' '}")
        label = "repeat" if pair.is_repeat else "new"
        print("".join(cells) + f"  {label:<7} {pair.previous} | {pair.current}")

    print("\n== Threshold sweep on pairs: precision / recall / F1 of 'repeat' ==")
    columns = [key for key in scores]
    print(f"{'threshold':>9}" + "".join(f"{name + ', ' + mode:>22}" for name, mode in columns))
    for threshold in SWEEP:
        cells = []
        for key in columns:
            predicted = [value >= threshold for value in scores[key]]
            precision, recall, f1 = prf(predicted, actual)
            cells.append(f"{precision:>10.2f} {recall:.2f} {f1:.2f}")
        print(f"{threshold:>9.2f}" + "".join(cells))

    stream_actual = [is_repeat for stream in STREAMS for _, is_repeat in stream.captions[1:]]
    stream_repeats = sum(stream_actual)
    print(
        f"\n== Streams ({len(STREAMS)} streams, {len(stream_actual)} captions after the first: "
        f"{stream_repeats} repeats), default thresholds, by history =="
    )
    print(f"{'scorer, history, captions':<34} precision recall     F1")
    for name, scorer in scorers.items():
        threshold = scorer_spec(name).threshold
        for mode, prepare in prepares.items():
            for history in HISTORIES:
                predicted = [
                    verdict
                    for stream in STREAMS
                    for verdict in run_stream(
                        scorer, threshold, history, [prepare(text) for text, _ in stream.captions]
                    )
                ]
                print(_row(f"{name}, history {history}, {mode}", predicted, stream_actual))

    print("\n== Stream errors at each scorer's defaults (raw captions) ==")
    for name, scorer in scorers.items():
        spec = scorer_spec(name)
        for stream in STREAMS:
            texts = [text for text, _ in stream.captions]
            verdicts = run_stream(scorer, spec.threshold, spec.history, texts)
            for (text, is_repeat), verdict in zip(stream.captions[1:], verdicts, strict=True):
                if verdict != is_repeat:
                    wrong = "repeat" if verdict else "new"
                    where = f"{name} (history {spec.history}), {stream.name}"
                    print(f"{where}: {text!r} called {wrong}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
