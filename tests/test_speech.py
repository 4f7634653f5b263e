"""Speech detection on generated media with espeak-ng sentences at known times."""

from __future__ import annotations

import logging
import math
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from app.errors import InputError, ModelLoadError, VideoOpenFailure
from app.pipeline.pauses import merge_intervals
from app.pipeline.speech import (
    SAMPLE_RATE,
    SPEECH_DETECTORS,
    SpeechDetector,
    SpeechOptions,
    detect_speech,
    make_speech_detector,
    silero,
    stream_speech,
)
from app.pipeline.speech.silero import SileroSpeechDetector
from app.pipeline.speech.webrtc import WebRtcSpeechDetector
from app.pipeline.types import Interval
from tests.fixtures.audio import ESPEAK_RATE, SpeechMedia, SpeechMediaFactory, speak
from tests.fixtures.media import damage_packets

DETECTORS = sorted(SPEECH_DETECTORS)
TOLERANCE = 0.3
"""Largest accepted error of a speech boundary, seconds."""


def assert_matches(found: list[Interval], truth: list[Interval]) -> None:
    """Same number of intervals as the truth, every boundary within ``TOLERANCE``."""
    assert len(found) == len(truth), f"found {found}, expected about {truth}"
    for got, want in zip(found, truth, strict=True):
        assert got.start == pytest.approx(want.start, abs=TOLERANCE), (got, want)
        assert got.end == pytest.approx(want.end, abs=TOLERANCE), (got, want)


@pytest.mark.parametrize("detector", DETECTORS)
def test_finds_speech_in_video(speech_video: SpeechMedia, detector: str) -> None:
    # Three intervals: the last two sentences, 0.15 s apart, are one (min_silence is 0.3 s).
    assert_matches(detect_speech(speech_video.path, detector), speech_video.speech)


@pytest.mark.parametrize("detector", DETECTORS)
def test_finds_speech_in_audio_only_file(speech_audio_only: SpeechMedia, detector: str) -> None:
    assert_matches(detect_speech(speech_audio_only.path, detector), speech_audio_only.speech)


@pytest.mark.parametrize("detector", DETECTORS)
def test_silent_audio_has_no_speech(silent_video: SpeechMedia, detector: str) -> None:
    assert detect_speech(silent_video.path, detector) == []


@pytest.mark.parametrize("detector", DETECTORS)
def test_video_without_audio_has_no_speech(
    video_without_audio: Path, detector: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="app.pipeline.speech"):
        assert detect_speech(video_without_audio, detector) == []
    assert "no audio stream" in caplog.text


@pytest.mark.parametrize("speaking_default", [True, False])
def test_speech_is_heard_on_the_films_default_audio_track(
    speech_video: SpeechMedia, silent_video: SpeechMedia, tmp_path: Path, speaking_default: bool
) -> None:
    # A film with two audio tracks, a silent one first: the default track is the one heard.
    path = tmp_path / "two-tracks.mkv"
    default, other = ("1", "0") if speaking_default else ("0", "1")
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(silent_video.path),
         "-i", str(speech_video.path), "-map", "0:v", "-map", "0:a", "-map", "1:a", "-c", "copy",
         f"-disposition:a:{default}", "default", f"-disposition:a:{other}", "0", str(path)],
        check=True,
    )  # fmt: skip
    found = detect_speech(path, "webrtc")
    if speaking_default:
        assert_matches(found, speech_video.speech)
    else:
        assert found == []


