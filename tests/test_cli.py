"""``python -m app describe`` end to end: real processes, a tiny real model, generated video."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from app.cli import main
from tests.fixtures.media import MadeVideo, make_lavfi_video, nvdec_usable
from tests.fixtures.models import ScriptedCaptioner

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def film(tmp_path_factory: pytest.TempPathFactory) -> MadeVideo:
    """60 s of 720p, seven scenes of the colours the colour model knows."""
    scenes = [
        ("red", 10),
        ("green", 8),
        ("blue", 9),
        ("yellow", 7),
        ("white", 10),
        ("red", 8),
        ("green", 8),
    ]
    return make_lavfi_video(tmp_path_factory.mktemp("film") / "film.mp4", scenes)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "app", "describe", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )


def test_describe_with_a_model_directory(
    film: MadeVideo, colour_blip_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.json"
    proc = run_cli(
        str(film.path), "--model", str(colour_blip_dir), "--format", "json", "-o", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    descriptions = json.loads(out.read_text())
    # Every cut found to within two frames; every scene described with its colour.
    starts = [d["scene_start"] for d in descriptions]
    assert len(starts) == 7
    for found, truth in zip(starts[1:], film.cut_times, strict=True):
        assert abs(found - truth) <= 2 / film.fps
    colours = [d["text"].split()[1] for d in descriptions]
    assert colours == ["red", "green", "blue", "yellow", "white", "red", "green"]
    assert "scanning" in proc.stderr or "captioning" in proc.stderr or "done" in proc.stderr
    assert "7 scenes: 0 without a pause, 0 like the last captioned one, 7 captioned" in proc.stderr


def test_describe_with_subtitles_writes_vtt(film: MadeVideo, tmp_path: Path) -> None:
    # Scenes: 0-10, 10-18, 18-27, 27-34, 34-44, 44-52, 52-60. Dialogue covers all but
    # a 3 s pause in scene 2 and the whole of scene 5.
    subtitles = tmp_path / "film.srt"
    subtitles.write_text(
        "1\n00:00:00,000 --> 00:00:20,000\nHello.\n\n"
        "2\n00:00:23,000 --> 00:00:44,000\nStill talking.\n\n"
        "3\n00:00:52,000 --> 00:01:00,000\nGoodbye.\n",
        encoding="utf-8-sig",
    )
    stdout = io.StringIO()
    captioner = ScriptedCaptioner(["a woman opens a door", "a car drives into the night"])
    with mock.patch("app.cli.load_captioner", return_value=captioner):
        code = main(
            ["describe", str(film.path), "-s", str(subtitles), "-f", "vtt", "-q"], stdout=stdout
        )
    assert code == 0
    text = stdout.getvalue()
    assert text.startswith("WEBVTT")
    assert "00:00:20.000 --> 00:00:23.000" in text
    assert "00:00:44.000 --> 00:00:52.000" in text
    assert text.count("-->") == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such/film.mp4"], "error: video file not found: /no/such/film.mp4"),
        (["http://127.0.0.1:9/film.mp4"], "error: video URL unreachable"),
        (["{film}", "--model", "/no/such/model"], "error: Could not find the captioning model"),
        (["{film}", "--subtitles", "/no/such.srt"], "error: subtitles file not found"),
    ],
)
def test_errors_are_one_line(
    film: MadeVideo, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["describe", *[a.format(film=film.path) for a in args], "-q"], stdout=io.StringIO())
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(message), err
    assert "Traceback" not in err
    assert err.count("\n") == 1


def test_bad_option_value_is_a_usage_error(film: MadeVideo) -> None:
    proc = run_cli(str(film.path), "--beams", "0")
    assert proc.returncode == 2
    assert "invalid settings: beams: Input should be greater than or equal to 1" in proc.stderr


@pytest.mark.skipif(nvdec_usable(), reason="this machine has a GPU that FFmpeg can decode on")
def test_decoding_on_a_missing_gpu_is_one_line(
    film: MadeVideo, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["describe", str(film.path), "--decode-device", "cuda", "-q"]
    code = main(args, stdout=io.StringIO())
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: frames cannot be decoded on 'cuda'"), err
    assert err.count("\n") == 1
