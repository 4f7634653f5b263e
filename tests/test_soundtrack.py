"""The description-only track and the film with its audio-description track: decoded and
measured with numpy."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from app.errors import RenderError
from app.pipeline.narration import Clip, Narrator
from app.pipeline.soundtrack import MixOptions, mix_film, write_track
from app.pipeline.tts import TtsOptions, load_engine
from tests.fixtures.audio import DECODE_RATE as RATE
from tests.fixtures.audio import decode, loud
from tests.fixtures.media import damage_packets
from tests.test_narration import description

TONE = 440.0


def tone_level(samples: np.ndarray, start: float, end: float) -> float:
    """Amplitude of the 440 Hz tone over ``[start, end)`` s (projection on sin and cos)."""
    part = samples[round(start * RATE) : round(end * RATE)]
    t = np.arange(part.size) / RATE
    sin, cos = np.sin(2 * np.pi * TONE * t), np.cos(2 * np.pi * TONE * t)
    return float(2 * np.hypot(part @ sin, part @ cos) / part.size)


def make_tone_film(path: Path, seconds: float = 10.0, sound_from: float = 0.0) -> Path:
    """Black video with a steady 440 Hz tone (-24 dBFS) as its sound, which starts
    ``sound_from`` seconds into the film (the audio stream starts that late)."""
    cmd = [
        "ffmpeg", "-y", "-loglevel", "error",
        "-f", "lavfi", "-i", f"color=c=black:s=64x64:r=25:d={seconds}",
        "-itsoffset", str(sound_from),
        "-f", "lavfi", "-i", f"sine=frequency={TONE}:duration={seconds - sound_from}"
        f":sample_rate={RATE}",
        "-filter:a", "volume=0.5", "-c:v", "libx264", "-preset", "ultrafast",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "192k", "-ac", "2", str(path),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    return path


@pytest.fixture(scope="module")
def tone_film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten seconds of black video with a steady 440 Hz tone (-24 dBFS) as its sound."""
    return make_tone_film(tmp_path_factory.mktemp("mix") / "tone.mp4")


@pytest.fixture(scope="module")
def spoken() -> list[Clip]:
    """Two espeak-ng descriptions narrated into their windows (1-4 s and 6-9 s)."""
    narrator = Narrator(load_engine(TtsOptions()))
    texts = [("A woman opens a red door.", 1.0, 4.0), ("A car drives into the night.", 6.0, 9.0)]
    return [narrator.narrate(description(*t)).clip for t in texts]


def chirps(spans: list[tuple[float, float]]) -> list[Clip]:
    """Clips of a 3 kHz tone (far from the film's 440 Hz) over the given spans."""
    clips = []
    for start, end in spans:
        t = np.arange(round((end - start) * RATE)) / RATE
        samples = (0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
        clips.append(Clip(start, samples, RATE))
    return clips


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".m4a", ".mp3", ".opus"])
def test_the_track_has_speech_inside_the_windows_and_silence_elsewhere(
    spoken: list[Clip], tmp_path: Path, suffix: str
) -> None:
    track = write_track(tmp_path / f"track{suffix}", spoken, duration=10.0)
    samples = decode(track)
    # Lossy codecs pad the start and end by some milliseconds.
    assert samples.size / RATE == pytest.approx(10.0, abs=0.1)
    frames = loud(samples)
    expected = np.zeros_like(frames)
    for clip in spoken:
        speech = frames[round(clip.start * 100) : round(clip.end * 100)]
        assert speech.mean() > 0.6, "mostly speech while the description plays"
        expected[round(clip.start * 100) : round(clip.end * 100)] = True
    found = np.flatnonzero(frames)
    for clip in spoken:
        inside = found[(found >= (clip.start - 0.5) * 100) & (found < (clip.end + 0.5) * 100)]
        assert abs(inside[0] / 100 - clip.start) <= 0.05
        assert abs((inside[-1] + 1) / 100 - clip.end) <= 0.05
    # Silence outside the descriptions (5 frames = 50 ms of tolerance at their edges).
    margin = np.convolve(expected, np.ones(11), mode="same") > 0
    assert not frames[~margin].any()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"track{suffix}"]


