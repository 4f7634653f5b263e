"""``describe`` starts scanning before the captioning model loads (issue 12, item 3): what the
pipeline asks of the captioner before the scan (frames per scene, languages) is answered by
the kind's registry line, and the model loads on the first caption."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.models import CaptionOptions
from app.models.captioners import CAPTIONERS, CaptionerKind
from app.models.hub import ModelSource
from app.pipeline.video import DecodedFrame, VideoReader
from tests.fixtures.media import MadeVideo, make_lavfi_video
from tests.fixtures.models import ScriptedCaptioner

ROOT = Path(__file__).resolve().parents[1]

#: What happened, in order: "first frame decoded", "model loaded".
EVENTS: list[str] = []
#: The captioners the recording kind loaded.
LOADED: list[ScriptedCaptioner] = []


def load_recording(
    kind: CaptionerKind, source: ModelSource, options: CaptionOptions
) -> ScriptedCaptioner:
    EVENTS.append("model loaded")
    captioner = ScriptedCaptioner()
    LOADED.append(captioner)
    return captioner


#: A kind that looks at two frames a scene and writes English only; picked by model type.
RECORDING = CaptionerKind(
    f"{__name__}:load_recording",
    model_types=("recording-test",),
    frames_per_scene=2,
    languages=frozenset({"en"}),
)


@pytest.fixture
def recording_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A model directory of the recording kind; first decoded frames are recorded too."""
    monkeypatch.setitem(CAPTIONERS.members, "recording", RECORDING)
    frames = VideoReader.frames

    def recorded_frames(reader: VideoReader) -> Iterator[DecodedFrame]:
        first = True
        for decoded in frames(reader):
            if first:
                EVENTS.append("first frame decoded")
                first = False
            yield decoded

    monkeypatch.setattr(VideoReader, "frames", recorded_frames)
    EVENTS.clear()
    LOADED.clear()
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "recording-test"}))
    yield model
    EVENTS.clear()
    LOADED.clear()


@pytest.fixture(scope="module")
def film(tmp_path_factory: pytest.TempPathFactory) -> MadeVideo:
    scenes = [("red", 3), ("green", 3), ("blue", 3)]
    return make_lavfi_video(tmp_path_factory.mktemp("film") / "film.mp4", scenes, size=(320, 240))


def describe(film: MadeVideo, model: Path, out: io.StringIO, *options: str) -> int:
    """``python -m app describe`` in this process, quiet, with the recording model."""
    return main(["describe", str(film.path), "--model", str(model), "--quiet", *options], out)


def test_the_model_loads_after_the_first_frame_is_decoded(
    film: MadeVideo, recording_model: Path
) -> None:
    out = io.StringIO()
    status = describe(film, recording_model, out, "--scan", "full", "--speech", "subtitles")

    assert status == 0
    assert EVENTS[:2] == ["first frame decoded", "model loaded"]
    assert EVENTS.count("model loaded") == 1
    # The kind's frames_per_scene reached the scan: two frames of each scene.
    (captioner,) = LOADED
    requests = [r for call in captioner.requests for r in call or ()]
    assert len(requests) == 3
    assert all(len(request.frames) == 2 for request in requests)
    assert [d["text"] for d in json.loads(out.getvalue())] == [
        "A red scene.",
        "A green scene.",
        "A blue scene.",
    ]


def test_a_language_the_kind_cannot_write_fails_without_loading_the_model(
    film: MadeVideo, recording_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = describe(
        film, recording_model, io.StringIO(), "--language", "fr", "--translator", "none"
    )

    assert status == 1
    assert "descriptions in 'fr' need a translator" in capsys.readouterr().err
    assert "model loaded" not in EVENTS


def test_the_kinds_answers_import_neither_torch_nor_transformers(tiny_blip_dir: Path) -> None:
    script = (
        "import sys\n"
        "from app.cli import _LazyCaptioner\n"
        "from app.models import CaptionOptions\n"
        f"captioner = _LazyCaptioner({str(tiny_blip_dir)!r}, CaptionOptions())\n"
        "print(captioner.frames_per_scene, sorted(captioner.languages))\n"
        "print(sorted({'torch', 'transformers'} & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["1 ['en']", "[]"]


def test_a_chunk_worker_imports_the_scan_without_the_other_steps() -> None:
    # What a spawned worker of the chunked scan imports (``chunks.scan_chunk`` by reference).
    script = (
        "import sys\n"
        "import app.pipeline.chunks\n"
        "from app.pipeline import Scene\n"
        "print(Scene.__module__)\n"
        "print(sorted({'app.pipeline.describe', 'app.pipeline.sources', 'httpx', 'pysubs2'}"
        " & set(sys.modules)))\n"
    )
    assert _python(script) == ["app.pipeline.types", "[]"]


def test_listing_the_scenes_of_a_local_file_imports_no_http_client(film: MadeVideo) -> None:
    script = (
        "import io, sys\n"
        "from app.cli import main\n"
        f"status = main(['scenes', {str(film.path)!r}, '--format', 'json'], stdout=io.StringIO())\n"
        "print(status, 'httpx' in sys.modules)\n"
    )
    assert _python(script) == ["0 False"]


def _python(script: str) -> list[str]:
    """The lines ``script`` prints, run in a fresh interpreter on this checkout."""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()
