"""The whole pipeline on generated videos, with a scripted captioner (wording-independent)."""

from __future__ import annotations

import math
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import (
    ModelLoadError,
    SubtitleError,
    VideoIncomplete,
    VideoOpenFailure,
    VideoTooLong,
)
from app.models import CaptionRequest
from app.pipeline.describe import (
    DescribeOptions,
    MediaOptions,
    SpeechSource,
    describe,
    describe_media,
)
from app.pipeline.speech import SPEECH_DETECTORS, AudioInput, SpeechOptions, SpeechUpdate
from app.pipeline.types import Description, Interval, Progress, Stage
from app.registry import Member
from tests.fixtures.audio import SpeechMedia
from tests.fixtures.media import MadeVideo, VideoFactory
from tests.fixtures.models import ScriptedCaptioner

# Distinct enough for METEOR that none is dropped as a repeat.
TEXTS = [
    "a man opens a door",
    "two dogs run across a field",
    "a car drives through the rain",
    "children play with a ball",
    "a woman reads a letter",
    "a train crosses a bridge",
]


def srt(path: Path, cues: list[tuple[float, float]], encoding: str = "utf-8") -> Path:
    def stamp(t: float) -> str:
        ms = round(t * 1000)
        return f"{ms // 3600000:02}:{ms // 60000 % 60:02}:{ms // 1000 % 60:02},{ms % 1000:03}"

    blocks = [
        f"{i}\n{stamp(a)} --> {stamp(b)}\nСлова героя {i}\n" for i, (a, b) in enumerate(cues, 1)
    ]
    path.write_text("\n".join(blocks), encoding=encoding)
    return path


def test_every_scene_is_described_without_subtitles(six_scene_video: MadeVideo) -> None:
    captioner = ScriptedCaptioner(TEXTS)
    results = list(describe(six_scene_video.path, captioner))
    assert [d.text for d in results] == [t.capitalize() + "." for t in TEXTS]
    starts = [0.0, *six_scene_video.cut_times]
    ends = [*six_scene_video.cut_times, six_scene_video.duration]
    for d, start, end in zip(results, starts, ends, strict=True):
        assert (d.scene_start, d.end) == (pytest.approx(start), pytest.approx(end))
        assert d.start == d.scene_start
        assert d.frame_time == pytest.approx(start + 1.0)
        assert d.max_words == math.floor((end - start) * 2.5 + 1e-9)
        assert d.fits
    assert [d.scene_index for d in results] == list(range(6))


def test_only_scenes_with_a_long_enough_pause_are_described(
    six_scene_video: MadeVideo, tmp_path: Path
) -> None:
    # Scenes: 0-4, 4-7, 7-12, 12-14, 14-18, 18-20 s.
    cues = [
        (0.0, 3.5),  # scene 0: 3.5-4 free (0.5 s): not described
        (4.0, 5.0),  # scene 1: 5-7 free (2 s): described from 5.0
        (7.0, 11.0),  # scene 2: 11-12 (1 s): not described
        (11.5, 12.5),
        (12.5, 14.2),  # scene 3 fully covered, overlapping cues
        (15.0, 16.0),  # scene 4: 16-18 free: described from 16.0 (14-15 is too short)
        (18.0, 25.0),  # scene 5 covered; the cue runs past the end of the video
    ]
    subtitles = srt(tmp_path / "dialogue.srt", cues, encoding="cp1251")
    results = list(
        describe_media(
            str(six_scene_video.path), ScriptedCaptioner(TEXTS), subtitles=str(subtitles)
        )
    )
    assert [d.scene_index for d in results] == [1, 4]
    assert [(d.start, d.end) for d in results] == [
        (pytest.approx(5.0), pytest.approx(7.0)),
        (pytest.approx(16.0), pytest.approx(18.0)),
    ]
    assert [d.max_words for d in results] == [5, 5]


def test_repeated_caption_is_dropped(six_scene_video: MadeVideo) -> None:
    texts = ["a man walks down the street", "a man is walking down a street", *TEXTS[2:]]
    seen: list[Progress] = []
    results = list(
        describe(six_scene_video.path, ScriptedCaptioner(texts), on_progress=seen.append)
    )
    assert [d.scene_index for d in results] == [0, 2, 3, 4, 5]
    assert (seen[-1].scenes_captioned, seen[-1].captions_dropped) == (6, 1)


