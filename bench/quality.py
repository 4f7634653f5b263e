"""Score a run's descriptions against reference audio descriptions: CIDEr-D, METEOR and how
well their timing overlaps.

Run from the repository root, after ``describe ... --format json -o RUN.json``::

    .venv/bin/python bench/quality.py REFERENCES.csv RUN.json [VIDEO=RUN.json ...] [--json]

A run is the CLI's ``--format json`` output: a JSON array of descriptions, each with
``start``, ``end`` (the pause it is narrated in, seconds) and ``text``. Its video is the
file's stem (``tt0113497.json`` is video ``tt0113497``), or the ``VIDEO=`` before its path.

The references are a CSV file with a header row and one audio description per row in the
columns ``video`` (the id the runs are named by), ``start`` and ``end`` (seconds) and
``text``; other columns are ignored. It is the shape of the public annotation files of
TV-AD, CMD-AD and MAD-Eval (one row per AD with its video id, start, end and text); where
their columns are named otherwise (``imdbid``, ``start_time`` ...), name them with
``--video-column``, ``--start-column``, ``--end-column`` and ``--text-column``.

Scores, over the references of the videos that have a run:

* **CIDEr-D** and **METEOR** of each reference AD against the text of the run's descriptions
  whose windows overlap it in time (joined in time order; none: an empty hypothesis, which
  scores 0), the usual way of the AutoAD papers' evaluation. CIDEr-D is
  ``pycocoevalcap.cider`` (Vedantam, Zitnick and Parikh, "CIDEr: Consensus-based Image
  Description Evaluation", CVPR 2015; the ``-D`` variant with the Gaussian length penalty,
  sigma 6, and clipped counts that coco-caption computes), with its document frequencies taken
  from the references scored, so it is comparable between runs on the same references only.
  Texts are lower-cased and split into words (letters and digits, any script), without the
  Java PTB tokenizer. METEOR is NLTK's with WordNet synonyms, which are English: on other
  languages it is exact and stem-free word matching only (use CIDEr-D there).
* **Timing**: the seconds covered by the runs' windows and by the references, per video:
  precision (share of described time that is within a reference AD), recall (share of
  reference AD time that is described) and their intersection over union.

No model runs here: the script scores files, so it works on any machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

# A script run by path gets its own folder on sys.path, not the repository root.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from app.pipeline.types import Interval  # noqa: E402

_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Segment:
    """One timed text: a reference AD or a description of a run."""

    video: str
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Scores:
    """What one comparison gives."""

    references: int
    """Reference ADs scored."""
    cider_d: float
    """CIDEr-D (coco-caption scale: 0 and up, 10 is a perfect match)."""
    meteor: float
    """Mean METEOR, 0..1."""
    timing_precision: float
    """Share of the described seconds that fall within a reference AD."""
    timing_recall: float
    """Share of the reference AD seconds that are described."""
    timing_iou: float
    """Seconds both cover over seconds either covers."""


class QualityInputError(ValueError):
    """A references file or a run cannot be read; the message says which and why."""


def words(text: str) -> list[str]:
    """Lower-case words (letters and digits, any script) of a text."""
    return _WORD.findall(text.lower())


def read_references(
    path: Path,
    *,
    video: str = "video",
    start: str = "start",
    end: str = "end",
    text: str = "text",
) -> list[Segment]:
    """Read reference ADs from a CSV file with a header row.

    Raises:
        QualityInputError: A column is missing or a time is not a number.
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in (video, start, end, text) if c not in (reader.fieldnames or ())]
        if missing:
            raise QualityInputError(
                f"{path}: no column {', '.join(map(repr, missing))}; the header has "
                f"{', '.join(reader.fieldnames or ()) or 'nothing'}"
            )
        segments = []
        for line, row in enumerate(reader, start=2):
            try:
                segments.append(Segment(row[video], float(row[start]), float(row[end]), row[text]))
            except ValueError as exc:
                raise QualityInputError(f"{path}, line {line}: {exc}") from exc
    return segments