@pytest.mark.parametrize("detector", DETECTORS)
def test_damaged_sound_is_skipped_and_the_speech_after_it_stays_in_place(
    speech_video: SpeechMedia, tmp_path: Path, detector: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Before, the first damaged packet ended speech detection, and with it the job ("the
    # audio track ... could not be decoded"), where the ffmpeg command decodes on past it.
    # Silence stands in for what was lost, so the speech after it keeps its times.
    first, second = speech_video.speech[:2]
    middle = (first.end + second.start) / 2
    path = tmp_path / "damaged.mp4"
    assert len(damage_packets(speech_video.path, path, "audio", middle - 0.2, middle + 0.2)) > 10
    assert_matches(detect_speech(path, detector), speech_video.speech)
    assert "a damaged audio packet near" in caplog.text


def test_a_broadcast_recordings_speech_is_heard_on_the_films_programme(
    speech_video: SpeechMedia, silent_video: SpeechMedia, tmp_path: Path
) -> None:
    # An MPEG-TS recording of two programmes: the film, whose sound is silent, and a radio
    # station speaking at a higher bitrate. The film's own sound is the one listened to.
    path = tmp_path / "two-programmes.ts"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(silent_video.path),
         "-i", str(speech_video.path), "-map", "0:v", "-map", "0:a", "-map", "1:a",
         "-c:v", "copy", "-c:a", "mp2", "-b:a:0", "64k", "-b:a:1", "256k",
         "-program", "title=film:st=0:st=1", "-program", "title=radio:st=2", str(path)],
        check=True,
    )  # fmt: skip
    assert detect_speech(path, "webrtc") == []


def test_a_video_without_audio_loads_no_detector(
    video_without_audio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Silero's model would be damaged: nothing is loaded when there is nothing to hear.
    (tmp_path / "silero_vad.onnx").write_bytes(b"not an onnx model")
    monkeypatch.setattr(silero.resources, "files", lambda package: tmp_path)
    assert detect_speech(video_without_audio, "silero") == []


def test_text_file_is_not_media(tmp_path: Path) -> None:
    notes = tmp_path / "film.mp4"
    notes.write_text("This is a shopping list, not a film.\n" * 20)
    with pytest.raises(VideoOpenFailure, match=r"film\.mp4 is not a video or audio file"):
        detect_speech(notes)


def test_truncated_mp4_is_not_media(speech_video: SpeechMedia, tmp_path: Path) -> None:
    # ffmpeg writes the mp4 index at the end, so the first half alone cannot be opened.
    data = speech_video.path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoOpenFailure, match=r"cut\.mp4"):
        detect_speech(cut)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        detect_speech(tmp_path / "nowhere.mp4")


def test_unknown_detector_lists_valid_names(speech_video: SpeechMedia) -> None:
    with pytest.raises(ValueError, match="choose one of: silero, webrtc"):
        detect_speech(speech_video.path, "whisper")


