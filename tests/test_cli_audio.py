"""``describe --audio/--mix/--format dapt``: narration through the command line, end to end."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import av
import pytest
from lxml import etree

from app.cli import main
from app.pipeline.tts import TTS_ENGINES
from tests.fixtures.audio import decode, loud
from tests.fixtures.media import MadeVideo, make_lavfi_video
from tests.fixtures.models import ScriptedCaptioner, cli_captioner
from tests.fixtures.servers import QuietHandler, serving

# English: clean_caption keeps only texts with ASCII letters for now (Russian speech is
# tested in test_narration.py, straight through the engine).
TEXTS = ["a woman opens a red door", "a car drives into the night", "children run on a bridge"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> MadeVideo:
    """Three silent scenes of 5 s each."""
    path = tmp_path_factory.mktemp("cli-audio") / "scenes.mp4"
    return make_lavfi_video(path, [("red", 5), ("green", 5), ("blue", 5)], size=(320, 240))


def describe(*args: str, texts: list[str] = TEXTS) -> tuple[int, str]:
    stdout = io.StringIO()
    with cli_captioner(ScriptedCaptioner(texts)):
        code = main(["describe", *args, "-q", "--speech", "subtitles"], stdout=stdout)
    return code, stdout.getvalue()


def test_descriptions_are_spoken_into_a_track_a_film_and_a_dapt_script(
    scenes: MadeVideo, tmp_path: Path
) -> None:
    track, film, script = tmp_path / "ad.flac", tmp_path / "film.mkv", tmp_path / "ad.dapt"
    code, _ = describe(
        str(scenes.path), "-f", "dapt", "-o", str(script),
        "--audio", str(track), "--mix", str(film),
    )  # fmt: skip
    assert code == 0
    root = etree.parse(str(script)).getroot()
    ns = {"tt": "http://www.w3.org/ns/ttml"}
    audio = root.xpath("//tt:audio", namespaces=ns)
    assert [a.get("src") for a in audio] == ["ad.flac"] * 3
    texts = ["".join(p.itertext()) for p in root.xpath("//tt:p", namespaces=ns)]
    assert texts[0] == "A woman opens a red door."
    # Each description is heard from its window's start for its spoken duration.
    frames = loud(decode(track))
    for a in audio:
        begin, end = (float(a.get(k)[:-1]) for k in ("clipBegin", "clipEnd"))
        on = frames[round(begin * 100) : round(end * 100)]
        assert on.mean() > 0.6
    with av.open(str(film)) as container:
        (described,) = container.streams.audio  # the film had no sound
        assert described.metadata["language"] == "eng"


def test_json_gains_the_spoken_duration(scenes: MadeVideo, tmp_path: Path) -> None:
    code, text = describe(str(scenes.path), "--audio", str(tmp_path / "ad.wav"))
    assert code == 0
    items = json.loads(text)
    assert all(0.5 < item["spoken_duration"] < 5 and item["fits"] for item in items)
    code, text = describe(str(scenes.path))
    assert [item["spoken_duration"] for item in json.loads(text)] == [None] * 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--voice", "no-such-voice"], "error: espeak-ng has no voice 'no-such-voice'"),
        (["--tts", "piper"], "error: --tts: the text-to-speech engine 'piper' needs piper-tts,"),
    ],
)
def test_a_bad_voice_fails_before_the_scan_and_leaves_nothing(
    scenes: MadeVideo,
    tmp_path: Path,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if "piper" in args and "piper" in TTS_ENGINES:
        pytest.skip("piper-tts is installed here")
    captioner = ScriptedCaptioner([])
    out = tmp_path / "ad.json"
    argv = ["describe", str(scenes.path), "-q", "-o", str(out), "--audio",
            str(tmp_path / "ad.wav"), "--mix", str(tmp_path / "film.mkv"), *args]  # fmt: skip
    with cli_captioner(captioner):
        try:
            code = main(argv)
        except SystemExit as exc:  # a bad option: a usage error, status 2
            code = exc.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert code == (2 if "--tts" in args else 1)
    assert message in err, err
    assert captioner.captioned == 0
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_audio_path_fails_before_the_scan(
    scenes: MadeVideo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = describe(str(scenes.path), "--audio", "/no/such/dir/ad.wav")
    assert code == 1
    assert "error: cannot write /no/such/dir/ad.wav: No such file" in capsys.readouterr().err


def test_a_film_that_cannot_be_mixed_keeps_its_descriptions(
    scenes: MadeVideo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # MP4 holds no Theora. The descriptions (and the track they name) are complete before
    # the mix: before, its failure threw them away with it, after all the captioning.
    film = tmp_path / "scenes.ogv"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(scenes.path), "-c:v", "libtheora",
         str(film)],
        check=True,
    )  # fmt: skip
    out, track = tmp_path / "ad.json", tmp_path / "ad.wav"
    code, _ = describe(
        str(film), "-o", str(out), "--audio", str(track), "--mix", str(tmp_path / "ad.mp4")
    )
    assert code == 1
    assert "'mp4' format does not support 'theora' codec" in capsys.readouterr().err
    assert [item["text"] for item in json.loads(out.read_text())] == [
        "A woman opens a red door.", "A car drives into the night.", "Children run on a bridge."
    ]  # fmt: skip
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ad.json", "ad.wav", film.name]


def test_an_output_that_cannot_be_written_fails_before_the_film_is_downloaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The document is opened before the film is fetched for the audio outputs (a review:
    # once the document was committed before the mix, it was opened after the download).
    asked: list[str] = []

    class Recording(QuietHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_error(404)

    with serving(Recording) as base:
        code, _ = describe(
            f"{base}/film.mp4", "-o", "/no/such/dir/ad.json", "--mix", str(tmp_path / "ad.mkv")
        )
    assert code == 1
    assert "error: cannot write /no/such/dir/ad.json" in capsys.readouterr().err
    assert asked == []
