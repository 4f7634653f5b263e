"""Benchmark 1, scenes: the project's one-pass scan against PySceneDetect and plain ffmpeg.

Measures, on a generated 1080p bench video with known cuts (default 3 min, 25 fps, about
30 cuts of which several fade through black; see ``bench/common.py``):

* ``ffmpeg -i X -f null -``: plain decoding, the speed limit (default threads, and one).
* the project's scan: ``app.pipeline.describe()`` with a captioner that does no work, no
  speech information (so every scene is a candidate and its frame is grabbed and converted
  to a full-size RGB image, as for a video without subtitles) and a novelty scorer that
  keeps everything. That is decoding, downscaling, cut detection (AdaptiveDetector plus
  ThresholdDetector for fades), frame selection, the producer/consumer threads and the
  conversion of each scene's frame: scene detection and frame grabbing, minus the model.
* PySceneDetect's plain ``detect(path, AdaptiveDetector())`` (OpenCV backend, automatic
  downscaling to about 256 px wide, which the project also uses).
* With ``--breakdown`` (on by default), single-threaded passes that add one stage at a time
  (PyAV decode; + downscale to BGR as the project does; + the detectors), and the other
  ways to downscale that a fix could use, to show where the project's time goes.

Every measurement runs ``--repeats`` times, interleaved, in the same run; the median is
reported. Timings are wall clock on a shared machine: compare columns of one run only.

Run::

    .venv/bin/python bench/scenes.py                 # 3 min 1080p, 2 repeats
    .venv/bin/python bench/scenes.py --duration 60   # quicker
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image

from app.pipeline.describe import describe
from app.pipeline.scenes import CutDetector, SceneOptions
from app.pipeline.video import DecodedFrame, VideoReader
from bench.common import (
    DEFAULT_TOLERANCE,
    BenchVideo,
    CutScore,
    add_common_arguments,
    bench_video,
    log,
    machine_line,
    median,
    parse_size,
    score_cuts,
    seconds_to_frames,
    table,
    timed,
)


class NullCaptioner:
    """A captioner that does no work: a distinct text per image, so nothing is dropped."""

    def __init__(self) -> None:
        self.captioned = 0

    def caption(
        self, images: Sequence[Image.Image], *, max_new_tokens: int | None = None
    ) -> list[str]:
        texts = [f"scene {self.captioned + i}" for i in range(len(images))]
        self.captioned += len(images)
        return texts


class KeepAllScorer:
    """A novelty scorer that calls every caption new (similarity 0)."""

    def similarity(self, previous: str, current: str) -> float:
        return 0.0


@dataclass(frozen=True)
class Run:
    """One timed pass over the video."""

    seconds: float
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
        "0:v:0",
        "-f",
        "null",
        "-",
    ]
    seconds, _ = timed(lambda: subprocess.run(cmd, check=True))
    return Run(seconds)


def run_project(path: Path, fps: float) -> Run:
    """The project's scan: describe() with a no-work captioner, every scene a candidate."""
    captioner = NullCaptioner()

    def scan() -> list[float]:
        return [
            d.scene_start
            for d in describe(path, captioner, speech=None, scorer=KeepAllScorer())
            if d.scene_index > 0
        ]

    seconds, starts = timed(scan)
    return Run(seconds, seconds_to_frames(starts, fps))


def run_pyscenedetect(path: Path) -> Run:
    """PySceneDetect's ``detect(path, AdaptiveDetector())``, as its README shows it."""
    from scenedetect import AdaptiveDetector, detect

    seconds, scenes = timed(lambda: detect(str(path), AdaptiveDetector()))
    return Run(seconds, [start.frame_num for start, _end in scenes[1:]])


# --- breakdown ---------------------------------------------------------------------------

Downscale = Callable[[DecodedFrame, int], np.ndarray]


def _small_size(frame: DecodedFrame, width: int) -> tuple[int, int]:
    return width, max(2, round(frame.frame.height * width / frame.frame.width))


def downscale_project(decoded: DecodedFrame, width: int) -> np.ndarray:
    """What the project does now: ``DecodedFrame.to_small_bgr`` (swscale, bilinear)."""
    return decoded.to_small_bgr(width)


def _swscale(interpolation: str) -> Downscale:
    def downscale(decoded: DecodedFrame, width: int) -> np.ndarray:
        w, h = _small_size(decoded, width)
        return decoded.frame.reformat(
            width=w, height=h, format="bgr24", interpolation=interpolation
        ).to_ndarray()

    return downscale


def _plane(decoded: DecodedFrame, index: int, width: int, height: int) -> np.ndarray:
    plane = decoded.frame.planes[index]
    rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return rows[:height, :width]