def test_caption_is_trimmed_to_its_word_budget(coded_video: VideoFactory) -> None:
    made = coded_video([("red", 50), ("blue", 50)])  # two 2 s scenes: 5 words each
    long = "a man in a dark coat walks slowly along the wet street at night"
    captioner = ScriptedCaptioner([long, "two dogs run across a big green field today"])
    results = list(describe(made.path, captioner))
    assert [d.max_words for d in results] == [5, 5]
    for d in results:
        assert len(d.text.split()) <= 5
        assert not d.fits
    # The model was told each image's budget, and the second the first description.
    assert captioner.requests == [
        [CaptionRequest(max_words=5)],
        [CaptionRequest(max_words=5, previous=(results[0].text,))],
    ]


def test_near_identical_frame_skips_the_model(coded_video: VideoFactory, tmp_path: Path) -> None:
    made = coded_video([("red", 75), ("green", 75), ("red", 75)])
    subtitles = srt(tmp_path / "s.srt", [(3.0, 6.0)])  # the green scene is all dialogue
    captioner = ScriptedCaptioner(TEXTS)
    seen: list[Progress] = []
    results = list(
        describe_media(str(made.path), captioner, subtitles=str(subtitles), on_progress=seen.append)
    )
    assert [d.scene_index for d in results] == [0]
    assert captioner.captioned == 1
    final = seen[-1]
    assert (final.scenes_found, final.scenes_without_pause, final.scenes_similar) == (3, 1, 1)
    assert (final.scenes_captioned, final.captions_dropped) == (1, 0)
    # With the check off, the second red scene reaches the model.
    captioner = ScriptedCaptioner(TEXTS)
    options = MediaOptions(describe=DescribeOptions(similar_frame_threshold=None))
    results = list(
        describe_media(str(made.path), captioner, subtitles=str(subtitles), options=options)
    )
    assert [d.scene_index for d in results] == [0, 2]


def test_first_description_arrives_before_scanning_ends(six_scene_video: MadeVideo) -> None:
    seen: list[Progress] = []
    options = DescribeOptions(queue_size=1, batch_size=1)
    results = describe(
        six_scene_video.path, ScriptedCaptioner(TEXTS), options=options, on_progress=seen.append
    )
    first = next(results)
    # The decoder can be at most two scenes ahead of the captioner: the queue holds one.
    assert first.scene_index == 0
    assert seen[-1].stage == Stage.SCANNING
    assert seen[-1].scanned_seconds < six_scene_video.duration - 4
    rest = list(results)
    assert len(rest) == 5
    assert seen[-1].stage == Stage.DONE
    assert seen[-1].scenes_found == 6 and seen[-1].scenes_captioned == 6


def scan_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("scan-")]


def test_closing_the_generator_early_stops_the_decoder(six_scene_video: MadeVideo) -> None:
    captioner = ScriptedCaptioner(TEXTS)
    results = describe(six_scene_video.path, captioner, options=DescribeOptions(queue_size=1))
    next(results)
    assert scan_threads()  # the decoder is running, held by the full queue
    results.close()
    assert scan_threads() == []
    assert captioner.captioned < 6


def test_a_stop_signal_ends_the_video_at_the_next_safe_point(six_scene_video: MadeVideo) -> None:
    stop = threading.Event()
    seen: list[Progress] = []
    captioner = ScriptedCaptioner(TEXTS)
    results = describe(
        six_scene_video.path,
        captioner,
        options=DescribeOptions(queue_size=1, batch_size=1),
        on_progress=seen.append,
        stop=stop,
    )
    first = next(results)
    stop.set()
    assert list(results) == []  # nothing after the description being handed over
    assert first.scene_index == 0 and captioner.captioned == 1
    assert scan_threads() == []
    assert Stage.DONE not in {p.stage for p in seen}


