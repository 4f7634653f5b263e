"""Benchmark 1, scenes: the project's one-pass scan against PySceneDetect and plain ffmpeg.

Measures, on a generated 1080p bench video with known cuts (default 3 min, 25 fps, about
30 cuts of which several fade through black; see ``bench/common.py``):

* ``--encoding``: the bench video as built (each shot encoded apart, so a keyframe on every
  cut) or re-encoded from it (``bench/common.py`` ``ENCODINGS``): ``x264-default`` (x264's
  own keyframe placement), ``x264-fixed-gop`` (a keyframe every 2 s, none at cuts), ``vp9``.
  ``--video FILE`` measures any film instead, its cuts scored against ffmpeg's ``scdet``.
* ``ffmpeg -i X -f null -``: plain decoding (default threads, and one).
* the keyframe scan (``SceneOptions.scan`` ``keyframes``, issue 12) and the full scan
  (``full``, the default), both through ``describe()`` as below; and the full scan in
  chunks by ``--workers`` processes (``SceneOptions.workers``, ``app/pipeline/chunks.py``).
* the project's scan: ``app.pipeline.describe()`` with a captioner that does no work, no
  speech information (so every scene is a candidate and its frame is grabbed and converted
  to a full-size RGB image, as for a video without subtitles) and a novelty scorer that
  keeps everything. That is decoding, downscaling, cut detection (AdaptiveDetector plus
  ThresholdDetector for fades), frame selection, the producer/consumer threads and the
  conversion of each scene's frame: scene detection and frame grabbing, minus the model.
  By default it decodes only reference frames (``SceneOptions.skip_nonref_frames``); the
  row "every frame decoded" is the same scan decoding every frame.
* PySceneDetect's plain ``detect(path, AdaptiveDetector())`` (OpenCV backend, automatic
  downscaling to about 256 px wide, which the project also uses).
* Unless ``--no-breakdown``: single-threaded passes that add one stage at a time (PyAV
  decode; + downscale to BGR with ``DecodedFrame.to_small_bgr`` as the project does; + the
  detectors), reference frames only and every frame, and ``describe()`` decoding every
  frame with ``to_small_bgr`` patched (the bench never edits ``app/``): as before commit
  724608c (``VideoFrame.reformat`` per frame, a new swscale context and slice threads each
  time) and with swscale's cheaper ``FAST_BILINEAR`` filter,
  to show where the time goes and what the downscale costs in speed and in F1.

Both scans first run untimed up to their first description (``warm_up``). Every
measurement runs ``--repeats`` times, interleaved, in the same run; the median is
reported, wall clock and CPU seconds (user + system, all threads and child processes). On a
shared machine wall times scatter with the load: compare rows of one run only, and lean on
the CPU column when the runs of a row disagree.

Run::

    .venv/bin/python bench/scenes.py                 # 3 min 1080p, 2 repeats
    .venv/bin/python bench/scenes.py --duration 60   # quicker
    .venv/bin/python bench/scenes.py --video FILM --no-breakdown --rows ffmpeg,keyframes,full
                                                     # a long film: the scans beside ffmpeg
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from av.video.reformatter import VideoReformatter

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image

from app.models import CaptionRequest
from app.pipeline.chunks import cores
from app.pipeline.describe import DescribeOptions, describe
from app.pipeline.scenes import CutDetector, ScanMode, SceneOptions
from app.pipeline.video import DecodedFrame, VideoReader
from bench.common import (
    DEFAULT_TOLERANCE,
    ENCODINGS,
    BenchVideo,
    CutScore,
    Timing,
    add_common_arguments,
    bench_video,
    count_packets,
    encode_variant,
    film_end,
    film_index,
    load_average,
    log,
    machine_line,
    median,
    parse_size,
    scdet_cuts,
    score_cuts,
    seconds_to_frames,
    table,
    timed,
)

EVERY_FRAME = DescribeOptions(scenes=SceneOptions(scan=ScanMode.FULL, skip_nonref_frames=False))
"""The scan as before non-reference frames were skipped (``skip_nonref_frames`` off)."""
FULL_SCAN = DescribeOptions(scenes=SceneOptions(scan=ScanMode.FULL))
"""The full scan: every reference frame."""
KEYFRAME_SCAN = DescribeOptions(scenes=SceneOptions(scan=ScanMode.KEYFRAMES))
"""The keyframe-guided scan (issue 12)."""


@dataclass(frozen=True)
class Truth:
    """The cuts a scan is scored against."""

    source: str
    cut_frames: list[int]
    windows: dict[int, tuple[int, int]]
    """Fade cuts and the frames of their transition (see ``BenchVideo.fade_windows``)."""


class NullCaptioner:
    """A captioner that does no work: a distinct text per image, so nothing is dropped."""

    def __init__(self) -> None:
        self.captioned = 0

    def caption(
        self, images: Sequence[Image.Image], requests: Sequence[CaptionRequest] | None = None
    ) -> list[str]:
        texts = [f"scene{self.captioned + i}" for i in range(len(images))]
        self.captioned += len(images)
        return texts


class KeepAllScorer:
    """A novelty scorer that calls every caption new (similarity 0)."""

    def similarity(self, previous: str, current: str) -> float:
        return 0.0


@dataclass(frozen=True)
class Run:
    """One timed pass over the video."""

    timing: Timing
    cuts: list[int] | None = None
    """Detected cut frames, for the passes that detect cuts."""


def run_ffmpeg(path: Path, threads: int | None) -> Run:
    """``ffmpeg -i X -f null -``; ``threads`` None keeps ffmpeg's default (automatic)."""
    thread_args = [] if threads is None else ["-threads", str(threads)]
    cmd = [
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        *thread_args,
        "-i",
        str(path),
        "-map",
        f"0:{film_index(path)}",
        "-f",
        "null",
        "-",
    ]
    timing, _ = timed(lambda: subprocess.run(cmd, check=True))
    return Run(timing)


