"""``python -m app describe`` end to end: real processes, a tiny real model, generated video."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from app.cli import main
from app.config import Settings
from tests.fixtures.media import MadeVideo, make_lavfi_video, nvdec_usable, with_audio_track
from tests.fixtures.models import ScriptedCaptioner, cli_captioner

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
    # stderr is a pipe here: plain progress lines, no carriage-return bars (ours or the
    # libraries').
    assert "done: 60.0 of 60.0 s" in proc.stderr
    assert "\r" not in proc.stderr
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
    with cli_captioner(captioner):
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
    assert "python -m app describe: error: --beams: Input should be greater than or equal to 1" in (
        proc.stderr
    )


def run_module(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_a_bad_output_path_is_one_line_and_no_work_is_done(
    film: MadeVideo, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["describe", str(film.path), "-q", "-o", "/nonexistent/dir/out.json"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: cannot write /nonexistent/dir/out.json: No such file"), err
    assert err.count("\n") == 1


@pytest.mark.parametrize("fmt", ["json", "vtt", "srt"])
def test_a_failed_run_leaves_no_partial_output(
    tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "film.mp4"
    notes.write_text("not a video\n" * 100)
    out = tmp_path / f"out.{fmt}"
    stdout = io.StringIO()
    assert main(["describe", str(notes), "-q", "-f", fmt, "-o", str(out)]) == 1
    assert main(["describe", str(notes), "-q", "-f", fmt], stdout=stdout) == 1
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [notes], "no temporary file is left either"
    assert stdout.getvalue() == ""
    assert capsys.readouterr().err.count("error: ") == 2


def test_output_is_renamed_into_place_complete(film: MadeVideo, tmp_path: Path) -> None:
    out = tmp_path / "out.vtt"
    out.write_text("previous version\n")
    with cli_captioner(ScriptedCaptioner()):
        assert main(["describe", str(film.path), "-q", "-f", "vtt", "-o", str(out)]) == 0
    assert out.read_text().startswith("WEBVTT")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.vtt"]


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--min-gap", "-1"], {}, "error: --min-gap: Input should be greater than 0"),
        (["--device", "gpu"], {}, "error: --device: device must be 'auto'"),
        ([], {"DESCRIBER_MIN_GAP": "-1"}, "error: DESCRIBER_MIN_GAP: Input should be greater"),
    ],
)
def test_option_errors_name_the_option_under_the_subcommand_usage(
    film: MadeVideo, args: list[str], env: dict[str, str], expected: str
) -> None:
    proc = run_module("app", "describe", str(film.path), *args, env=env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("usage: python -m app describe")
    assert lines[-1] == f"python -m app describe: {expected}" or lines[-1].startswith(
        f"python -m app describe: {expected}"
    ), lines[-1]
    assert "Traceback" not in proc.stderr


def test_help_gives_every_option_a_text_and_its_default() -> None:
    top = run_module("app", "--help").stdout
    assert "``" not in top and "describe" in top and "serve" in top
    describe_help = run_module("app", "describe", "--help").stdout
    options = describe_help.split("options:", 1)[1]
    entries = [e for e in options.split("\n  -") if e.strip()][1:]  # after -h/--help
    assert len(entries) >= 20
    for entry in entries:
        assert "default" in " ".join(entry.split()), entry
    usage = describe_help.split("\n\n", 1)[0]
    for internal in ("MODEL_BATCH_SIZE", "DETECTOR_THRESHOLD", "SPEECH_SOURCE", "MIN_GAP"):
        assert internal not in usage, internal  # metavars are words, not setting names
    serve_help = run_module("app", "serve", "--help").stdout
    assert "HTTP service" in serve_help and "README.md" in serve_help
    assert "Configuration" in serve_help


def test_app_service_is_the_serve_entry_point() -> None:
    helped = run_module("app.service", "--help")
    assert helped.returncode == 0
    assert helped.stdout.startswith("usage: python -m app serve")
    for module in (["app.service"], ["app", "serve"]):
        bad = run_module(*module, env={"DESCRIBER_PORT": "-5"})
        assert bad.returncode == 2
        assert bad.stderr.strip().splitlines()[-1] == (
            "python -m app serve: error: DESCRIBER_PORT: Input should be greater than or equal to 0"
        )
        assert "Traceback" not in bad.stderr


@pytest.fixture
def library_bars() -> Iterator[None]:
    """Puts the libraries' progress bars back on after a test that turns them off."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.enable_progress_bar()
    yield
    transformers_logging.enable_progress_bar()


def test_quiet_silences_the_libraries_bars_too(film: MadeVideo, library_bars: None) -> None:
    from transformers.utils import logging as transformers_logging

    with cli_captioner(ScriptedCaptioner()):
        assert main(["describe", str(film.path), "-q"], stdout=io.StringIO()) == 0
    assert not transformers_logging.is_progress_bar_enabled()


def test_the_service_draws_no_progress_bars(library_bars: None) -> None:
    from transformers.utils import logging as transformers_logging

    from app.service.serve import run_server

    with mock.patch("app.service.serve._Server") as server:
        run_server(Settings(_env_file=None))  # type: ignore[call-arg]
    assert server.return_value.run.called
    assert not transformers_logging.is_progress_bar_enabled()


def test_speech_from_subtitles_without_subtitles_warns(
    film: MadeVideo, caplog: pytest.LogCaptureFixture
) -> None:
    with cli_captioner(ScriptedCaptioner()):
        args = ["describe", str(film.path), "-q", "--speech", "subtitles"]
        code = main(args, stdout=io.StringIO())
    assert code == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("none were given" in w for w in warnings), warnings