@pytest.mark.parametrize(
    "changes", [{"threshold": 0.0}, {"threshold": 1.0}, {"min_speech": -1.0}, {"padding": -0.1}]
)
def test_options_refuse_nonsense(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SpeechOptions(**changes)


def test_merge_intervals() -> None:
    spans = [Interval(5, 6), Interval(0, 1), Interval(1.2, 2), Interval(0.5, 0.8), Interval(3, 4)]
    assert merge_intervals(spans) == [
        Interval(0, 1),
        Interval(1.2, 2),
        Interval(3, 4),
        Interval(5, 6),
    ]
    assert merge_intervals(spans, gap=0.3) == [Interval(0, 2), Interval(3, 4), Interval(5, 6)]
    assert merge_intervals([]) == []


@pytest.fixture(scope="module")
def spoken_samples(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Interval]:
    """A sentence at 16 kHz after one second of silence, with its true extent."""
    clip = speak("The train leaves at midnight.", tmp_path_factory.mktemp("spoken") / "s.wav")
    at_16k = np.interp(
        np.arange(0, clip.size / ESPEAK_RATE, 1 / SAMPLE_RATE),
        np.arange(clip.size) / ESPEAK_RATE,
        clip,
    ).astype(np.float32)
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    samples = np.concatenate((silence, at_16k, silence))
    return samples, Interval(1.0, 1.0 + at_16k.size / SAMPLE_RATE)


@pytest.mark.parametrize("detector", DETECTORS)
def test_chunking_does_not_change_the_result(
    spoken_samples: tuple[np.ndarray, Interval], detector: str
) -> None:
    samples, truth = spoken_samples
    whole = make_speech_detector(detector).detect(samples, SAMPLE_RATE)
    sizes = np.random.default_rng(3).integers(1, 3000, size=samples.size // 100)
    bounds = np.cumsum(sizes)
    chunks = np.split(samples, bounds[bounds < samples.size])
    assert make_speech_detector(detector).detect(iter(chunks), SAMPLE_RATE) == whole
    assert_matches(whole, [truth])


@pytest.fixture(scope="module")
def dialogue_samples(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """Short lines at 16 kHz, with pauses around the length at which a stream is cut.

    A 0.25 s pause is bridged into one interval (min_silence 0.3 s); pauses from 0.9 to 1.3 s
    in 32 ms steps put the start of the next line at every position just after a cut.
    """
    directory = tmp_path_factory.mktemp("dialogue")
    lines = ["Where were you?", "At the station.", "Why?", "The train was late.", "Again."]
    clips = []
    for i, line in enumerate(lines):
        clip = speak(line, directory / f"{i}.wav")
        clips.append(
            np.interp(
                np.arange(0, clip.size / ESPEAK_RATE, 1 / SAMPLE_RATE),
                np.arange(clip.size) / ESPEAK_RATE,
                clip,
            ).astype(np.float32)
        )
    pauses = [1.0, 0.25, 2.5, *(0.9 + 0.032 * k for k in range(13)), 1.0]
    parts = [np.zeros(round(pauses[0] * SAMPLE_RATE), dtype=np.float32)]
    for i, pause in enumerate(pauses[1:]):
        parts += [clips[i % len(clips)], np.zeros(round(pause * SAMPLE_RATE), dtype=np.float32)]
    return np.concatenate(parts)


def rounded(intervals: list[Interval]) -> list[tuple[float, float]]:
    return [(round(i.start, 6), round(i.end, 6)) for i in intervals]


@pytest.mark.parametrize("kind", [SileroSpeechDetector, WebRtcSpeechDetector])
def test_streaming_reports_speech_early_and_changes_nothing(
    dialogue_samples: np.ndarray, kind: type[SileroSpeechDetector | WebRtcSpeechDetector]
) -> None:
    updates = list(kind().stream(dialogue_samples, SAMPLE_RATE))
    known = [u.known_until for u in updates]
    assert known == sorted(known) and len(known) >= 3
    assert known[-1] == pytest.approx(dialogue_samples.size / SAMPLE_RATE)
    for update in updates:
        assert all(i.end <= update.known_until for i in update.intervals)
    streamed = [i for u in updates for i in u.intervals]
    # The first sentence is reported long before the audio ends.
    assert next(u.known_until for u in updates if u.intervals) < known[-1] / 2
    # One pass that never cuts at a quiet run finds exactly the same intervals.
    one_pass = kind(split_after=math.inf).detect(dialogue_samples, SAMPLE_RATE)
    assert rounded(streamed) == rounded(one_pass)
    assert len(streamed) >= 10


def test_speech_from_a_file_is_streamed(speech_video: SpeechMedia) -> None:
    updates = list(stream_speech(speech_video.path))
    assert len(updates) > 2
    assert updates[-1].known_until == pytest.approx(speech_video.duration, abs=0.1)
    assert_matches(merge_intervals(i for u in updates for i in u.intervals), speech_video.speech)


def test_streaming_stops_when_asked(speech_video: SpeechMedia) -> None:
    stop = threading.Event()
    updates = stream_speech(speech_video.path, stop=stop)
    first = next(updates)
    stop.set()
    rest = list(updates)
    # Decoding stopped at the next audio frame; the detector reported what it had.
    assert len(rest) == 1
    assert first.known_until <= rest[0].known_until < first.known_until + 0.5
    assert rest[0].known_until < speech_video.duration - 1


@pytest.mark.parametrize("detector", DETECTORS)
def test_no_audio_gives_no_speech(detector: str) -> None:
    assert make_speech_detector(detector).detect([], SAMPLE_RATE) == []


def test_detectors_follow_the_protocol() -> None:
    assert isinstance(SileroSpeechDetector(), SpeechDetector)
    assert isinstance(WebRtcSpeechDetector(), SpeechDetector)


def test_silero_refuses_other_rates_and_stereo() -> None:
    detector = SileroSpeechDetector()
    with pytest.raises(ValueError, match="16000 Hz"):
        detector.detect(np.zeros(8000, dtype=np.float32), 8000)
    with pytest.raises(ValueError, match="mono"):
        detector.detect(np.zeros((2, 8000), dtype=np.float32), SAMPLE_RATE)


def test_webrtc_refuses_bad_aggressiveness() -> None:
    with pytest.raises(ValueError, match="aggressiveness"):
        WebRtcSpeechDetector(aggressiveness=4)


def test_silero_leaves_torch_threads_as_it_found_them(
    spoken_samples: tuple[np.ndarray, Interval],
) -> None:
    before = torch.get_num_threads()
    SileroSpeechDetector().detect(spoken_samples[0], SAMPLE_RATE)
    assert torch.get_num_threads() == before


# --- comparison of the detectors -----------------------------------------------------------


@dataclass(frozen=True)
class Score:
    """How a detection compares with the truth."""

    intervals: int
    """Intervals found."""
    boundary_errors: list[float]
    """Signed error of each boundary (found minus true), when the interval counts agree."""
    false_speech: float
    """Seconds detected outside the truth."""
    missed: float
    """Seconds of truth not detected."""


def _covered(spans: list[Interval], within: list[Interval]) -> float:
    """Seconds of ``spans`` that lie inside ``within`` (both sorted and non-overlapping)."""
    return sum(max(0.0, min(a.end, b.end) - max(a.start, b.start)) for a in spans for b in within)


def score(found: list[Interval], truth: list[Interval]) -> Score:
    hit = _covered(found, truth)
    errors: list[float] = []
    if len(found) == len(truth):
        for got, want in zip(found, truth, strict=True):
            errors += [got.start - want.start, got.end - want.end]
    return Score(
        intervals=len(found),
        boundary_errors=errors,
        false_speech=sum(s.duration for s in found) - hit,
        missed=sum(s.duration for s in truth) - hit,
    )


def test_detector_comparison(speech_media: SpeechMediaFactory) -> None:
    """Measure both detectors on clean speech, speech over noise, and music alone.

    Run with ``-s`` to see the table.
    """
    cases = {
        "quiet": speech_media(name="quiet.mp4"),
        "noise": speech_media(name="noise.mp4", background="noise"),
        "music": speech_media((12.0,), name="music.mp4", background="music"),
    }
    scores = {
        (detector, case): score(detect_speech(media.path, detector), media.speech)
        for detector in DETECTORS
        for case, media in cases.items()
    }
    print("\ndetector  audio  intervals  mean|err|  max|err|  signed  false s  missed s")
    for (detector, case), result in scores.items():
        errors = np.array(result.boundary_errors or [np.nan])
        print(
            f"{detector:8}  {case:5}  {result.intervals:2}/{len(cases[case].speech):<2}     "
            f"{np.abs(errors).mean():8.3f}  {np.abs(errors).max():8.3f}  {errors.mean():+6.3f}  "
            f"{result.false_speech:7.2f}  {result.missed:8.2f}"
        )
    for detector in DETECTORS:
        quiet = scores[detector, "quiet"]
        assert quiet.intervals == len(cases["quiet"].speech)
        assert max(abs(e) for e in quiet.boundary_errors) <= TOLERANCE
    # The default must not mistake music for dialogue, nor miss speech under noise.
    assert scores["silero", "music"].false_speech == 0
    assert scores["silero", "noise"].intervals == len(cases["noise"].speech)


def test_a_damaged_silero_model_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "silero_vad.onnx").write_bytes(b"not an onnx model")
    monkeypatch.setattr(silero.resources, "files", lambda package: tmp_path)
    with pytest.raises(ModelLoadError, match=r"could not be loaded.*force-reinstall silero-vad"):
        SileroSpeechDetector()