def run_project(path: Path, fps: float, options: DescribeOptions | None = None) -> Run:
    """The project's scan: describe() with a no-work captioner, every scene a candidate.

    The cuts are read from the descriptions' scene bounds, starts and ends, so a scene the
    pipeline skips (a frame near-identical to the last captioned one) loses no cut unless
    its neighbour is skipped too.
    """
    captioner = NullCaptioner()
    # Neither the start nor the end of the film is a cut (its declared duration may run
    # past the last frame: a longer audio track, a picture stream beside the film).
    last_frame = film_end(path) - 1 / fps

    def scan() -> list[float]:
        bounds: set[float] = set()
        for d in describe(path, captioner, speech=None, options=options, scorer=KeepAllScorer()):
            bounds.update((d.scene_start, d.scene_end))
        return sorted(b for b in bounds if 0 < b <= last_frame + 1e-6)

    timing, cuts = timed(scan)
    return Run(timing, seconds_to_frames(cuts, fps))


def warm_up(path: Path) -> None:
    """Both scans up to their first description, untimed: the imports and first-use set-up
    (OpenCV, the detectors) would otherwise be paid by whichever project pass runs first."""
    for options in (KEYFRAME_SCAN, FULL_SCAN):
        stop = threading.Event()
        for _ in describe(
            path, NullCaptioner(), options=options, scorer=KeepAllScorer(), stop=stop
        ):
            stop.set()


def run_pyscenedetect(path: Path) -> Run:
    """PySceneDetect's ``detect(path, AdaptiveDetector())``, as its README shows it."""
    from scenedetect import AdaptiveDetector, detect

    timing, scenes = timed(lambda: detect(str(path), AdaptiveDetector()))
    return Run(timing, [start.frame_num for start, _end in scenes[1:]])


# --- breakdown ---------------------------------------------------------------------------

Downscale = Callable[[DecodedFrame, int], np.ndarray]


def _small_size(frame: DecodedFrame, width: int) -> tuple[int, int]:
    return width, max(2, round(frame.frame.height * width / frame.frame.width))


def downscale_project(decoded: DecodedFrame, width: int) -> np.ndarray:
    """What the project does: ``DecodedFrame.to_small_bgr`` (one kept swscale context, bilinear)."""
    return decoded.to_small_bgr(width)


def downscale_per_frame(decoded: DecodedFrame, width: int) -> np.ndarray:
    """What the project did before 724608c: ``VideoFrame.reformat`` on every frame.

    That builds a new swscale context, with a pool of slice threads created and joined each
    time, for every frame; the project now keeps one ``VideoReformatter`` per video.
    """
    w, h = _small_size(decoded, width)
    return decoded.frame.reformat(width=w, height=h, format="bgr24").to_ndarray()


class KeptReformatter:
    """One ``VideoReformatter`` per thread for all frames, one slice thread, any filter."""

    def __init__(self, interpolation: str | None = None) -> None:
        self.interpolation = interpolation
        self._local = threading.local()

    def __call__(self, decoded: DecodedFrame, width: int) -> np.ndarray:
        reformatter = getattr(self._local, "reformatter", None)
        if reformatter is None:
            reformatter = self._local.reformatter = VideoReformatter()
        w, h = _small_size(decoded, width)
        return reformatter.reformat(
            decoded.frame,
            width=w,
            height=h,
            format="bgr24",
            interpolation=self.interpolation,
            threads=1,
        ).to_ndarray()