@pytest.fixture
def silero_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default speech detector as on a machine without silero-vad."""
    from app.pipeline.speech import SPEECH_DETECTORS
    from app.registry import Member

    target = SPEECH_DETECTORS.members["silero"].target
    absent = Member(target, {"no_such_module_for_silero": "silero-vad"})
    monkeypatch.setitem(SPEECH_DETECTORS.members, "silero", absent)


SILERO_MISSING = (
    "the speech detector 'silero' needs silero-vad, which is not installed: "
    "run 'pip install silero-vad'"
)


def test_what_detects_no_speech_runs_without_the_speech_detectors_package(
    film: MadeVideo, silero_missing: None, tmp_path: Path
) -> None:
    listed = io.StringIO()
    assert main(["scenes", str(film.path), "--format", "json"], stdout=listed) == 0
    assert len(json.loads(listed.getvalue())["scenes"]) == 7
    subtitles = tmp_path / "film.srt"
    subtitles.write_text("1\n00:00:00,000 --> 00:00:20,000\nHello.\n", encoding="utf-8")
    out = tmp_path / "out.json"
    with cli_captioner(ScriptedCaptioner()):
        args = ["describe", str(film.path), "--subtitles", str(subtitles), "-q", "-o", str(out)]
        assert main([*args, "--format", "json"], stdout=io.StringIO()) == 0
    # The dialogue covers the first two scenes.
    assert json.loads(out.read_text())[0]["scene_start"] == pytest.approx(18.0)


def test_listening_without_the_speech_detectors_package_is_one_line(
    film: MadeVideo, silero_missing: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audible = with_audio_track(film.path, tmp_path / "audible.mkv", 60)
    out = tmp_path / "out.json"
    with cli_captioner(ScriptedCaptioner()):
        code = main(["describe", str(audible), "-q", "-o", str(out)], stdout=io.StringIO())
    assert code == 1
    assert capsys.readouterr().err == f"error: {SILERO_MISSING}\n"
    assert not out.exists()


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_the_service_refuses_to_start_without_a_plugins_package(
    command: str, silero_missing: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with (
        mock.patch("app.service.serve.run_server", side_effect=AssertionError("started")),
        mock.patch("app.service.work.run_worker", side_effect=AssertionError("started")),
        pytest.raises(SystemExit) as exited,
    ):
        main([command])
    assert exited.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"python -m app {command}: error: DESCRIBER_SPEECH_DETECTOR: {SILERO_MISSING}"


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


def run_against_a_silent_hub(hub: str, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``describe`` with the hub at ``hub`` and its cache in ``cache``, not offline."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_ENDPOINT": hub, "HF_HUB_CACHE": str(cache)}
    env.pop("HF_HUB_OFFLINE", None)
    return subprocess.run(
        [sys.executable, "-m", "app", "describe", *args, "-q"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,  # huggingface_hub alone retried for over a minute
        check=False,
    )


@pytest.fixture(scope="module")
def short_film(tmp_path_factory: pytest.TempPathFactory) -> MadeVideo:
    """Two short scenes: enough to load a captioner, quick to describe."""
    path = tmp_path_factory.mktemp("short") / "short.mp4"
    return make_lavfi_video(path, [("red", 2), ("blue", 2)], size=(320, 240))


def test_the_default_model_with_the_hub_silent_is_one_line_at_once(
    short_film: MadeVideo, refusing_url: str, tmp_path: Path
) -> None:
    proc = run_against_a_silent_hub(refusing_url, tmp_path / "cache", str(short_film.path))

    assert proc.returncode == 1
    # One line: no retries, no warnings printed (twice) before it.
    assert proc.stderr.count("\n") == 1, proc.stderr
    message = proc.stderr
    assert message.startswith("error: Could not download the captioning model 'Salesforce/")
    assert f"the Hugging Face hub at {refusing_url} does not answer" in message
    assert "--model / DESCRIBER_MODEL" in message
    assert "HF_HUB_OFFLINE=1" in message and "--local-files-only" in message


def test_a_cached_model_loads_from_the_cache_when_the_hub_is_silent(
    short_film: MadeVideo, tiny_blip_dir: Path, refusing_url: str, tmp_path: Path
) -> None:
    # The layout huggingface_hub writes: a snapshot per commit, and the branch naming it.
    cache = tmp_path / "cache"
    repo = cache / "models--someone--tiny-blip"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_blip_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)

    proc = run_against_a_silent_hub(
        refusing_url, cache, str(short_film.path), "--model", "someone/tiny-blip"
    )

    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == 2
    warnings = proc.stderr.splitlines()
    assert len(warnings) == 1, proc.stderr
    assert f"hub at {refusing_url} does not answer" in warnings[0]
    assert f"from the cache {cache}" in warnings[0]


def test_the_hubs_warnings_are_printed_once() -> None:
    code = (
        "import logging, sys; from app.quiet import route_library_logs; "
        "logging.basicConfig(stream=sys.stderr); route_library_logs(); "
        "from huggingface_hub.utils import logging as hub_logging; "
        "hub_logging.get_logger('huggingface_hub.x').warning('Retrying in 1s')"
    )
    command = [sys.executable, "-c", code]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60, check=True)
    assert proc.stderr.count("Retrying in 1s") == 1, proc.stderr
