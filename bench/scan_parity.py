"""The keyframe scan against the full scan on any videos (issue 12): the cuts of each, how
far apart, the share the keyframe scan decoded fully, and the CPU seconds of each.

    .venv/bin/python bench/scan_parity.py VIDEO [VIDEO ...] [--repeats N] [--always]

The full scan is the reference: a keyframe-scan cut more than ``--tolerance`` frames from
every full-scan cut is false, a full-scan cut with none that near is missed, and F1 follows.
Each scan runs ``list_scenes`` (the scan of ``describe`` and ``scenes``) in this process,
alternated, ``--repeats`` times; the median CPU seconds (user + system, every thread) are
printed, and how many of the scenes both scans found (same start and end) have the same
frame (its time to the microsecond). ``--always`` keeps the keyframe scan on its own path
however much it would decode fully (``KeyframeRule.most_refined`` 1), to see its cuts where
it would hand over to the full scan. The bench never edits ``app/``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.pipeline.scenes import KeyframeRule, ScanMode, SceneOptions
from app.pipeline.video import VideoReader
from bench.chunk_parity import Listed, scan


class _Plans(logging.Handler):
    """Keeps the keyframe scan's log lines that say what it decoded."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "decode fully" in message or "pass stops" in message:
            self.lines.append(message.split(": ", 1)[1])


def _same_frames(full: list[Listed], fast: list[Listed]) -> str:
    """Of the scenes both found, how many have the same frame."""
    frames = {(start, end): frame for start, end, frame in fast}
    both = [(start, end, frame) for start, end, frame in full if (start, end) in frames]
    same = sum(1 for start, end, frame in both if frames[start, end] == frame)
    return f"{same} / {len(both)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each scan (median)")
    parser.add_argument("--tolerance", type=float, default=2, help="frames a cut may be off")
    parser.add_argument("--always", action="store_true", help="never hand over to the full scan")
    args = parser.parse_args()
    plans = _Plans()
    logging.getLogger("app.pipeline.scan").addHandler(plans)
    logging.getLogger("app.pipeline.scan").setLevel(logging.INFO)
    rule = KeyframeRule(most_refined=1.0) if args.always else KeyframeRule()
    full_options = SceneOptions(scan=ScanMode.FULL)
    keyframe_options = SceneOptions(scan=ScanMode.KEYFRAMES, keyframes=rule)
    print("video | full scan CPU s | keyframe scan CPU s | speed | cuts full / keyframe | "
          "F1 | missed | false | same frames | keyframe plan")  # fmt: skip
    for video in args.videos:
        with VideoReader(video) as reader:
            tolerance = (args.tolerance + 0.5) / float(reader.info.frame_rate)
        full_times: list[float] = []
        keyframe_times: list[float] = []
        full_scenes: list[Listed] = []
        fast_scenes: list[Listed] = []
        for _ in range(args.repeats):
            plans.lines.clear()
            timing, full_scenes = scan(video, full_options)
            full_times.append(timing.cpu)
            timing, fast_scenes = scan(video, keyframe_options)
            keyframe_times.append(timing.cpu)
        full = [start for start, _, _ in full_scenes[1:]]
        fast = [start for start, _, _ in fast_scenes[1:]]
        missed = [cut for cut in full if all(abs(cut - other) > tolerance for other in fast)]
        false = [cut for cut in fast if all(abs(cut - other) > tolerance for other in full)]
        found = len(full) - len(missed)
        f1 = 2 * found / (len(full) + len(fast)) if full or fast else 1.0
        full_cpu = statistics.median(full_times)
        keyframe_cpu = statistics.median(keyframe_times)
        print(
            f"{video.name} | {full_cpu:.2f} | {keyframe_cpu:.2f} | {full_cpu / keyframe_cpu:.2f}x"
            f" | {len(full)} / {len(fast)} | {f1:.3f} | {[round(c, 2) for c in missed]}"
            f" | {[round(c, 2) for c in false]} | {_same_frames(full_scenes, fast_scenes)}"
            f" | {'; '.join(plans.lines)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