@contextmanager
def patched_to_small_bgr(downscale: Downscale) -> Iterator[None]:
    """Make ``DecodedFrame.to_small_bgr`` use ``downscale`` (the bench never edits app/)."""
    original = DecodedFrame.to_small_bgr

    def to_small_bgr(self: DecodedFrame, width: int) -> np.ndarray:
        if width <= 0 or width >= self.frame.width:
            return original(self, width)
        return downscale(self, width)

    setattr(DecodedFrame, "to_small_bgr", to_small_bgr)  # noqa: B010
    try:
        yield
    finally:
        setattr(DecodedFrame, "to_small_bgr", original)  # noqa: B010


def run_project_patched(path: Path, fps: float, downscale: Downscale) -> Run:
    """The project's scan, decoding every frame, with ``to_small_bgr`` replaced by ``downscale``."""
    with patched_to_small_bgr(downscale):
        return run_project(path, fps, EVERY_FRAME)


def run_stages(
    path: Path, fps: float, *, downscale: Downscale | None, detect: bool, skip_nonref: bool
) -> Run:
    """One single-threaded pass: decode, optionally downscale, optionally detect cuts."""
    options = SceneOptions(skip_nonref_frames=skip_nonref)

    def scan() -> list[float]:
        with VideoReader(path, skip_nonref=skip_nonref) as reader:
            cuts = CutDetector(options, reader.info.frame_rate)
            found: list[float] = []
            last = 0.0
            for decoded in reader.frames():
                last = decoded.time
                if downscale is None:
                    continue
                small = downscale(decoded, options.analysis_width)
                if detect:
                    found += cuts.feed(decoded.time, small)
            if detect:
                found += cuts.finish(last + 1 / float(reader.info.frame_rate))
            return found

    timing, found = timed(scan)
    return Run(timing, seconds_to_frames(found, fps) if detect else None)


# --- report ------------------------------------------------------------------------------


@dataclass
class Measure:
    """A named pass, run ``repeats`` times."""

    key: str
    """What ``--rows`` calls it."""
    name: str
    run: Callable[[], Run]
    runs: list[Run]
    detects: bool = False

    def seconds(self) -> float:
        return median([r.timing.wall for r in self.runs])

    def cpu(self) -> float:
        return median([r.timing.cpu for r in self.runs])


ROWS = ("ffmpeg", "ffmpeg-1", "keyframes", "pyscenedetect", "full", "chunks", "every-frame")
"""The rows ``--rows`` picks from (``Measure.key``), besides the breakdown's."""