def downscale_planes_cv2(decoded: DecodedFrame, width: int) -> np.ndarray:
    """yuv420p planes shrunk with cv2 (INTER_AREA), then converted to BGR at the small size."""
    frame = decoded.frame
    w, h = _small_size(decoded, width)
    w, h = w - w % 2, h - h % 2
    y = cv2.resize(
        _plane(decoded, 0, frame.width, frame.height), (w, h), interpolation=cv2.INTER_AREA
    )
    cw, ch = (frame.width + 1) // 2, (frame.height + 1) // 2
    u = cv2.resize(_plane(decoded, 1, cw, ch), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    v = cv2.resize(_plane(decoded, 2, cw, ch), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    i420 = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(h * 3 // 2, w)
    return cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)


def run_stages(path: Path, fps: float, *, downscale: Downscale | None, detect: bool) -> Run:
    """One single-threaded pass: decode, optionally downscale, optionally detect cuts."""
    options = SceneOptions()

    def scan() -> list[float]:
        with VideoReader(path) as reader:
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

    seconds, found = timed(scan)
    return Run(seconds, seconds_to_frames(found, fps) if detect else None)


# --- report ------------------------------------------------------------------------------


@dataclass
class Measure:
    """A named pass, run ``repeats`` times."""

    name: str
    run: Callable[[], Run]
    runs: list[Run]
    detects: bool = False

    def seconds(self) -> float:
        return median([r.seconds for r in self.runs])


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
        "--video", type=Path, help="measure this file instead (no cut scores, no truth)"
    )
    args = parser.parse_args(argv)

    video = bench_video(
        args.workdir,
        duration=args.duration,
        size=args.size,
        fps=args.fps,
        seed=args.seed,
        jobs=args.jobs,
    )
    path = args.video or video.path
    fps = float(args.fps)
    measures = [
        Measure("ffmpeg -f null (default threads)", lambda: run_ffmpeg(path, None), []),
        Measure("ffmpeg -f null -threads 1", lambda: run_ffmpeg(path, 1), []),
        Measure("project: describe() scan", lambda: run_project(path, fps), [], True),
        Measure(
            "PySceneDetect detect(AdaptiveDetector())", lambda: run_pyscenedetect(path), [], True
        ),
    ]
    if args.breakdown:
        stages: list[tuple[str, Downscale | None, bool]] = [
            ("stage: PyAV decode only", None, False),
            ("stage: + to_small_bgr (swscale bilinear)", downscale_project, False),
            ("stage: + detectors (= scan, 1 thread)", downscale_project, True),
            ("alt: decode + swscale fast_bilinear", _swscale("FAST_BILINEAR"), False),
            ("alt: decode + swscale area", _swscale("AREA"), False),
            ("alt: decode + yuv planes cv2 area", downscale_planes_cv2, False),
            ("alt: planes cv2 area + detectors", downscale_planes_cv2, True),
        ]
        for name, downscale, detect in stages:
            measures.append(
                Measure(
                    name,
                    lambda d=downscale, t=detect: run_stages(path, fps, downscale=d, detect=t),
                    [],
                    detect,
                )
            )
    print(machine_line())
    print(video.describe() if args.video is None else f"{path}")
    for repeat in range(args.repeats):
        for measure in measures:
            log(f"run {repeat + 1}/{args.repeats}: {measure.name}")
            measure.runs.append(measure.run())
    print_report(video, measures, args.tolerance, args.repeats, truth=args.video is None)


def print_report(
    video: BenchVideo, measures: Sequence[Measure], tolerance: int, repeats: int, *, truth: bool
) -> None:
    frames = video.frame_count
    limit = measures[0].seconds()
    project = measures[2].seconds()
    rows = []
    scores: dict[str, CutScore] = {}
    for measure in measures:
        seconds = measure.seconds()
        cuts = measure.runs[-1].cuts
        score = (
            score_cuts(video.cut_frames, cuts, tolerance) if truth and cuts is not None else None
        )
        if score is not None:
            scores[measure.name] = score
        rows.append(
            [
                measure.name,
                " / ".join(f"{r.seconds:.1f}" for r in measure.runs),
                f"{seconds:.1f}",
                f"{frames / seconds:.0f}",
                f"{limit / seconds:.0%}",
                f"{project / seconds:.2f}x",
                f"{score.f1:.3f}" if score else "",
                f"{score.precision:.2f}/{score.recall:.2f}" if score else "",
            ]
        )
    print()
    print(
        f"All rows measured in this one run, {repeats} repeat(s) each, interleaved; "
        "median wall time reported."
    )
    print(
        "'vs ffmpeg': speed as a share of plain ffmpeg decode (default threads); "
        "'project/x': how many times faster than the project's scan the row is."
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
                f"F1 (+-{tolerance})",
                "P/R",
            ],
            rows,
        )
    )
    if not scores:
        return
    print()
    print(
        f"Cut errors (true cut frame and offset; {len(video.cut_frames)} true cuts, "
        f"fades through black at {', '.join(map(str, video.fade_cut_frames))}):"
    )
    for name, score in scores.items():
        print(f"- {name}: {score.found} found; {score.errors()}")
    project_score = scores.get(measures[2].name)
    reference = scores.get(measures[3].name)
    if project_score and reference:
        print()
        print(
            f"Targets: project scan at {limit / project:.0%} of ffmpeg decode speed "
            f"(target >= 90%); F1 {project_score.f1:.3f} vs AdaptiveDetector's "
            f"{reference.f1:.3f} (target: no worse)."
        )


if __name__ == "__main__":
    main()