def test_captioner_failure_propagates(six_scene_video: MadeVideo) -> None:
    class Broken(ScriptedCaptioner):
        def caption(self, images, requests=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("CUDA out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        list(describe(six_scene_video.path, Broken()))


def test_too_long_video_is_refused(six_scene_video: MadeVideo) -> None:
    with pytest.raises(VideoTooLong, match="longer than the 10 s"):
        list(
            describe(
                six_scene_video.path, ScriptedCaptioner(), options=DescribeOptions(max_duration=10)
            )
        )


def test_text_file_named_mp4(tmp_path: Path) -> None:
    fake = tmp_path / "film.mp4"
    fake.write_text("hello\n" * 100)
    with pytest.raises(VideoOpenFailure, match="not a readable video"):
        list(describe_media(str(fake), ScriptedCaptioner()))


def test_a_downloaded_non_video_is_named_by_its_url(file_server: tuple[str, Path]) -> None:
    base, root = file_server
    (root / "film.mp4").write_text("hello\n" * 100)
    with pytest.raises(VideoOpenFailure) as raised:
        list(describe_media(f"{base}/film.mp4", ScriptedCaptioner()))
    assert str(raised.value).startswith(f"{base}/film.mp4 is not a readable video")
    assert "describer-video-" not in str(raised.value)


def test_a_truncated_video_with_its_index_is_incomplete_not_a_success(
    coded_video: VideoFactory, tmp_path: Path
) -> None:
    # The index (moov) in front, so the cut file opens and decodes up to the damage.
    made = coded_video(
        [("red", 100), ("blue", 100), ("green", 100)], extra_args=["-movflags", "+faststart"]
    )
    data = made.path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    got: list[Description] = []
    with pytest.raises(VideoIncomplete, match=r"incomplete .*stopped at [\d.]+ s of 12.0 s"):
        got.extend(describe(cut, ScriptedCaptioner(), options=DescribeOptions(min_gap=0.5)))
    assert got, "the descriptions before the damage are still yielded"


def test_subtitles_source_without_subtitles_warns(
    six_scene_video: MadeVideo, caplog: pytest.LogCaptureFixture
) -> None:
    list(
        describe_media(
            str(six_scene_video.path),
            ScriptedCaptioner(),
            options=MediaOptions(speech_source=SpeechSource.SUBTITLES),
        )
    )
    assert any(
        "none were given" in r.getMessage() for r in caplog.records if r.levelname == "WARNING"
    )


def test_unparseable_subtitles(six_scene_video: MadeVideo, tmp_path: Path) -> None:
    bad = tmp_path / "bad.srt"
    bad.write_text("this is not\na subtitle file\n")
    with pytest.raises(SubtitleError):
        list(describe_media(str(six_scene_video.path), ScriptedCaptioner(), subtitles=str(bad)))


def test_utf16_subtitles_work(six_scene_video: MadeVideo, tmp_path: Path) -> None:
    subtitles = srt(tmp_path / "s.srt", [(0.0, 20.0)], encoding="utf-16")
    assert (
        list(
            describe_media(str(six_scene_video.path), ScriptedCaptioner(), subtitles=str(subtitles))
        )
        == []
    )


def overlaps(d: Description, speech: list[Interval]) -> bool:
    return any(d.start < s.end and s.start < d.end for s in speech)


def test_pauses_from_the_audio_track_when_there_are_no_subtitles(speech_video: SpeechMedia) -> None:
    results = list(describe_media(str(speech_video.path), ScriptedCaptioner(TEXTS)))
    assert results, "the video has pauses of 3 s: something must be described"
    for d in results:
        assert d.end - d.start >= 2.0
        # Detected speech is within 0.3 s of the truth: allow that much overlap.
        shrunk = Interval(d.start + 0.3, d.end - 0.3)
        assert not any(shrunk.start < s.end and s.start < shrunk.end for s in speech_video.speech)


def test_audio_is_ignored_when_source_is_subtitles(speech_video: SpeechMedia) -> None:
    results = list(
        describe_media(
            str(speech_video.path),
            ScriptedCaptioner(TEXTS),
            options=MediaOptions(speech_source=SpeechSource.SUBTITLES),
        )
    )
    [only] = results
    assert (only.start, only.end) == (0.0, pytest.approx(speech_video.duration, abs=0.1))


def test_video_without_audio_track_means_no_speech(video_without_audio: Path) -> None:
    results = list(describe_media(str(video_without_audio), ScriptedCaptioner(TEXTS)))
    assert len(results) == 1
    assert results[0].start == 0.0


@pytest.fixture(scope="module")
def six_scenes_with_audio(
    six_scene_video: MadeVideo, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The six-scene video (scenes 0-4, 4-7, 7-12, 12-14, 14-18, 18-20 s) with a silent track."""
    path = tmp_path_factory.mktemp("with-audio") / "six-audio.mp4"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(six_scene_video.path),
         "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-shortest",
         "-c:v", "copy", "-c:a", "aac", str(path)],
        check=True,
    )  # fmt: skip
    return path


class GatedDetector:
    """A speech detector that knows the first 8 s at once (no speech there), then holds the
    rest (speech from 12.5 s) until the test opens the gate."""

    gate = threading.Event()
    waited_out = False

    def __init__(self, options: SpeechOptions) -> None:
        pass

    def stream(self, audio: AudioInput, sample_rate: int) -> Iterator[SpeechUpdate]:
        yield SpeechUpdate([], 8.0)
        # Bounded, so a pipeline that wrongly waits for all the speech fails instead of hanging.
        GatedDetector.waited_out = not self.gate.wait(timeout=60)
        yield SpeechUpdate([Interval(12.5, 25.0)], 25.0)

    def detect(self, audio: AudioInput, sample_rate: int) -> list[Interval]:
        return [i for u in self.stream(audio, sample_rate) for i in u.intervals]


class FailingDetector(GatedDetector):
    def stream(self, audio: AudioInput, sample_rate: int) -> Iterator[SpeechUpdate]:
        yield SpeechUpdate([], 8.0)
        raise ModelLoadError("the speech model broke at 8 s")


@pytest.fixture
def scripted_detectors(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Register ``gated`` and ``failing``; the gate is closed, and opened at the end."""
    # Registered as any detector is: a module attribute and a registry line.
    monkeypatch.setitem(SPEECH_DETECTORS.members, "gated", Member(f"{__name__}:GatedDetector"))
    monkeypatch.setitem(SPEECH_DETECTORS.members, "failing", Member(f"{__name__}:FailingDetector"))
    GatedDetector.gate.clear()
    GatedDetector.waited_out = False
    yield
    GatedDetector.gate.set()


@pytest.mark.usefixtures("scripted_detectors")
def test_scenes_are_decided_while_the_audio_is_still_analysed(six_scenes_with_audio: Path) -> None:
    results = describe_media(
        str(six_scenes_with_audio),
        ScriptedCaptioner(TEXTS),
        options=MediaOptions(
            speech_detector="gated", describe=DescribeOptions(queue_size=1, batch_size=1)
        ),
    )
    # Scenes 0 and 1 end before 8 s: described while the detector holds the rest.
    assert [next(results).scene_index, next(results).scene_index] == [0, 1]
    assert not GatedDetector.gate.is_set()
    GatedDetector.gate.set()
    # Scene 2 (7-12 s) is free; 3 has 0.5 s before the speech; 4 and 5 are all speech.
    assert [d.scene_index for d in results] == [2]
    assert not GatedDetector.waited_out


@pytest.mark.usefixtures("scripted_detectors")
def test_a_speech_detector_failure_fails_the_video(six_scenes_with_audio: Path) -> None:
    results = describe_media(
        str(six_scenes_with_audio),
        ScriptedCaptioner(TEXTS),
        options=MediaOptions(speech_detector="failing"),
    )
    with pytest.raises(ModelLoadError, match="broke at 8 s"):
        list(results)


@pytest.mark.usefixtures("scripted_detectors")
def test_speech_detection_stops_with_the_pipeline(six_scenes_with_audio: Path) -> None:
    results = describe_media(
        str(six_scenes_with_audio),
        ScriptedCaptioner(TEXTS),
        options=MediaOptions(speech_detector="gated"),
    )
    assert next(results).scene_index == 0
    listeners = [t for t in threading.enumerate() if t.name.startswith("listen-")]
    assert listeners
    GatedDetector.gate.set()
    results.close()
    assert not any(t.is_alive() for t in listeners)


@pytest.mark.parametrize(
    ("side", "expected"), [(768, (768, 432)), (None, (1280, 720)), (2000, (1280, 720))]
)
def test_frames_reach_the_captioner_scaled_to_the_caption_side(
    coded_video: VideoFactory, side: int | None, expected: tuple[int, int]
) -> None:
    made = coded_video([("red", 50), ("blue", 50)], size=(1280, 720))
    captioner = ScriptedCaptioner()
    options = DescribeOptions(caption_image_side=side)
    results = list(describe(made.path, captioner, options=options))
    assert [image.size for call in captioner.calls for image in call] == [expected, expected]
    assert [d.text for d in results] == ["A red scene.", "A blue scene."]


def test_the_captioner_is_told_the_viewers_language(coded_video: VideoFactory) -> None:
    made = coded_video([("red", 50), ("blue", 50)])
    captioner = ScriptedCaptioner(["красная сцена", "синяя сцена"])
    list(describe(made.path, captioner, options=DescribeOptions(language="ru")))
    assert captioner.requests == [
        [CaptionRequest(max_words=5, language="ru")],
        [CaptionRequest(max_words=5, language="ru", previous=("Красная сцена.",))],
    ]


@pytest.mark.parametrize("language", ["russian", "RU", "r"])
def test_a_language_that_is_not_an_iso_code_is_refused(language: str) -> None:
    with pytest.raises(ValueError, match="ISO 639-1"):
        DescribeOptions(language=language)