def _rows(text: str) -> tuple[str, ...]:
    rows = tuple(row.strip() for row in text.split(",") if row.strip())
    unknown = [row for row in rows if row not in ROWS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown row {', '.join(unknown)}; the rows are {', '.join(ROWS)}"
        )
    if "ffmpeg" not in rows:
        raise argparse.ArgumentTypeError("the rows must include ffmpeg: every speed is against it")
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring (bench/scenes.py) for what each row measures.",
    )
    add_common_arguments(parser)
    parser.add_argument("--duration", type=float, default=180, help="seconds (default 180)")
    parser.add_argument(
        "--size", type=parse_size, default=(1920, 1080), help="WxH (default 1920x1080)"
    )
    parser.add_argument("--fps", type=int, default=25, help="frame rate (default 25)")
    parser.add_argument(
        "--tolerance",
        type=int,
        default=DEFAULT_TOLERANCE,
        help=f"frames a cut may be off and still count (default {DEFAULT_TOLERANCE})",
    )
    parser.add_argument(
        "--no-breakdown",
        dest="breakdown",
        action="store_false",
        help="skip the single-threaded passes that show where the project's time goes",
    )
    parser.add_argument(
        "--video",
        type=Path,
        help="measure this file instead; cuts are scored against ffmpeg's scdet",
    )
    parser.add_argument(
        "--encoding",
        choices=["bench", *ENCODINGS],
        default="bench",
        help="the bench video as built (shots encoded apart: a keyframe on every cut) or "
        "re-encoded: x264 defaults, a fixed 2 s GOP without scene-cut keyframes, VP9 "
        "(default: bench)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=max(2, cores() // 2),
        help="processes of the chunked full scan row (default: half the cores, at least 2)",
    )
    parser.add_argument(
        "--rows",
        type=_rows,
        default=ROWS,
        help=f"comma-separated rows to run, ffmpeg among them (default all: {','.join(ROWS)}); "
        "on a long film, e.g. ffmpeg,keyframes,full",
    )
    parser.add_argument(
        "--chunk",
        type=float,
        default=60.0,
        help="seconds of video per chunk in that row (default 60; a video shorter than two "
        "chunks is scanned in one process)",
    )
    args = parser.parse_args(argv)

    video: BenchVideo | None = None
    if args.video is None:
        video = bench_video(
            args.workdir,
            duration=args.duration,
            size=args.size,
            fps=args.fps,
            seed=args.seed,
            jobs=args.jobs,
        )
    if video is None:
        path: Path = args.video
        with VideoReader(path) as reader:
            fps = float(reader.info.frame_rate)
        log("finding reference cuts with ffmpeg scdet ...")
        truth = Truth("ffmpeg scdet (threshold 10)", scdet_cuts(path, fps), {})
        title = f"{path}: {count_packets(path)} frames"
    else:
        path, fps = video.path, float(video.fps)
        if args.encoding != "bench":
            path = encode_variant(video, args.encoding)
        truth = Truth("generated", video.cut_frames, video.fade_windows())
        title = f"{video.describe()}; measured on {path.name} ({args.encoding})"
    frames = count_packets(path)
    measures = [
        Measure("ffmpeg", "ffmpeg -f null (default threads)", lambda: run_ffmpeg(path, None), []),
        Measure("ffmpeg-1", "ffmpeg -f null -threads 1", lambda: run_ffmpeg(path, 1), []),
        Measure(
            "keyframes",
            "project: describe() keyframe scan",
            lambda: run_project(path, fps, KEYFRAME_SCAN),
            [],
            True,
        ),
        Measure(
            "pyscenedetect",
            "PySceneDetect detect(AdaptiveDetector())",
            lambda: run_pyscenedetect(path),
            [],
            True,
        ),
        Measure(
            "full",
            "project: describe() full scan, one process (default scan)",
            lambda: run_project(path, fps, FULL_SCAN),
            [],
            True,
        ),
        Measure(
            "chunks",
            f"project: describe() full scan, {args.workers} workers, {args.chunk:g} s chunks",
            lambda: run_project(
                path,
                fps,
                DescribeOptions(
                    scenes=SceneOptions(
                        scan=ScanMode.FULL, workers=args.workers, chunk_length=args.chunk
                    )
                ),
            ),
            [],
            True,
        ),
        Measure(
            "every-frame",
            "project full scan, every frame decoded",
            lambda: run_project(path, fps, EVERY_FRAME),
            [],
            True,
        ),
    ]
    measures = [m for m in measures if m.key in args.rows]
    if args.breakdown:
        stages: list[tuple[str, Downscale | None, bool, bool]] = [
            ("stage: PyAV decode only, reference frames", None, False, True),
            ("stage: + to_small_bgr (project)", downscale_project, False, True),
            ("stage: + detectors (= scan, 1 thread)", downscale_project, True, True),
            ("stage: PyAV decode only, every frame", None, False, False),
            ("stage: every frame + to_small_bgr", downscale_project, False, False),
            ("stage: every frame + detectors", downscale_project, True, False),
            ("old: decode + reformat per frame", downscale_per_frame, False, False),
        ]
        for name, downscale, detect, skip in stages:
            measures.append(
                Measure(
                    "breakdown",
                    name,
                    lambda d=downscale, t=detect, k=skip: run_stages(
                        path, fps, downscale=d, detect=t, skip_nonref=k
                    ),
                    [],
                    detect,
                )
            )
        for name, patch in (
            ("old: describe() scan, reformat per frame", downscale_per_frame),
            ("alt: describe() scan, fast_bilinear", KeptReformatter("FAST_BILINEAR")),
        ):
            measures.append(
                Measure(
                    "breakdown",
                    name,
                    lambda d=patch: run_project_patched(path, fps, d),
                    [],
                    True,
                )
            )
    load = load_average()
    warm_up(path)
    for repeat in range(args.repeats):
        for measure in measures:
            log(f"run {repeat + 1}/{args.repeats}: {measure.name}")
            measure.runs.append(measure.run())
    print(machine_line(load))
    print(title)
    print_report(truth, frames, measures, args.tolerance, args.repeats)


