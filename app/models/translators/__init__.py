"""Translators: turn an English-only captioner's descriptions into the viewer's language.

One module per kind in this folder, named in :data:`TRANSLATORS`; :func:`load_translator`
picks the kind by name or by the ``model_type`` of the model's config.json and loads it
through the one model resolver (:func:`app.models.hub.load_model`). Kinds: ``marian``
(OPUS-MT, one model per language pair) and ``nllb`` (NLLB-200, one model for 200 languages).
A new kind: a module defining a ``TranslatorKind`` and a line here.

Importing this package is cheap: torch and transformers load with the first model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from app.errors import ModelLoadError
from app.models.base import CaptionOptions
from app.models.hub import ModelSource, SettingNames, load_model, model_type
from app.registry import Member, Registry

logger = logging.getLogger(__name__)

#: The translation model used for a language when none is named: MarianMT (Helsinki-NLP's
#: OPUS-MT), one model per language pair, e.g. ``Helsinki-NLP/opus-mt-en-ru``.
DEFAULT_TRANSLATOR = "Helsinki-NLP/opus-mt-en-{language}"
#: What these models are, in messages.
WHAT = "translation model"
#: The settings that choose the translation model, as messages name them.
SETTINGS = SettingNames(
    model="--translator / DESCRIBER_TRANSLATOR",
    offline="--local-files-only / DESCRIBER_LOCAL_FILES_ONLY",
)


@runtime_checkable
class Translator(Protocol):
    """Anything that translates English descriptions into one language.

    Implementations return exactly one text per input, in order, the same whether a text is
    translated alone or within a batch. Calls may come from several threads (jobs side by
    side); a local model serialises them itself.
    """

    #: The language it writes (ISO 639-1).
    language: str

    def translate(self, texts: Sequence[str]) -> list[str]:
        """Translate English texts into :attr:`language`, one output per input."""
        ...


@dataclass(frozen=True)
class TranslateOptions:
    """How to load a translation model and generate translations."""

    #: The translator kind, a name in :data:`TRANSLATORS`; "auto" picks the kind whose model
    #: types include the ``model_type`` of the model's config.json.
    kind: str = "auto"
    #: Beams of the beam search; None keeps the model's own (OPUS-MT models: 4).
    num_beams: int | None = None
    #: Most tokens in one translation; descriptions are a sentence.
    max_new_tokens: int = 64
    #: Texts per forward pass.
    batch_size: int = 16
    #: "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N"; as the captioner's.
    device: str = "auto"
    #: "auto" (float16 on CUDA, float32 on CPU), "float16", "bfloat16" or "float32".
    dtype: str = "auto"
    #: Hub revision (branch, tag or commit); ignored for a local directory.
    revision: str | None = None
    #: Never reach the hub: only a local directory or the cache (also on when HF_HUB_OFFLINE=1).
    local_files_only: bool = False
    #: Hub cache directory; None uses the Hugging Face default (HF_HUB_CACHE).
    cache_dir: str | None = None

    def source(self, name_or_path: str) -> ModelSource:
        """Where the model ``name_or_path`` is, with these options' hub settings."""
        return ModelSource(name_or_path, self.revision, self.cache_dir, self.local_files_only)

    def __post_init__(self) -> None:
        if self.kind != "auto":
            TRANSLATORS.check(self.kind)
        if self.num_beams is not None and self.num_beams < 1:
            raise ValueError(f"num_beams must be at least 1 or None, got {self.num_beams}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        # The captioner's device and dtype options, checked the same way.
        CaptionOptions(device=self.device, dtype=self.dtype)


@dataclass(frozen=True)
class TranslatorKind:
    """One kind of translator: which models it takes and how it loads them."""

    model_types: tuple[str, ...]
    """``model_type`` values of config.json that this kind loads ("auto" picks it for them)."""
    load: Callable[[ModelSource, str, TranslateOptions], Translator]
    """Loads a model that writes the given language; errors of transformers, safetensors and
    torch pass through (the caller turns them into a ``ModelLoadError``)."""


_TRANSFORMERS = {"transformers": "transformers", "torch": "torch"}

#: Translator kinds by name.
TRANSLATORS: Registry[TranslatorKind] = Registry(
    "translator",
    {
        "marian": Member(
            "app.models.translators.marian:MARIAN",
            {**_TRANSFORMERS, "sentencepiece": "sentencepiece", "sacremoses": "sacremoses"},
        ),
        "nllb": Member("app.models.translators.nllb:NLLB", _TRANSFORMERS),
    },
)


def default_translator(language: str) -> str:
    """The hub id of the translation model used for ``language`` when none is named."""
    return DEFAULT_TRANSLATOR.format(language=language)


def load_translator(
    name_or_path: str, language: str, options: TranslateOptions | None = None
) -> Translator:
    """Load a translator from English into ``language``, from a local directory or the hub.

    Args:
        name_or_path: A directory written by ``save_pretrained`` or a hub id such as
            ``default_translator(language)``. A MarianMT model translates one language pair:
            it must be the one from English into ``language``.
        language: The language it writes (ISO 639-1).
        options: Loading and generation options; defaults to ``TranslateOptions()``.

    Raises:
        ModelLoadError: The model cannot be found, is not a supported type, or its files are
            broken. The message says what was tried.
    """
    options = options or TranslateOptions()
    source = options.source(name_or_path)
    known = (default_translator(language),)
    kind = options.kind
    if kind == "auto":
        found = load_model(source, WHAT, model_type, known=known, settings=SETTINGS)
        takes = {t: name for name, member in TRANSLATORS.items() for t in member.model_types}
        if found not in takes:
            raise ModelLoadError(
                f"{name_or_path!r} is a {found!r} model, which cannot translate here. "
                f"Supported model types: {', '.join(takes) or 'none installed'}; for example "
                f"{known[0]}."
            )
        kind = takes[found]
    translator_kind = TRANSLATORS.load(kind)
    logger.info("Loading %s translator %s into %r", kind, name_or_path, language)
    return load_model(
        source,
        f"{kind} {WHAT}",
        lambda s: translator_kind.load(s, language, options),
        known=known,
        settings=SETTINGS,
    )


__all__ = [
    "DEFAULT_TRANSLATOR",
    "TRANSLATORS",
    "TranslateOptions",
    "Translator",
    "TranslatorKind",
    "default_translator",
    "load_translator",
]
