"""Rendering cost of spoken descriptions: what ``"audio": true`` adds to a job.

Makes a film with ffmpeg (test pattern, H.264 640x360 at 25 fps, a stereo AAC tone at
48 kHz), one English description every 15 s (a 4 s window each), then times the steps the
service adds to such a job: narrating each description with the default engine (espeak-ng:
synthesis, measured fit), writing the description track (.m4a), and mixing the film with
its audio-description track (.mkv: video and original audio copied, one AAC track encoded).
Prints seconds per step and how many times faster than real time the rendering runs.

Run::

    .venv/bin/python -m bench.render [--minutes 10]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from app.pipeline.narration import Narrator
from app.pipeline.soundtrack import MixOptions, mix_film, write_track
from app.pipeline.tts import TtsOptions, load_engine
from app.pipeline.types import Description

TEXTS = [
    "A woman opens a red door.",
    "A man in a dark coat walks along a wet street at night.",
    "Two children run across a wooden bridge.",
    "A car drives slowly through the snow.",
]


def make_film(path: Path, seconds: float) -> Path:
    cmd = [
        "ffmpeg", "-y", "-loglevel", "error",
        "-f", "lavfi", "-i", f"testsrc=size=640x360:rate=25:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}:sample_rate=48000",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-ac", "2", str(path),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the film")
    args = parser.parse_args()
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory(prefix="bench-render-") as directory:
        folder = Path(directory)
        film = make_film(folder / "film.mp4", seconds)
        descriptions = [
            Description(
                start, start + 4.0, start, i, start, start + 4.0, TEXTS[i % 4], 0.0, 12, True
            )
            for i, start in enumerate(range(5, int(seconds) - 5, 15))
        ]
        started = time.perf_counter()
        narrator = Narrator(load_engine(TtsOptions()))
        clips = [narrator.narrate(d).clip for d in descriptions]
        narrated = time.perf_counter() - started
        started = time.perf_counter()
        write_track(folder / "description.m4a", clips, seconds)
        tracked = time.perf_counter() - started
        started = time.perf_counter()
        mix_film(film, clips, folder / "film.mkv", MixOptions())
        mixed = time.perf_counter() - started
    print(f"film: {args.minutes:g} min, {len(descriptions)} descriptions")
    print(f"narration: {narrated:.2f} s ({narrated / len(descriptions) * 1000:.0f} ms each)")
    print(f"description track (.m4a): {tracked:.2f} s ({seconds / tracked:.0f}x real time)")
    print(f"film with its track (.mkv): {mixed:.2f} s ({seconds / mixed:.0f}x real time)")


if __name__ == "__main__":
    main()
