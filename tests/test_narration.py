"""Text-to-speech engines and the narration step: real espeak-ng speech, measured."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app import registry
from app.config import Settings
from app.errors import VoiceError
from app.pipeline.narration import NarrationOptions, Narrator, narrate
from app.pipeline.tts import TTS_ENGINES, Samples, TtsEngine, TtsOptions, load_engine
from app.pipeline.tts.piper import voice_file
from app.pipeline.types import Description
from tests.fixtures.piper import HOP, make_tiny_piper_voice
from tests.fixtures.piper import RATE as PIPER_RATE

LONG = "The detective opens the door and walks slowly into the dark room with a small lamp."


def description(text: str, start: float, end: float) -> Description:
    return Description(
        start=start,
        end=end,
        frame_time=start,
        scene_index=0,
        scene_start=start,
        scene_end=end,
        text=text,
        similarity=0.0,
        max_words=20,
        fits=True,
    )


class WordClock(TtsEngine):
    """A fake engine: 0.5 s of tone per word at speed 1, exactly inversely to the speed."""

    sample_rate = 1000

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def synthesize(self, text: str, speed: float = 1.0) -> Samples:
        self.calls.append((text, speed))
        n = round(len(text.split()) * 500 / speed)
        return np.full(n, 0.5, np.float32)


@pytest.mark.parametrize(
    ("language", "text"),
    [("en", "A woman opens a red door."), ("ru", "Женщина открывает красную дверь.")],
)
def test_espeak_speaks_english_and_russian(language: str, text: str) -> None:
    engine = load_engine(TtsOptions(language=language))
    narration = Narrator(engine).narrate(description(text, 1.0, 6.0))
    spoken = narration.description.spoken_duration
    assert engine.voice == {"en": "en-us", "ru": "ru"}[language]  # type: ignore[attr-defined]
    assert spoken is not None and 1.0 < spoken < 3.5
    assert narration.description.fits
    assert narration.clip.duration == pytest.approx(spoken, abs=0.001)
    # Speech, not silence, from the first sample to the last (the engine's silence is cut).
    rms = float(np.sqrt(np.mean(narration.clip.samples**2)))
    assert rms > 0.03
    assert abs(narration.clip.samples[0]) >= 1e-3 and abs(narration.clip.samples[-1]) >= 1e-3


def test_espeak_rate_changes_the_measured_duration() -> None:
    normal = load_engine(TtsOptions()).synthesize(LONG).size
    fast = load_engine(TtsOptions(rate=1.5)).synthesize(LONG).size
    assert 0.55 < fast / normal < 0.8


def test_a_missing_voice_is_a_clear_error() -> None:
    with pytest.raises(VoiceError, match=r"no-such-voice.*espeak-ng --voices"):
        load_engine(TtsOptions(voice="no-such-voice"))


def test_an_unknown_engine_lists_the_installed_ones() -> None:
    with pytest.raises(ValueError, match="unknown text-to-speech engine 'festival'; choose one of"):
        load_engine(TtsOptions(engine="festival"))


def test_piper_without_its_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    importable = registry._importable
    monkeypatch.setattr(
        registry, "_importable", lambda module: module != "piper" and importable(module)
    )
    assert list(TTS_ENGINES) == ["espeak"]
    with pytest.raises(ValueError, match=r"needs piper-tts.*pip install piper-tts"):
        load_engine(TtsOptions(engine="piper"))
    # The setting names a known engine; the service refuses to start without its package.
    (missing,) = Settings(tts="piper").unavailable_plugins()
    assert missing.startswith("DESCRIBER_TTS: ") and missing.endswith("pip install piper-tts'")


def test_piper_speaks_with_a_voice_file_through_its_phonemizer_and_onnx_runtime(
    tmp_path: Path,
) -> None:
    from piper import PiperVoice

    path = make_tiny_piper_voice(tmp_path)
    engine = load_engine(TtsOptions(engine="piper", voice=str(path)))
    assert engine.sample_rate == PIPER_RATE
    # Piper's own steps: espeak-ng phonemes, then ids; the tiny voice speaks HOP samples each.
    voice = PiperVoice.load(path)
    (phonemes,) = voice.phonemize(LONG)
    ids = len(voice.phonemes_to_ids(phonemes))
    assert ids > len(LONG) // 2
    assert engine.synthesize(LONG).size == ids * HOP
    assert engine.synthesize(LONG, 1.25).size == round(ids * HOP / 1.25)
    assert engine.synthesize("A door.").size < ids * HOP / 4

    # Narration with Piper: faster first, then shorter, as with espeak-ng.
    at_normal = ids * HOP / PIPER_RATE
    narrator = Narrator(engine)
    faster = narrator.narrate(description(LONG, 2.0, 2.0 + 0.9 * at_normal))
    assert [a.speed > 1 for a in faster.attempts] == [False, True]
    assert faster.description.fits and faster.description.text == LONG
    shorter = narrator.narrate(description(LONG, 2.0, 2.0 + 0.5 * at_normal))
    assert shorter.description.fits and len(shorter.description.text) < len(LONG)
    spoken = shorter.description.spoken_duration
    assert spoken == pytest.approx(shorter.clip.samples.size / PIPER_RATE, abs=0.001)


def test_piper_voice_ids_map_to_files_of_the_voices_repository() -> None:
    assert voice_file("en_US-lessac-medium") == "en/en_US/lessac/medium/en_US-lessac-medium.onnx"
    assert voice_file("ru_RU-irina-medium") == "ru/ru_RU/irina/medium/ru_RU-irina-medium.onnx"
    with pytest.raises(VoiceError, match="neither a Piper voice file"):
        voice_file("lessac")


def test_a_description_that_fits_is_spoken_once() -> None:
    engine = WordClock()
    narration = Narrator(engine).narrate(description("a b c d", 2.0, 5.0))
    assert engine.calls == [("a b c d", 1.0)]
    assert narration.description.fits
    assert narration.description.spoken_duration == 2.0
    assert narration.clip.start == 2.0


def test_an_overrun_is_sped_up_within_the_cap() -> None:
    engine = WordClock()
    # 4 words: 2 s at speed 1; the window holds 1.8 s: about 1.11x is enough.
    narration = Narrator(engine).narrate(description("a b c d", 0.0, 1.8))
    assert [text for text, _ in engine.calls] == ["a b c d", "a b c d"]
    assert 1.1 < engine.calls[1][1] <= 1.25
    assert narration.description.fits and narration.description.text == "a b c d"


def test_an_overrun_is_sped_up_then_shortened_then_flagged_in_that_order() -> None:
    engine = WordClock()
    options = NarrationOptions(max_speedup=1.25, min_words=3)
    words = "one two three four five six seven eight nine ten"
    narration = Narrator(engine, options).narrate(description(words, 10.0, 1.0 + 10.0))
    texts = [text for text, _ in engine.calls]
    speeds = [speed for _, speed in engine.calls]
    # First the whole text at the set rate, then faster up to the cap...
    assert texts[:2] == [words, words] and speeds[0] == 1.0 and speeds[1] == 1.25
    # ...then shorter at the cap, word by word, down to min_words...
    lengths = [len(t.split()) for t in texts[2:]]
    assert lengths == sorted(lengths, reverse=True) and lengths[-1] == 3
    assert all(s == 1.25 for s in speeds[2:])
    # ...and 3 words still take 1.2 s for a 1 s window: kept, flagged, measured.
    result = narration.description
    assert result.text == "One two three." or result.text.split()[0] == "one"
    assert not result.fits
    assert result.spoken_duration == pytest.approx(1.2)
    assert [a.duration for a in narration.attempts][-1] == pytest.approx(1.2)


def test_a_reviewer_s_text_is_sped_up_but_never_shortened() -> None:
    engine = WordClock()
    words = "one two three four five six seven eight nine ten"
    options = NarrationOptions(max_speedup=1.25, shorten=False)
    narration = Narrator(engine, options).narrate(description(words, 10.0, 11.0))
    assert [(text, speed) for text, speed in engine.calls] == [(words, 1.0), (words, 1.25)]
    assert narration.description.text == words and not narration.description.fits


def test_a_real_overrun_is_shortened_until_it_fits() -> None:
    engine = load_engine(TtsOptions())
    narration = Narrator(engine).narrate(description(LONG, 3.0, 5.0))
    speeds = [a.speed for a in narration.attempts]
    words = [len(a.text.split()) for a in narration.attempts]
    assert speeds[0] == 1.0 and max(speeds) == 1.25 and speeds == sorted(speeds)
    assert words[0] == len(LONG.split()) and words[-1] < words[0]
    result = narration.description
    assert result.fits and result.spoken_duration is not None and result.spoken_duration <= 2.0
    assert LONG.startswith(result.text.rstrip("."))


def test_narrate_streams_and_keeps_every_field_but_text_fit_and_duration() -> None:
    items = [description("a b c", 0.0, 3.0), description("d e f g h i", 5.0, 6.0)]
    narrated = [n.description for n in narrate(items, Narrator(WordClock()))]
    assert [replace(n, text=o.text, fits=o.fits, spoken_duration=None) for n, o in
            zip(narrated, items, strict=True)] == items  # fmt: skip
    assert [n.spoken_duration for n in narrated] == [1.5, pytest.approx(1.2)]