def print_report(
    truth: Truth,
    frames: int,
    measures: Sequence[Measure],
    tolerance: int,
    repeats: int,
) -> None:
    """Print the table, cuts scored against ``truth``."""
    rows_by_key = {measure.key: measure for measure in measures}
    ffmpeg = rows_by_key["ffmpeg"]
    limit, limit_cpu = ffmpeg.seconds(), ffmpeg.cpu()
    # The project's scan: the keyframe scan's row when it runs, else the full scan's.
    project_row = rows_by_key.get("keyframes") or rows_by_key.get("full")
    project = project_row.seconds() if project_row is not None else math.nan
    rows = []
    strict: dict[str, CutScore] = {}
    lenient: dict[str, CutScore] = {}
    for measure in measures:
        seconds = measure.seconds()
        cuts = measure.runs[-1].cuts
        if cuts is not None:
            strict[measure.name] = score_cuts(truth.cut_frames, cuts, tolerance)
            lenient[measure.name] = score_cuts(
                truth.cut_frames, cuts, tolerance, windows=truth.windows
            )
        one, two = strict.get(measure.name), lenient.get(measure.name)
        rows.append(
            [
                measure.name,
                " / ".join(f"{r.timing.wall:.1f}" for r in measure.runs),
                f"{seconds:.1f}",
                f"{frames / seconds:.0f}",
                f"{limit / seconds:.0%}",
                f"{project / seconds:.2f}x",
                " / ".join(f"{r.timing.cpu:.1f}" for r in measure.runs),
                f"{limit_cpu / measure.cpu():.0%}",
                f"{one.f1:.3f}" if one else "",
                f"{two.f1:.3f}" if two else "",
                f"{two.precision:.2f}/{two.recall:.2f}" if two else "",
            ]
        )
    print()
    print(
        f"All rows measured in this one run, {repeats} repeat(s) each, interleaved; "
        "median wall time reported."
    )
    print(
        "runs: wall seconds of each run. vs ffmpeg: speed (median wall) as a share of plain "
        "ffmpeg decode with default threads. vs project: times faster than the project's "
        "describe() keyframe scan (the full scan where that row is not run). CPU s: user + "
        "system seconds of each run, all threads and children; "
        "ffmpeg CPU/CPU: ffmpeg's CPU seconds over the row's (median), the speed share the row "
        "could reach on a machine it had to itself with both cores busy."
    )
    print(
        f"F1 +-{tolerance}: every cut within {tolerance} frames. F1 fades: a fade's cut may lie "
        "anywhere in its transition (1 s out, 1 s in), hard cuts as before; P/R of that."
    )
    print(
        table(
            [
                "pass",
                "runs (s)",
                "median s",
                "frames/s",
                "vs ffmpeg",
                "vs project",
                "CPU s",
                "ffmpeg CPU/CPU",
                f"F1 +-{tolerance}",
                "F1 fades",
                "P/R",
            ],
            rows,
        )
    )
    if not lenient:
        return
    print()
    print(
        f"Cut errors, frames (true cut and offset, fades matched within their transition; "
        f"{len(truth.cut_frames)} cuts from {truth.source}, fades through black at "
        f"{', '.join(map(str, truth.windows)) or 'none known'}):"
    )
    for name, score in lenient.items():
        print(f"- {name}: {score.found} found; {score.errors()}")
    keyframes, full = rows_by_key.get("keyframes"), rows_by_key.get("full")
    if keyframes is not None and full is not None:
        names = [keyframes.name, full.name]
        (fast_strict, full_strict), (fast_fades, full_fades) = (
            [d[n].f1 for n in names] for d in (strict, lenient)
        )
        print()
        print(
            f"Targets (issue 12): keyframe scan at {limit / project:.2f}x ffmpeg decode speed "
            f"by wall time ({limit_cpu / keyframes.cpu():.2f}x by CPU time; target >= 3x on "
            f"encodes with keyframes at cuts, floor 2x), {full.seconds() / project:.2f}x the "
            f"full scan (target >= 1 on fixed GOP and VP9); F1 {fast_strict:.3f} (+-{tolerance})"
            f" / {fast_fades:.3f} (fades) against the full scan's {full_strict:.3f} / "
            f"{full_fades:.3f} (target: within 0.01)."
        )
    chunked = rows_by_key.get("chunks")
    if chunked is not None and full is not None:
        print(
            f"{chunked.name}: {limit / chunked.seconds():.2f}x ffmpeg decode speed by wall "
            f"time, {full.seconds() / chunked.seconds():.2f}x the full scan in one "
            f"process; F1 {strict[chunked.name].f1:.3f} (+-{tolerance})."
        )


if __name__ == "__main__":
    main()
