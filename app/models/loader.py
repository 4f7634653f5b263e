"""The one way to load a captioner: hub id or local directory, options, clear errors."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.errors import ModelLoadError
from app.models.base import Captioner, CaptionOptions
from app.models.captioners import CAPTIONERS, CaptionerKind, captioner_kind
from app.models.hub import (
    ModelSource,
    SettingNames,
    damaged_files_hint,
    load_model,
    model_type,
    resolve,
)

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "Salesforce/blip-image-captioning-large"
BLIP_BASE = "Salesforce/blip-image-captioning-base"
BLIP2 = "Salesforce/blip2-opt-2.7b"
#: Hub ids known to work, for error messages and ``--help`` texts.
KNOWN_MODELS = (DEFAULT_MODEL, BLIP_BASE, BLIP2)
#: What these models are, in messages.
WHAT = "captioning model"
#: The settings that choose the captioning model, as messages name them.
SETTINGS = SettingNames(
    model="--model / DESCRIBER_MODEL",
    offline="--local-files-only / DESCRIBER_LOCAL_FILES_ONLY",
)


def load_captioner(name_or_path: str, options: CaptionOptions | None = None) -> Captioner:
    """Load a captioner from a local directory or the Hugging Face hub.

    With ``options.kind`` "auto" the model's ``config.json`` decides the kind, so any
    checkpoint of a supported type works, fine-tuned ones included; with ``options.api_base``
    set, an OpenAI-compatible endpoint serves the model ``name_or_path`` (the ``openai`` kind).

    Args:
        name_or_path: A directory holding a saved model and processor, or a hub id such as
            ``DEFAULT_MODEL`` or ``BLIP2``.
        options: Loading and generation options; defaults to ``CaptionOptions()``.

    Returns:
        A captioner that owns the model, its device and its dtype.

    Raises:
        ModelLoadError: The model cannot be found, is not a supported type, does not fit the
            device, or its files are broken. The message says what was tried.
    """
    return choose_captioner(name_or_path, options).load()


@dataclass(frozen=True)
class CaptionerChoice:
    """The kind that loads a model and where from, known from the model's config.json alone
    (no torch, no transformers, no weights): what its captioner will do is ``kind``'s data."""

    name: str
    """The kind's name in ``CAPTIONERS``."""
    kind: CaptionerKind
    """Its registry line: model types, frames per scene, languages."""
    source: ModelSource
    """Where the model is, already checked (and the hub asked) for a local kind."""
    options: CaptionOptions

    def load(self) -> Captioner:
        """Import the kind and load the model.

        Raises:
            ModelLoadError: As :func:`load_captioner`.
        """
        load = CAPTIONERS.load(self.name)
        name_or_path = self.source.name_or_path
        if not self.kind.local:
            logger.info("Using %s captioner %s", self.name, name_or_path)
            return load(self.kind, self.source, self.options)
        logger.info("Loading %s captioner %s", self.name, name_or_path)
        return load_model(
            self.source,
            f"{self.name} {WHAT}",
            lambda s: load(self.kind, s, self.options),
            known=KNOWN_MODELS,
            hint=_load_hint,
            settings=SETTINGS,
        )


def choose_captioner(name_or_path: str, options: CaptionOptions | None = None) -> CaptionerChoice:
    """The captioner kind that :func:`load_captioner` loads ``name_or_path`` with:
    ``options.kind``, ``openai`` with ``options.api_base``, else the kind that takes the
    ``model_type`` of its config.json. Only that file is read (downloaded for a hub id).

    Raises:
        ModelLoadError: As :func:`load_captioner`, for a model that cannot be found or is not
            a supported type.
    """
    options = options or CaptionOptions()
    source = options.source(name_or_path)
    name = options.kind
    if name == "auto" and options.api_base is not None:
        name = "openai"  # the endpoint serves the model: nothing to read from the hub
    if name == "auto" or captioner_kind(name).local:
        # Checked once for both reads: a missing path or a silent hub fails here, at once.
        source = resolve(source, WHAT, SETTINGS, KNOWN_MODELS)
    if name == "auto":
        found = load_model(source, WHAT, model_type, known=KNOWN_MODELS, settings=SETTINGS)
        name = kind_for_model_type(found, name_or_path)
    return CaptionerChoice(name, captioner_kind(name), source, options)


def kind_for_model_type(model_type: str, name_or_path: str) -> str:
    """The installed captioner kind that takes models of ``model_type`` (read from the
    registry lines: nothing is imported).

    Raises:
        ModelLoadError: No installed kind takes it; the message lists the types that work.
    """
    takes = {t: name for name in CAPTIONERS for t in captioner_kind(name).model_types}
    if model_type not in takes:
        missing = [
            f"{name} (needs {', '.join(member.missing())})"
            for name, member in CAPTIONERS.members.items()
            if member.missing()
        ]
        uninstalled = f" Kinds not installed: {'; '.join(missing)}." if missing else ""
        raise ModelLoadError(
            f"{name_or_path!r} is a {model_type!r} model, which cannot caption images "
            f"here. Supported model types: {', '.join(takes)}; for example "
            f"{', '.join(KNOWN_MODELS)}.{uninstalled}"
        )
    return takes[model_type]


def _load_hint(exc: Exception) -> str:
    """What the user can do about an error raised while loading weights."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return (
            "The GPU ran out of memory: set offload=True (and max_memory) to spread the model "
            f"over GPU and CPU, use device='cpu', or use the smaller {BLIP_BASE}."
        )
    return damaged_files_hint()
