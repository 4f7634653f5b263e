"""Benchmark 3, end to end: ``describe()`` on a generated 10-minute 720p video with a tiny model.

Runs the whole pipeline (``app.pipeline.describe``: one decoding pass, scene detection,
frame grabbing, pause finding, batched captioning, METEOR novelty filter) on the bench
video of ``bench/common.py`` (default 10 min, 1280x720, 25 fps) with a randomly initialised
tiny BLIP saved like the test fixture (``tests.fixtures.models.build_tiny_blip``) and loaded
through ``app.models.load_captioner``. The model costs next to nothing, so the figures are
those of the pipeline around it. Speech (``--speech``) comes from a seeded dialogue-like
track (bursts of 1-6 s, mostly short pauses, some long ones: about 60 % of the time is
speech): ``seeded`` (default) hands its intervals to ``describe()``, as subtitles would;
``audio`` speaks it (espeak-ng lines looped over each burst) into an AAC track of a copy of
the video and runs ``describe_media()`` with speech found in that track by Silero VAD, in
its thread beside the scan, and, in a fresh process of its own, the two one after the other
(``detect_speech``, then ``describe()`` with what it found), which first alternating between
repeats; ``none`` describes every
scene, as for a video without subtitles.

Each run is a fresh subprocess, so its peak RSS (``ru_maxrss``) is its own. The video of
``--duration`` seconds and one twice as long (same shot plan, continued) are run in turn,
``--repeats`` times each, to show that memory does not grow with the length of the video.

Printed: wall time of ``describe()`` (model loading excluded, shown apart), real-time factor
(wall / video length; below 1 is faster than real time), frames/s, peak RSS, RSS before
``describe()`` and at half-way, and what happened to the scenes: found, without a usable
pause (never converted nor captioned), skipped because their frame is near-identical to the
last captioned one, captioned (the share of scenes that reached the model), and captions
dropped as repeats, all from the pipeline's own counters (``app.pipeline.types.Progress``).

Run::

    .venv/bin/python bench/end_to_end.py                    # 10 and 20 min, 2 runs each
    .venv/bin/python bench/end_to_end.py --speech audio     # speech found in the audio
    .venv/bin/python bench/end_to_end.py --duration 120     # 2 and 4 min
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    add_common_arguments,
    bench_video,
    current_rss_bytes,
    load_average,
    log,
    machine_line,
    max_rss_bytes,
    median,
    mib,
    parse_size,
    table,
)

SEQUENTIAL = "audio-sequential"
"""Internal child mode: ``detect_speech`` on the whole file, then ``describe()``."""

SPEECH_MODES = {
    "seeded": "seeded dialogue intervals given to describe()",
    "audio": "the seeded dialogue spoken in an AAC track, found by Silero VAD beside the scan",
    "none": "none (every scene described)",
}


def dialogue(duration: float, seed: int) -> list[tuple[float, float]]:
    """A seeded speech track: bursts of 1-6 s; pauses mostly 0.2-1.5 s, 30 % of 2-10 s."""
    rng = random.Random(seed)
    speech: list[tuple[float, float]] = []
    time_s = rng.uniform(0, 3)
    while time_s < duration:
        end = min(duration, time_s + rng.uniform(1, 6))
        speech.append((time_s, end))
        pause = rng.uniform(2, 10) if rng.random() < 0.3 else rng.uniform(0.2, 1.5)
        time_s = end + pause
    return speech


DIALOGUE_LINES = (
    "Where were you last night?",
    "I told you, I was at the station waiting for the train.",
    "Nobody saw you there.",
    "Then ask the conductor, he will remember me.",
    "We did. He remembers a man in a grey coat.",
)


def dialogue_video(video: Path, spans: Sequence[tuple[float, float]], workdir: Path) -> Path:
    """A copy of ``video`` with an AAC track that speaks during ``spans`` and is silent
    between them (built once, cached under ``workdir``)."""
    import numpy as np

    from tests.fixtures.audio import ESPEAK_RATE, speak, write_wav

    path = workdir / f"{video.stem}-dialogue.mp4"
    if path.exists():
        return path
    lines = [speak(text, workdir / f"line-{i}.wav") for i, text in enumerate(DIALOGUE_LINES)]
    pause = np.zeros(ESPEAK_RATE // 5, dtype=np.float32)
    loop = np.concatenate([part for line in lines for part in (line, pause)])
    track = np.zeros(round(spans[-1][1] * ESPEAK_RATE) + ESPEAK_RATE, dtype=np.float32)
    for i, (start, end) in enumerate(spans):
        first, last = round(start * ESPEAK_RATE), round(end * ESPEAK_RATE)
        shift = (i * 7919 * ESPEAK_RATE // 10) % loop.size  # each burst starts elsewhere
        track[first:last] = np.resize(np.roll(loop, -shift), last - first)
    wav_path = write_wav(workdir / f"{video.stem}-dialogue.wav", track)
    partial = path.with_suffix(".part.mp4")
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(video), "-i", str(wav_path),
         "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-b:a", "96k",
         "-shortest", str(partial)],
        check=True,
    )  # fmt: skip
    wav_path.unlink()
    partial.replace(path)
    return path


@dataclass
class ChildResult:
    """What one run of ``describe()`` in a subprocess reports."""

    video_seconds: float
    load_seconds: float
    wall_seconds: float
    peak_rss: int
    rss_before: int
    rss_half: int
    scenes_found: int
    no_pause: int
    similar_frame: int
    captioned: int
    repeated_caption: int
    descriptions: int
    speech_share: float
    speech_alone_seconds: float | None = None
    """Sequential audio runs: the part of the wall time spent in ``detect_speech``."""


def child(video: Path, model: Path, speech: str, seed: int, workdir: Path) -> ChildResult:
    """One run in this (fresh) process; prints nothing but the result."""
    from app.models import CaptionOptions, load_captioner
    from app.pipeline.describe import MediaOptions, SpeechSource, describe, describe_media
    from app.pipeline.speech import detect_speech
    from app.pipeline.types import Interval, Progress, Stage
    from app.pipeline.video import VideoReader

    with VideoReader(video) as reader:
        duration = reader.info.duration or 0.0
    spans = dialogue(duration, seed)
    intervals = None if speech == "none" else [Interval(start, end) for start, end in spans]
    speech_share = 0.0 if intervals is None else sum(i.duration for i in intervals) / duration
    if speech in ("audio", SEQUENTIAL):
        video = dialogue_video(video, spans, workdir)
    started = time.perf_counter()
    captioner = load_captioner(str(model), CaptionOptions(device="cpu", local_files_only=True))
    load_seconds = time.perf_counter() - started
    rss_before = current_rss_bytes()
    rss_half = 0
    final = Progress(stage=Stage.SCANNING)

    def on_progress(progress: Progress) -> None:
        nonlocal rss_half, final
        final = progress
        if not rss_half and progress.scanned_seconds >= duration / 2:
            rss_half = current_rss_bytes()

    started = time.perf_counter()
    speech_alone = None
    if speech == "audio":
        found = describe_media(
            str(video),
            captioner,
            options=MediaOptions(speech_source=SpeechSource.AUDIO),
            on_progress=on_progress,
        )
    elif speech == SEQUENTIAL:
        heard = detect_speech(video)
        speech_alone = time.perf_counter() - started
        found = describe(video, captioner, speech=heard, on_progress=on_progress)
    else:
        found = describe(video, captioner, speech=intervals, on_progress=on_progress)
    descriptions = sum(1 for _ in found)
    wall = time.perf_counter() - started
    return ChildResult(
        video_seconds=duration,
        load_seconds=load_seconds,
        wall_seconds=wall,
        peak_rss=max_rss_bytes(),
        rss_before=rss_before,
        rss_half=rss_half,
        scenes_found=final.scenes_found,
        no_pause=final.scenes_without_pause,
        similar_frame=final.scenes_similar,
        captioned=final.scenes_captioned,
        repeated_caption=final.captions_dropped,
        descriptions=descriptions,
        speech_share=speech_share,
        speech_alone_seconds=speech_alone,
    )


def run_child(video: Path, model: Path, speech: str, seed: int, workdir: Path) -> ChildResult:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(video), str(model)]
    cmd += ["--speech", speech, "--seed", str(seed), "--workdir", str(workdir)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return ChildResult(**json.loads(out.strip().splitlines()[-1]))


def tiny_model(workdir: Path) -> Path:
    """The tiny random BLIP of the tests, saved once under ``workdir``."""
    from tests.fixtures.models import build_tiny_blip

    directory = workdir / "tiny-blip"
    if not (directory / "config.json").exists():
        partial = workdir / "tiny-blip.part"
        partial.mkdir(parents=True, exist_ok=True)
        build_tiny_blip(partial)
        partial.replace(directory)
    return directory


def main(argv: Sequence[str] | None = None) -> None:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        # Internal: one measured run, result as JSON on stdout.
        parser = argparse.ArgumentParser(prog="end_to_end.py --child")
        parser.add_argument("video", type=Path)
        parser.add_argument("model", type=Path)
        parser.add_argument("--speech", required=True)
        parser.add_argument("--seed", type=int, required=True)
        parser.add_argument("--workdir", type=Path, required=True)
        a = parser.parse_args(sys.argv[2:])
        result = child(a.video, a.model, a.speech, a.seed, a.workdir)
        print(json.dumps(asdict(result)))
        return
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring (bench/end_to_end.py) for what is measured.",
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--duration", type=float, default=600, help="seconds of the shorter video (default 600)"
    )
    parser.add_argument("--size", type=parse_size, default=(1280, 720), help="default 1280x720")
    parser.add_argument("--fps", type=int, default=25, help="frame rate (default 25)")
    parser.add_argument(
        "--speech",
        choices=("seeded", "audio", "none"),
        default="seeded",
        help="seeded dialogue intervals (default), the same dialogue spoken in an audio track "
        "and found by Silero VAD, or no speech (every scene described)",
    )
    args = parser.parse_args(argv)

    model = tiny_model(args.workdir)
    videos = [
        bench_video(
            args.workdir,
            duration=duration,
            size=args.size,
            fps=args.fps,
            seed=args.seed,
            jobs=args.jobs,
        )
        for duration in (args.duration, 2 * args.duration)
    ]
    if args.speech == "audio":
        for video in videos:  # built here, not inside a timed child
            dialogue_video(video.path, dialogue(video.duration, args.seed), args.workdir)
    results: dict[Path, list[ChildResult]] = {video.path: [] for video in videos}
    sequential: dict[Path, list[ChildResult]] = {video.path: [] for video in videos}
    load = load_average()
    for repeat in range(args.repeats):
        for video in videos:
            log(f"run {repeat + 1}/{args.repeats}: {video.path.name}")
            runs = [(args.speech, results)]
            if args.speech == "audio":  # both ways, which first alternating
                runs.append((SEQUENTIAL, sequential))
                runs = runs[:: 1 if repeat % 2 == 0 else -1]
            for speech, store in runs:
                store[video.path].append(
                    run_child(video.path, model, speech, args.seed, args.workdir)
                )

    print(machine_line(load))
    for video in videos:
        print(video.describe())
    print(
        f"Tiny random BLIP (tests.fixtures.models), CPU; speech: {SPEECH_MODES[args.speech]}. "
        f"Every run is a fresh process; all runs in this one invocation, {args.repeats} per "
        "video, alternating; median wall time, largest peak RSS."
    )
    rows = []
    for video in videos:
        runs = results[video.path]
        wall = median([r.wall_seconds for r in runs])
        last = runs[-1]
        rows.append(
            [
                f"{video.duration / 60:g} min {video.height}p",
                " / ".join(f"{r.wall_seconds:.0f}" for r in runs),
                f"{wall:.0f}",
                f"{wall / video.duration:.3f}",
                f"{video.frame_count / wall:.0f}",
                f"{median([r.load_seconds for r in runs]):.1f}",
                mib(max(r.rss_before for r in runs)),
                mib(max(r.rss_half for r in runs)),
                mib(max(r.peak_rss for r in runs)),
                f"{len(video.cut_frames) + 1}/{last.scenes_found}",
                f"{last.no_pause}",
                f"{last.similar_frame}",
                f"{last.captioned} ({last.captioned / max(1, last.scenes_found):.0%})",
                f"{last.repeated_caption}",
                f"{last.descriptions}",
            ]
        )
    print(
        table(
            [
                "video",
                "runs (s)",
                "wall s",
                "RTF",
                "frames/s",
                "load s",
                "RSS before",
                "RSS half-way",
                "peak RSS",
                "scenes true/found",
                "no pause",
                "similar frame",
                "to model",
                "repeat caption",
                "descriptions",
            ],
            rows,
        )
    )
    last = results[videos[0].path][-1]
    if args.speech != "none":
        print(f"Speech covers {last.speech_share:.0%} of the time (seeded dialogue track).")
    if args.speech == "audio":
        for video in videos:
            beside = [r.wall_seconds for r in results[video.path]]
            after = [r.wall_seconds for r in sequential[video.path]]
            alone = median([r.speech_alone_seconds or 0.0 for r in sequential[video.path]])
            print(
                f"{video.duration / 60:g} min: describe_media with speech detection beside the "
                f"scan {' / '.join(f'{w:.1f}' for w in beside)} s (median {median(beside):.1f}); "
                f"one after the other (detect_speech, median {alone:.1f} s, then describe()) "
                f"{' / '.join(f'{w:.1f}' for w in after)} s (median {median(after):.1f}). "
                "Each a fresh process."
            )
    short, long = (max(r.peak_rss for r in results[v.path]) for v in videos)
    print(
        f"Peak RSS {mib(short)} for {videos[0].duration / 60:g} min and {mib(long)} for "
        f"{videos[1].duration / 60:g} min: {(long - short) / 2**20:+.0f} MiB for twice the "
        f"length ({(long - short) / short:+.1%})."
    )
    print(
        "Scenes: no pause: no dialogue-free window long enough, never converted nor captioned; "
        "similar frame: skipped without calling the model, its frame near-identical to the last "
        "captioned one; to model: frames captioned (share of the scenes found); repeat caption: "
        "captions dropped by the novelty filter (the tiny random model repeats itself)."
    )


if __name__ == "__main__":
    main()