def _packets(path: Path, kind: str, index: int = 0) -> list[bytes]:
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[index]
        return [bytes(p) for p in container.demux(stream) if p.size]


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_the_mixed_film_copies_the_original_and_tags_the_new_track(
    tone_film: Path, spoken: list[Clip], tmp_path: Path, suffix: str
) -> None:
    out = mix_film(tone_film, spoken, tmp_path / f"film{suffix}", MixOptions(language="ru"))
    with av.open(str(out)) as container:
        video, (original, described) = container.streams.video, container.streams.audio
        assert len(video) == 1
        assert original.disposition & av.stream.Disposition.default
        assert not described.disposition & av.stream.Disposition.default
        assert described.metadata["language"] == "rus"
        title = "title" if suffix == ".mkv" else "handler_name"
        assert described.metadata[title] == "Audio description"
        if suffix == ".mkv":
            assert described.disposition & av.stream.Disposition.visual_impaired
    # Stream copy: every packet of the original video and sound, byte for byte.
    assert _packets(out, "video") == _packets(tone_film, "video")
    assert _packets(out, "audio", 0) == _packets(tone_film, "audio", 0)
    # The descriptions are heard on the new track: louder than the ducked tone alone
    # (0.5 * 10 ** (-12 / 20) / sqrt(2) = 0.089 RMS).
    mixed = decode(out, 1)
    for clip in spoken:
        part = mixed[round(clip.start * RATE) : round(clip.end * RATE)]
        assert np.sqrt(np.mean(part**2)) > 0.12


def test_the_original_is_lowered_by_the_set_db_under_descriptions_only(
    tone_film: Path, tmp_path: Path
) -> None:
    spans = [(2.0, 4.0), (6.5, 8.0)]
    options = MixOptions(duck_db=12.0, ramp=0.25)
    out = mix_film(tone_film, chirps(spans), tmp_path / "film.mkv", options)
    before, after = decode(tone_film), decode(out, 1)
    # Under each description (past the ramps): 12 dB lower.
    for start, end in spans:
        ratio = tone_level(after, start + 0.05, end - 0.05) / tone_level(before, start, end)
        assert 20 * np.log10(ratio) == pytest.approx(-12.0, abs=0.5)
    # Away from them (beyond the ramps): unchanged.
    for start, end in [(0.2, 1.7), (4.3, 6.2), (8.3, 9.8)]:
        ratio = tone_level(after, start, end) / tone_level(before, start, end)
        assert 20 * np.log10(ratio) == pytest.approx(0.0, abs=0.3)
    # Half way down the ramp before the first description: half the reduction in gain.
    half = tone_level(after, 1.87, 1.88) / tone_level(before, 1.87, 1.88)
    assert 10 ** (-12 / 20) < half < 1


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_sound_that_starts_late_is_ducked_at_the_film_s_times(tmp_path: Path, suffix: str) -> None:
    film = make_tone_film(tmp_path / f"late{suffix}", seconds=6.0, sound_from=0.5)
    with av.open(str(film)) as container:
        stream = container.streams.audio[0]
        assert stream.start_time is not None and stream.time_base is not None
        assert float(stream.start_time * stream.time_base) > 0.4
    spans = [(1.0, 2.0), (3.5, 4.5)]
    out = mix_film(film, chirps(spans), tmp_path / "film.mkv", MixOptions(duck_db=12.0))
    mixed = decode(out, 1)
    full = tone_level(mixed, 2.4, 3.0)  # the tone's own level, away from descriptions
    assert full == pytest.approx(0.5 / 8, rel=0.1)  # ffmpeg's sine is 1/8 full scale
    # Silence until the sound starts at 0.5 s, then the tone at its level.
    assert not loud(mixed[: round(0.45 * RATE)]).any()
    assert tone_level(mixed, 0.55, 0.7) == pytest.approx(full, rel=0.05)
    # Lowered by 12 dB under each description at the film's times (the tone's 0.5 s late
    # start would put the dip 0.5 s late), unchanged between them.
    for start, end in spans:
        level = tone_level(mixed, start + 0.05, end - 0.05)
        assert 20 * np.log10(level / full) == pytest.approx(-12.0, abs=0.5)
    for start, end in [(0.55, 0.7), (2.3, 3.2), (4.8, 5.8)]:
        assert 20 * np.log10(tone_level(mixed, start, end) / full) == pytest.approx(0, abs=0.3)


