"""Translation step: an English-only captioner's descriptions go into the viewer's language.

A captioner says which languages it writes with a ``languages`` attribute (a set of ISO 639-1
codes; absent or None: any language it is asked for, as a vision-language model prompted in
that language). When it cannot write the viewer's language, its (cleaned) English captions
are translated in one batch per captioning batch, before the word budget and the repeat
check, which both apply to the text the viewer hears. A needed translator that is missing is
an error, never English output.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.errors import TranslatorMissing
from app.models.base import Captioner
from app.models.translators import Translator, default_translator


def captioner_languages(captioner: Captioner) -> frozenset[str] | None:
    """The languages a captioner writes; None: any it is asked for."""
    languages: frozenset[str] | None = getattr(captioner, "languages", None)
    return languages


def needs_translation(captioner: Captioner, language: str) -> bool:
    """Whether ``captioner`` cannot write ``language`` itself."""
    languages = captioner_languages(captioner)
    return languages is not None and language not in languages


def translation_for(
    captioner: Captioner, translator: Translator | None, language: str
) -> Translator | None:
    """The translator that descriptions in ``language`` must go through, if any.

    Raises:
        TranslatorMissing: The captioner cannot write ``language`` and there is no
            translator, or the translator writes another language.
    """
    if not needs_translation(captioner, language):
        return None
    writes = ", ".join(sorted(captioner_languages(captioner) or ()))
    if translator is None:
        raise TranslatorMissing(
            f"descriptions in {language!r} need a translator: the captioner writes only "
            f"{writes}. Set --translator / DESCRIBER_TRANSLATOR to a translation model from "
            f"English into {language!r} (hub id or directory, e.g. "
            f"{default_translator(language)}), or use a captioner that writes {language!r}."
        )
    if translator.language != language:
        raise TranslatorMissing(
            f"descriptions in {language!r} need a translator into {language!r}, but the one "
            f"loaded writes {translator.language!r}."
        )
    return translator


def translate_captions(translator: Translator, texts: Sequence[str]) -> list[str]:
    """Translate a batch of captions in one call; an empty caption stays empty.

    Raises:
        RuntimeError: The translator returned another number of texts than it was given.
    """
    indices = [index for index, text in enumerate(texts) if text.strip()]
    translated = translator.translate([texts[index] for index in indices])
    if len(translated) != len(indices):
        raise RuntimeError(
            f"the translator returned {len(translated)} texts for {len(indices)} captions"
        )
    result = list(texts)
    for index, text in zip(indices, translated, strict=True):
        result[index] = text
    return result