def read_run(path: Path, video: str) -> list[Segment]:
    """Read a run (the CLI's ``--format json`` output) as segments of ``video``.

    Raises:
        QualityInputError: The file is not a JSON array of descriptions.
    """
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
        return [Segment(video, float(d["start"]), float(d["end"]), str(d["text"])) for d in items]
    except (ValueError, KeyError, TypeError) as exc:
        raise QualityInputError(
            f"{path}: not a run's JSON (an array of descriptions with start, end and text): {exc}"
        ) from exc


def _union(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for interval in sorted(intervals, key=lambda i: i.start):
        if merged and interval.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = Interval(last.start, max(last.end, interval.end))
        else:
            merged.append(interval)
    return merged


def _length(intervals: Sequence[Interval]) -> float:
    return sum(i.duration for i in intervals)


def _intersection(first: Sequence[Interval], second: Sequence[Interval]) -> float:
    return sum(max(0.0, min(a.end, b.end) - max(a.start, b.start)) for a in first for b in second)


def score(references: Sequence[Segment], run: Sequence[Segment]) -> Scores:
    """Score a run's descriptions against reference ADs (see the module docstring).

    Raises:
        QualityInputError: There is no reference to score against.
    """
    from nltk.translate.meteor_score import meteor_score
    from pycocoevalcap.cider.cider import Cider

    from app.pipeline.wordnet import load_wordnet

    if not references:
        raise QualityInputError("no reference ADs to score against")
    wordnet = load_wordnet()
    hypotheses: dict[int, list[str]] = {}
    truths: dict[int, list[str]] = {}
    meteors = []
    for index, reference in enumerate(references):
        overlapping = sorted(
            (d for d in run if d.video == reference.video and _overlap(d, reference) > 0),
            key=lambda d: d.start,
        )
        hypothesis = words(" ".join(d.text for d in overlapping))
        truth = words(reference.text)
        hypotheses[index] = [" ".join(hypothesis)]
        truths[index] = [" ".join(truth)]
        meteors.append(meteor_score([truth], hypothesis, wordnet=wordnet) if hypothesis else 0.0)
    cider, _ = Cider().compute_score(truths, hypotheses)
    covered = described = both = 0.0
    for video in {r.video for r in references}:
        ads = _union(Interval(r.start, r.end) for r in references if r.video == video)
        ours = _union(Interval(d.start, d.end) for d in run if d.video == video)
        covered += _length(ads)
        described += _length(ours)
        both += _intersection(ads, ours)
    union = covered + described - both
    return Scores(
        references=len(references),
        cider_d=float(cider),
        meteor=sum(meteors) / len(meteors),
        timing_precision=both / described if described else 0.0,
        timing_recall=both / covered if covered else 0.0,
        timing_iou=both / union if union else 0.0,
    )


def _overlap(a: Segment, b: Segment) -> float:
    return min(a.end, b.end) - max(a.start, b.start)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the scores of the runs given; returns the exit status (1 on unreadable input)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("references", type=Path, help="CSV of reference ADs")
    parser.add_argument("runs", nargs="+", help="RUN.json or VIDEO=RUN.json")
    parser.add_argument("--video-column", default="video")
    parser.add_argument("--start-column", default="start")
    parser.add_argument("--end-column", default="end")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = parser.parse_args(argv)
    try:
        references = read_references(
            args.references,
            video=args.video_column,
            start=args.start_column,
            end=args.end_column,
            text=args.text_column,
        )
        run: list[Segment] = []
        videos = []
        for given in args.runs:
            video, _, path = given.rpartition("=")
            video = video or Path(path).stem
            videos.append(video)
            run.extend(read_run(Path(path), video))
        scored = [r for r in references if r.video in videos]
        result = score(scored, run)
    except (QualityInputError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        print(f"{len(videos)} video(s), {result.references} reference ADs")
        for name, value in asdict(result).items():
            if name != "references":
                print(f"{name:<17} {value:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