def test_the_descriptions_are_mixed_into_the_films_default_audio_track(
    tone_film: Path, tmp_path: Path
) -> None:
    # A silent track first, the tone second and default: the tone is the film's sound.
    film = tmp_path / "two-tracks.mkv"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(tone_film),
         "-f", "lavfi", "-i", f"anullsrc=r={RATE}:cl=stereo:d=10", "-map", "0:v", "-map", "1:a",
         "-map", "0:a", "-c:v", "copy", "-c:a", "aac", "-disposition:a:0", "0",
         "-disposition:a:1", "default", str(film)],
        check=True,
    )  # fmt: skip
    spans = [(2.0, 4.0)]
    out = mix_film(film, chirps(spans), tmp_path / "film.mkv", MixOptions(duck_db=12.0))
    with av.open(str(out)) as container:
        assert len(container.streams.audio) == 3
    mixed = decode(out, 2)
    full = tone_level(mixed, 5.0, 9.0)
    assert full == pytest.approx(0.5 / 8, rel=0.1)
    level = tone_level(mixed, 2.05, 3.95)
    assert 20 * np.log10(level / full) == pytest.approx(-12.0, abs=0.5)


def test_damaged_sound_is_mixed_as_silence_in_step_with_the_film(
    tone_film: Path, tmp_path: Path
) -> None:
    # Before, the first damaged packet of the film's sound failed the mix ("cannot write").
    film = tmp_path / "damaged.mp4"
    assert len(damage_packets(tone_film, film, "audio", 3.0, 3.3)) > 10
    out = mix_film(film, chirps([(6.0, 7.0)]), tmp_path / "film.mkv", MixOptions())
    mixed = decode(out, 1)
    # Silence stands in for the lost packets, so the sound after them keeps its place and
    # the track its length (the film's ten seconds).
    assert mixed.size / RATE == pytest.approx(10.0, abs=0.05)
    assert tone_level(mixed, 3.05, 3.25) < 0.002
    for start, end in [(1.0, 2.9), (3.5, 5.5), (8.0, 9.8)]:
        assert tone_level(mixed, start, end) == pytest.approx(0.5 / 8, rel=0.1)


def test_a_film_without_audio_gets_the_descriptions_as_its_only_track(
    video_without_audio: Path, tmp_path: Path
) -> None:
    clips = chirps([(0.5, 1.5)])
    out = mix_film(video_without_audio, clips, tmp_path / "film.mkv", MixOptions())
    with av.open(str(out)) as container:
        (described,) = container.streams.audio
        assert described.metadata["title"] == "Audio description"
        # The only sound is the one to play (Matroska marked it not default).
        assert described.disposition & av.stream.Disposition.default
    samples = decode(out)
    assert samples.size / RATE == pytest.approx(3.0, abs=0.1)
    frames = loud(samples)
    assert frames[60:140].all() and not frames[:45].any() and not frames[160:].any()
    assert _packets(out, "video") == _packets(video_without_audio, "video")


def test_an_unwritable_or_unknown_output_is_a_clear_error(
    tone_film: Path, spoken: list[Clip], tmp_path: Path
) -> None:
    with pytest.raises(RenderError, match=r"cannot write /no/such/dir/film\.mkv: No such file"):
        mix_film(tone_film, spoken, "/no/such/dir/film.mkv", MixOptions())
    with pytest.raises(RenderError, match=r"extension: use one of \.wav, \.flac"):
        write_track(tmp_path / "track.aiff", spoken, 10.0)
    with pytest.raises(RenderError, match=r"\.mkv, \.mp4"):
        mix_film(tone_film, spoken, tmp_path / "film.avi", MixOptions())
    assert list(tmp_path.iterdir()) == []


def test_a_failed_mix_leaves_no_partial_file(spoken: list[Clip], tmp_path: Path) -> None:
    notes = tmp_path / "film.mp4"
    notes.write_text("not a film\n" * 100)
    with pytest.raises(RenderError, match="cannot write"):
        mix_film(notes, spoken, tmp_path / "out.mkv", MixOptions())
    assert list(tmp_path.iterdir()) == [notes]


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="'xx' is not an ISO 639-1 language code"):
        MixOptions(language="xx")


