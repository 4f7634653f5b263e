"""The full scan in chunks by worker processes against the full scan in one process, on any
videos: whether they find the same scenes and frames, and the wall and CPU seconds of each.

    .venv/bin/python bench/chunk_parity.py VIDEO [VIDEO ...] [--workers N] [--chunk SECONDS]

Each scan runs ``list_scenes`` (the scan of ``describe`` and ``scenes``), alternated,
``--repeats`` times; the medians are printed, CPU seconds counting the worker processes.
"Same" compares every scene's start, end and frame time to the microsecond; otherwise the
scenes only one of them found are listed. Use a ``--chunk`` shorter than the default 60 s
to put many seams into short clips. The bench never edits ``app/``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.pipeline.chunks import chunk_bounds, cores
from app.pipeline.scan import list_scenes
from app.pipeline.scenes import SceneOptions
from app.pipeline.video import VideoReader
from bench.common import Timing, timed

Listed = tuple[float, float, float | None]


def scan(video: Path, options: SceneOptions) -> tuple[Timing, list[Listed]]:
    """``list_scenes`` timed (CPU seconds count the worker processes); each scene's start,
    end and frame time rounded to the microsecond, to compare scans with ``==``."""
    return timed(
        lambda: [
            (
                round(found.scene.start, 6),
                round(found.scene.end, 6),
                None if found.frame_time is None else round(found.frame_time, 6),
            )
            for found in list_scenes(video, options, 1.0)
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument(
        "--workers", type=int, default=max(2, cores() // 2), help="worker processes"
    )
    parser.add_argument("--chunk", type=float, default=60.0, help="seconds per chunk")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each scan (median)")
    args = parser.parse_args()
    one = SceneOptions()
    chunked = SceneOptions(workers=args.workers, chunk_length=args.chunk)
    print(f"{args.workers} workers, chunks of about {args.chunk:g} s")
    print("video | chunks | scenes | same | one process wall / CPU s | chunked wall / CPU s")
    for video in args.videos:
        with VideoReader(video) as reader:
            duration = reader.info.duration or 0.0
        runs: dict[str, list[tuple[Timing, list[Listed]]]] = {"one": [], "chunked": []}
        for _ in range(args.repeats):
            runs["one"].append(scan(video, one))
            runs["chunked"].append(scan(video, chunked))
        alone, split = runs["one"][-1][1], runs["chunked"][-1][1]
        timings = " | ".join(
            f"{statistics.median(r[0].wall for r in runs[name]):.2f} / "
            f"{statistics.median(r[0].cpu for r in runs[name]):.2f}"
            for name in ("one", "chunked")
        )
        print(
            f"{video.name} | {len(chunk_bounds(duration, args.chunk)) - 1} | {len(alone)} | "
            f"{'yes' if split == alone else 'NO'} | {timings}"
        )
        if split != alone:
            print(f"  only in one process: {sorted(set(alone) - set(split))}")
            print(f"  only in chunks:      {sorted(set(split) - set(alone))}")


if __name__ == "__main__":
    main()
