"""Where the scan's wall time goes, on any videos and any number of cores (issue 12): wall and
CPU seconds of a plain decode with all threads (PyAV: the stand-in for ``ffmpeg -f null``
where no ffmpeg command is installed, as on the GPU machines), of the reader's decode alone
and with the frames scaled down, of the full scan and of the keyframe scan.

    .venv/bin/python bench/scan_wall.py VIDEO [VIDEO ...] [--repeats 3] [--join N]

Each row is the median of ``--repeats`` runs in this process. "reader" rows use
``VideoReader.frames`` (non-reference frames skipped, as the scans do); "+ detectors" adds
``CutDetector`` on the main thread, one frame after the other, as the full scan did before
it decoded ahead (``app.pipeline.readahead``); then the full scan in chunks by
``--workers`` processes (``app.pipeline.chunks``). ``--parallel 1,2,4`` adds the keyframe
scan with that many stretches decoded at once (``video.PARALLEL_DECODES`` threads and
``scan.STRETCHES_AHEAD``, set before each run; 1: one stretch after another, each knowing
how the scenes before it ended). "same" says whether a scan found the full scan's scenes
and frames. ``--join N`` measures each video joined to itself N times without re-encoding
(a long film from a short clip: the keyframe pass and the stretches grow with it, the
start-up does not), written under ``--workdir``. The bench never edits ``app/``: it sets
those two module constants.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.pipeline import scan, video
from app.pipeline.chunks import cores
from app.pipeline.scan import list_scenes
from app.pipeline.scenes import CutDetector, KeyframeRule, ScanMode, SceneOptions
from app.pipeline.video import VideoReader, film_stream
from bench.common import DEFAULT_WORKDIR, concatenate, timed


def decode_all(path: Path) -> int:
    """Frames decoded by PyAV with all threads: the stand-in for ``ffmpeg -f null``."""
    with av.open(str(path)) as container:
        stream = film_stream(container)
        assert stream is not None, f"{path} has no video stream"
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def _reader(*, small: bool = False, detect: bool = False) -> Callable[[Path], int]:
    def run(path: Path) -> int:
        options = SceneOptions()
        with VideoReader(path, skip_nonref=options.skip_nonref_frames) as reader:
            cuts = CutDetector(options, reader.info.frame_rate)
            count = 0
            for decoded in reader.frames():
                count += 1
                if small or detect:
                    frame = decoded.to_small_bgr(options.analysis_width)
                    if detect:
                        cuts.feed(decoded.time, frame)
        return count

    return run


Scenes = list[tuple[float, float, float | None]]


def _scan(mode: ScanMode, rule: KeyframeRule | None = None) -> Callable[[Path], Scenes]:
    options = SceneOptions(scan=mode, keyframes=rule or KeyframeRule())
    return functools.partial(_scenes, options=options)


def _scenes(path: Path, options: SceneOptions) -> Scenes:
    return [
        (listed.scene.start, listed.scene.end, listed.frame_time)
        for listed in list_scenes(path, options, 1.0)
    ]


def _at_once(stretches: int) -> Callable[[Path], Scenes]:
    """The keyframe scan with ``stretches`` decoded at once."""
    keyframes = _scan(ScanMode.KEYFRAMES)

    def run(path: Path) -> Scenes:
        with _parallel(stretches):
            return keyframes(path)

    return run


@contextmanager
def _parallel(stretches: int) -> Iterator[None]:
    before = video.PARALLEL_DECODES, scan.STRETCHES_AHEAD
    # As by default, one started ahead per thread; one alone knows how the scenes before ended.
    video.PARALLEL_DECODES, scan.STRETCHES_AHEAD = stretches, stretches if stretches > 1 else 0
    try:
        yield
    finally:
        video.PARALLEL_DECODES, scan.STRETCHES_AHEAD = before


ROWS: list[tuple[str, Callable[[Path], Any]]] = [
    ("decode, all threads (frames)", decode_all),
    ("reader decode (frames)", _reader()),
    ("reader + scale down (frames)", _reader(small=True)),
    ("reader + scale down + detectors, one thread (frames)", _reader(detect=True)),
    ("full scan (scenes)", _scan(ScanMode.FULL)),
    ("keyframe scan (scenes)", _scan(ScanMode.KEYFRAMES)),
    (
        "keyframe scan, never handing over (scenes)",
        _scan(ScanMode.KEYFRAMES, KeyframeRule(most_refined=1.0)),
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each row (median)")
    parser.add_argument(
        "--workers",
        type=int,
        default=max(2, cores() // 2),
        help="processes of the chunked full scan row (default: half the cores, at least 2)",
    )
    parser.add_argument("--chunk", type=float, default=60.0, help="seconds per chunk (60)")
    parser.add_argument(
        "--parallel",
        default="",
        help="comma-separated stretch counts for keyframe scan rows decoding them at once",
    )
    parser.add_argument(
        "--join", type=int, default=1, help="measure each video joined to itself N times"
    )
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    args = parser.parse_args()
    if args.join < 1:
        parser.error(f"--join takes 1 or more, got {args.join}")
    counts = [int(text) for text in args.parallel.split(",") if text]
    if any(count < 1 for count in counts):
        parser.error(f"--parallel takes counts of 1 or more, got {args.parallel!r}")
    chunked = SceneOptions(workers=args.workers, chunk_length=args.chunk)
    rows: list[tuple[str, Callable[[Path], Any]]] = [
        *ROWS,
        (
            f"full scan, {args.workers} workers, {args.chunk:g} s chunks (scenes)",
            functools.partial(_scenes, options=chunked),
        ),
        *((f"keyframe scan, {count} at once (scenes)", _at_once(count)) for count in counts),
    ]
    print(f"{os.cpu_count()} CPUs, PyAV {av.__version__}")
    print("video | row | wall s | CPU s | count | same")
    for given in args.videos:
        path = given
        if args.join > 1:
            path = args.workdir / f"{given.stem}-joined{args.join}{given.suffix}"
            args.workdir.mkdir(parents=True, exist_ok=True)
            concatenate([given] * args.join, path)
        full: Scenes | None = None
        for name, run in rows:
            runs = [timed(functools.partial(run, path)) for _ in range(args.repeats)]
            found = runs[-1][1]
            if isinstance(found, int):
                count, same = found, ""
            else:
                full = found if full is None else full
                count, same = len(found), "yes" if found == full else "NO"
            print(
                f"{path.name} | {name} | {statistics.median(t.wall for t, _ in runs):.2f} | "
                f"{statistics.median(t.cpu for t, _ in runs):.2f} | {count} | {same}",
                flush=True,
            )


if __name__ == "__main__":
    main()
