"""The viewer's language: translators loaded through the resolver, the translation step in
the pipeline, and the CLI and the service refusing a language they cannot write."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from app.cli import main
from app.config import Settings
from app.errors import ModelLoadError, TranslatorMissing
from app.models import CaptionOptions, load_captioner
from app.models.translators import TranslateOptions, Translator, load_translator
from app.pipeline.describe import DescribeOptions, describe
from app.pipeline.novelty import scorer_for_language
from app.pipeline.translate import needs_translation, translate_captions, translation_for
from app.service.service import Service
from tests.fixtures.media import VideoFactory
from tests.fixtures.models import (
    RUSSIAN_CAPTIONS,
    UKRAINIAN_CAPTIONS,
    ScriptedCaptioner,
    russian_caption,
)

CPU = TranslateOptions(device="cpu")


class EnglishCaptioner(ScriptedCaptioner):
    """A scripted captioner that, like BLIP, writes English only."""

    languages = frozenset({"en"})


class RecordingTranslator:
    """Upper-cases texts and records every call."""

    def __init__(self, language: str = "ru") -> None:
        self.language = language
        self.calls: list[list[str]] = []

    def translate(self, texts: Sequence[str]) -> list[str]:
        self.calls.append(list(texts))
        return [text.upper() for text in texts]


@pytest.fixture(scope="module")
def translator(colour_translator_dir: Path) -> Translator:
    return load_translator(str(colour_translator_dir), "ru", CPU)


def test_a_marian_directory_loads_through_the_resolver_and_translates(
    translator: Translator,
) -> None:
    assert isinstance(translator, Translator)
    assert translator.language == "ru"
    texts = ["A red scene.", "A blue scene.", "A white scene."]
    expected = [russian_caption(c) for c in ("red", "blue", "white")]
    assert translator.translate(texts) == expected
    # A text's translation does not depend on its batch.
    assert [translator.translate([text])[0] for text in texts] == expected


def test_a_missing_translation_model_says_what_was_tried(tmp_path: Path) -> None:
    with pytest.raises(
        ModelLoadError,
        match=r"Could not find the translation model .*no directory .*--translator / DESCRIBER",
    ):
        load_translator(
            str(tmp_path / "absent"), "ru", TranslateOptions(device="cpu", local_files_only=True)
        )


def test_a_captioning_model_is_not_a_translator(tiny_blip_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"is a 'blip' model, which cannot translate"):
        load_translator(str(tiny_blip_dir), "ru", CPU)


def test_blip_writes_english_only(tiny_blip_dir: Path) -> None:
    captioner = load_captioner(str(tiny_blip_dir), CaptionOptions(device="cpu"))
    assert needs_translation(captioner, "ru")
    assert not needs_translation(captioner, "en")
    # A captioner that does not say (a vision-language model) writes what it is asked.
    assert not needs_translation(ScriptedCaptioner(), "ru")


def test_an_english_only_captioner_without_translator_is_one_clear_error() -> None:
    with pytest.raises(TranslatorMissing, match=r"'ru' need a translator.*opus-mt-en-ru"):
        translation_for(EnglishCaptioner(), None, "ru")
    with pytest.raises(TranslatorMissing, match="writes 'de'"):
        translation_for(EnglishCaptioner(), RecordingTranslator("de"), "ru")
    assert translation_for(EnglishCaptioner(), None, "en") is None


def test_translation_keeps_empty_captions_empty_and_batches_the_rest() -> None:
    recorder = RecordingTranslator()
    assert translate_captions(recorder, ["A dog.", "", "A cat."]) == ["A DOG.", "", "A CAT."]
    assert recorder.calls == [["A dog.", "A cat."]]


def test_non_english_captions_get_a_scorer_that_works_in_their_language() -> None:
    assert scorer_for_language("auto", "en") == "meteor"
    assert scorer_for_language("auto", "ru") == "chrf"
    assert DescribeOptions(language="ru").novelty_scorer == "auto"
    with pytest.raises(ValueError, match=r"'meteor' compares en captions only; for 'ru' use"):
        DescribeOptions(language="ru", novelty_scorer="meteor")


def test_russian_through_blip_and_the_translator(
    coded_video: VideoFactory, colour_blip_dir: Path, translator: Translator
) -> None:
    # Red again after blue: a repeat of the first description, three scenes back.
    made = coded_video([("red", 50), ("blue", 50), ("red", 50)])
    captioner = load_captioner(str(colour_blip_dir), CaptionOptions(device="cpu"))
    options = DescribeOptions(language="ru")
    results = list(describe(made.path, captioner, options=options, translator=translator))
    # Six Russian words in five-word pauses: the budget applies to the translation (the
    # English "A red scene." has three words and would fit).
    assert [d.text for d in results] == [
        "Красный автомобиль стоит посреди пустой.",
        "Синее море блестит под ярким.",
    ]
    assert all(d.max_words == 5 and not d.fits for d in results)
    assert all(len(d.text.split()) <= d.max_words for d in results)


def test_describe_refuses_before_captioning_without_a_translator(
    coded_video: VideoFactory,
) -> None:
    made = coded_video([("red", 50), ("blue", 50)])
    captioner = EnglishCaptioner()
    with pytest.raises(TranslatorMissing):
        list(describe(made.path, captioner, options=DescribeOptions(language="ru")))
    assert captioner.calls == []


def test_a_captioner_that_writes_the_language_is_not_translated(
    coded_video: VideoFactory,
) -> None:
    made = coded_video([("red", 50), ("blue", 50)])
    recorder = RecordingTranslator()
    captioner = ScriptedCaptioner(["красная машина на улице", "синее море под солнцем"])
    options = DescribeOptions(language="ru")
    results = list(describe(made.path, captioner, options=options, translator=recorder))
    assert [d.text for d in results] == ["Красная машина на улице.", "Синее море под солнцем."]
    assert recorder.calls == []


@pytest.mark.parametrize(
    ("translator_dir", "language", "expected"),
    [
        (
            "colour_translator_dir",
            "ru",
            ["Красный автомобиль стоит посреди пустой.", "Синее море блестит под ярким."],
        ),
        (
            "nllb_translator_dir",
            "uk",
            ["Червоний автомобіль стоїть посеред порожньої.", "Синє море блищить під яскравим."],
        ),
    ],
)
def test_the_cli_describes_in_the_viewer_s_language(
    coded_video: VideoFactory,
    colour_blip_dir: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    translator_dir: str,
    language: str,
    expected: list[str],
) -> None:
    made = coded_video([("red", 50), ("blue", 50)])
    out = tmp_path / "out.json"
    directory = request.getfixturevalue(translator_dir)
    args = ["describe", str(made.path), "-q", "--model", str(colour_blip_dir), "--device", "cpu"]
    args += ["--language", language, "--translator", str(directory), "-o", str(out)]
    args += ["--words-per-second", "2.5"]  # 5-word budgets in 2 s pauses
    assert main(args) == 0
    texts = [d["text"] for d in json.loads(out.read_text("utf-8"))]
    assert texts == expected


def test_the_cli_without_a_translator_is_one_line(
    coded_video: VideoFactory,
    colour_blip_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = coded_video([("red", 50), ("blue", 50)])
    out = tmp_path / "out.json"
    args = ["describe", str(made.path), "-q", "--model", str(colour_blip_dir), "--device", "cpu"]
    args += ["--language", "ru", "--translator", "none", "-o", str(out)]
    assert main(args, stdout=io.StringIO()) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: descriptions in 'ru' need a translator")
    assert not out.exists()


@pytest.mark.allow_error_log
async def test_the_service_is_not_ready_without_a_needed_translator(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, db_path=tmp_path / "db.sqlite3", language="ru", translator=None
    )
    service = Service(settings, captioner=EnglishCaptioner())
    await service.start()
    try:
        assert service._startup is not None
        await service._startup
        ready, model, _store = await service.readiness()
    finally:
        await service.stop()
    assert not ready
    assert model.startswith("failed: descriptions in 'ru' need a translator")


async def test_the_service_loads_the_translator_once_at_startup(
    tmp_path: Path, colour_translator_dir: Path
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        db_path=tmp_path / "db.sqlite3",
        language="ru",
        translator=str(colour_translator_dir),
        device="cpu",
    )
    service = Service(settings, captioner=EnglishCaptioner())
    await service.start()
    try:
        assert service._startup is not None
        await service._startup
        ready, _model, _store = await service.readiness()
        assert ready
        assert service.worker is not None and service.worker.translator is not None
        assert service.worker.translator.translate(["A red scene."]) == [russian_caption("red")]
    finally:
        await service.stop()


def test_an_nllb_directory_writes_the_language_asked_for(nllb_translator_dir: Path) -> None:
    """One NLLB model, two languages: the FLORES-200 token forced first picks the output."""
    for language, captions in (("ru", RUSSIAN_CAPTIONS), ("uk", UKRAINIAN_CAPTIONS)):
        translator = load_translator(str(nllb_translator_dir), language, CPU)
        assert translator.language == language
        texts = [f"A {colour} scene." for colour in captions]
        assert translator.translate(texts) == list(captions.values())


def test_an_nllb_tokenizer_without_the_language_is_refused(
    nllb_translator_dir: Path, colour_translator_dir: Path
) -> None:
    # A language FLORES-200 lacks; and a tokenizer with no FLORES-200 tokens at all.
    with pytest.raises(
        ModelLoadError,
        match=r"cannot write 'ia'.*no FLORES-200 language token for it .looked for ina_<Script>",
    ):
        load_translator(str(nllb_translator_dir), "ia", CPU)
    with pytest.raises(ModelLoadError, match=r"cannot write 'ru'.*looked for rus_<Script>"):
        load_translator(
            str(colour_translator_dir), "ru", TranslateOptions(kind="nllb", device="cpu")
        )