def _channels(path: Path, stream_index: int) -> tuple[list[str], np.ndarray]:
    """Audio stream ``stream_index``'s channel names and samples (a row a channel) at 48 kHz,
    decoded packed: PyAV's planar frames of more than eight planes crash it."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[stream_index]
        names = [channel.name for channel in stream.layout.channels]
        resampler = av.AudioResampler(format="flt", layout=stream.layout.name, rate=RATE)
        parts = [
            out.to_ndarray().reshape(-1, len(names))
            for frame in container.decode(stream)
            for out in resampler.resample(frame)
        ]
    return names, np.concatenate(parts).T


@pytest.mark.parametrize("layout", ["5.1", "7.1"])
def test_a_surround_film_gets_the_descriptions_in_its_centre_channel(
    tmp_path: Path, layout: str
) -> None:
    # A 7.1 film crashed the process (PyAV's planar frames of nine planes); in a 5.1 film
    # the speech went into every channel, the surrounds and LFE too, and clipped once
    # folded down to stereo.
    film = tmp_path / f"surround-{layout}.mkv"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error",
         "-f", "lavfi", "-i", "color=c=black:s=64x64:r=25:d=6",
         "-f", "lavfi", "-i", f"sine=frequency={TONE}:duration=6:sample_rate={RATE}",
         "-filter:a", f"volume=0.5,aformat=channel_layouts={layout}",
         "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "flac", str(film)],
        check=True,
    )  # fmt: skip
    out = mix_film(film, chirps([(2.0, 4.0)]), tmp_path / "film.mkv", MixOptions(duck_db=12.0))
    names, original = _channels(film, 0)
    mixed_names, mixed = _channels(out, 1)
    assert mixed_names == names and "FC" in names
    for name, before, after in zip(names, original, mixed, strict=True):
        chirp = np.abs(np.fft.rfft(after[round(2.1 * RATE) : round(3.9 * RATE)]))
        bins = np.fft.rfftfreq(round(1.8 * RATE), 1 / RATE)
        heard = chirp[np.abs(bins - 3000) < 5].max() / chirp.size
        assert (heard > 0.1) == (name == "FC"), (name, heard)
        # The film's sound, in every channel it has, is lowered under the description.
        if tone_level(before, 0.5, 1.5) > 0.01:
            ratio = tone_level(after, 2.1, 3.9) / tone_level(before, 2.1, 3.9)
            assert 20 * np.log10(ratio) == pytest.approx(-12.0, abs=0.5), name


def test_the_mixed_film_keeps_its_tracks_names_subtitles_and_chapters(
    tone_film: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Before, the copied tracks lost their language and title, the subtitles, chapters and
    # attached fonts were left out, and a video this FFmpeg cannot encode (Theora) could
    # not be copied.
    subtitles, chapters, font = (tmp_path / name for name in ["film.srt", "ch.txt", "a.ttf"])
    font.write_bytes(bytes(range(256)) * 4)
    subtitles.write_text("1\n00:00:01,000 --> 00:00:02,000\nHello.\n", encoding="utf-8")
    chapters.write_text(
        ";FFMETADATA1\ntitle=A film\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=5000\n"
        "title=Opening\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=5000\nEND=10000\ntitle=Night\n",
        encoding="utf-8",
    )
    film = tmp_path / "film.mkv"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(tone_film), "-i", str(tone_film),
         "-i", str(subtitles), "-i", str(chapters), "-map", "0:v", "-map", "0:a", "-map", "1:a",
         "-map", "2:s", "-map_metadata", "3", "-map_chapters", "3", "-c:v", "libtheora",
         "-c:a", "copy", "-c:s", "srt",
         "-metadata:s:a:0", "language=rus", "-metadata:s:a:0", "title=Russian",
         "-metadata:s:a:1", "language=eng", "-metadata:s:a:1", "title=English",
         "-metadata:s:s:0", "language=rus", "-attach", str(font),
         "-metadata:s:t", "mimetype=application/x-truetype-font", str(film)],
        check=True,
    )  # fmt: skip
    out = mix_film(film, chirps([(2.0, 4.0)]), tmp_path / "out.mkv", MixOptions())
    with av.open(str(out)) as container:
        assert container.metadata["title"] == "A film"
        assert [c["metadata"]["title"] for c in container.chapters()] == ["Opening", "Night"]
        assert container.streams.video[0].codec_context.name == "theora"
        tracks = [
            (s.metadata.get("language"), s.metadata.get("title")) for s in container.streams.audio
        ]
        assert tracks == [("rus", "Russian"), ("eng", "English"), ("eng", "Audio description")]
        (subtitle,) = container.streams.subtitles
        assert subtitle.metadata["language"] == "rus"
        (attached,) = container.streams.attachments
        assert (attached.name, attached.data) == ("a.ttf", font.read_bytes())
    assert _packets(out, "video") == _packets(film, "video")
    # MP4 holds no SubRip, no attachments (nor Theora): they are left out with a warning.
    remuxed = tmp_path / "film-h264.mkv"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(film), "-i", str(tone_film),
         "-map", "1:v", "-map", "0:a", "-map", "0:s", "-map", "0:t", "-c", "copy",
         str(remuxed)],
        check=True,
    )  # fmt: skip
    out = mix_film(remuxed, chirps([(2.0, 4.0)]), tmp_path / "out.mp4", MixOptions())
    with av.open(str(out)) as container:
        assert not container.streams.subtitles
        assert [s.metadata.get("language") for s in container.streams.audio] == [
            "rus",
            "eng",
            "eng",
        ]
    assert (
        "film-h264.mkv: its subtitle track 3 (srt, rus) cannot be stored in an .mp4 file "
        "and is left out (a .mkv file holds more kinds of subtitles)" in caplog.text
    )
    assert "film-h264.mkv: its attached files (a.ttf) cannot be stored in an .mp4" in caplog.text


@pytest.mark.parametrize("channels", [1, 2])
def test_sound_that_states_no_channel_order_is_mixed(tmp_path: Path, channels: int) -> None:
    # PCM in Matroska names no channel layout ("2 channels"): the AAC encoder refused it.
    film = tmp_path / "pcm.mkv"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=black:s=64x64:d=4",
         "-f", "lavfi", "-i", f"sine=frequency={TONE}:duration=4:sample_rate=8000",
         "-c:v", "libx264", "-preset", "ultrafast", "-ac", str(channels), "-c:a", "pcm_s16le",
         str(film)],
        check=True,
    )  # fmt: skip
    with av.open(str(film)) as container:
        assert {c.name for c in container.streams.audio[0].layout.channels} == {"NONE"}
    out = mix_film(film, chirps([(1.0, 2.0)]), tmp_path / "film.mkv", MixOptions())
    with av.open(str(out)) as container:
        assert container.streams.audio[1].layout.name == ("mono" if channels == 1 else "stereo")
    assert loud(decode(out, 1)[round(1.1 * RATE) : round(1.9 * RATE)]).all()


def test_a_subtitle_track_this_ffmpeg_cannot_read_is_left_out_with_a_warning(
    tone_film: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # PyAV gives no codec context for a track it has no decoder for (TTML here, DVB
    # teletext in broadcast recordings): the mix failed with an AttributeError.
    subtitles = tmp_path / "film.srt"
    subtitles.write_text("1\n00:00:01,000 --> 00:00:02,000\nHello.\n", encoding="utf-8")
    film = tmp_path / "ttml.mp4"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(tone_film), "-i", str(subtitles),
         "-map", "0", "-map", "1", "-c:v", "copy", "-c:a", "copy", "-c:s", "ttml", str(film)],
        check=True,
    )  # fmt: skip
    with av.open(str(film)) as container:
        assert container.streams.subtitles[0].codec_context is None
    out = mix_film(film, chirps([(2.0, 4.0)]), tmp_path / "out.mkv", MixOptions())
    with av.open(str(out)) as container:
        assert not container.streams.subtitles
        assert len(container.streams.audio) == 2
    assert "ttml.mp4: its subtitle track 2 is in a format this FFmpeg cannot read" in caplog.text
