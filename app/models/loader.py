"""The one way to load a captioner: hub id or local directory, options, clear errors."""

from __future__ import annotations

import logging

from app.errors import ModelLoadError
from app.models.base import Captioner, CaptionOptions
from app.models.captioners import CAPTIONERS
from app.models.hub import ModelSource, SettingNames, damaged_files_hint, load_model, resolve

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
    options = options or CaptionOptions()
    kind = options.kind
    if kind == "auto" and options.api_base is not None:
        kind = "openai"  # the endpoint serves the model: nothing to read from the hub
    if kind != "auto" and not CAPTIONERS.load(kind).local:
        logger.info("Using %s captioner %s", kind, name_or_path)
        return CAPTIONERS.load(kind).load(options.source(name_or_path), options)
    # Checked once for both loads below: a missing path or a silent hub fails here, at once.
    source = resolve(options.source(name_or_path), WHAT, SETTINGS, KNOWN_MODELS)
    if kind == "auto":
        model_type = load_model(source, WHAT, _model_type, known=KNOWN_MODELS, settings=SETTINGS)
        kind = kind_for_model_type(model_type, name_or_path)
    captioner_kind = CAPTIONERS.load(kind)
    logger.info("Loading %s captioner %s", kind, name_or_path)
    return load_model(
        source,
        f"{kind} {WHAT}",
        lambda s: captioner_kind.load(s, options),
        known=KNOWN_MODELS,
        hint=_load_hint,
        settings=SETTINGS,
    )


def kind_for_model_type(model_type: str, name_or_path: str) -> str:
    """The installed captioner kind that takes models of ``model_type``.

    Raises:
        ModelLoadError: No installed kind takes it; the message lists the types that work.
    """
    takes = {t: name for name, kind in CAPTIONERS.items() for t in kind.model_types}
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


def _model_type(source: ModelSource) -> str:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source.name_or_path, **source.pretrained_kwargs())
    model_type: str = config.model_type
    return model_type


def _load_hint(exc: Exception) -> str:
    """What the user can do about an error raised while loading weights."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return (
            "The GPU ran out of memory: set offload=True (and max_memory) to spread the model "
            f"over GPU and CPU, use device='cpu', or use the smaller {BLIP_BASE}."
        )
    return damaged_files_hint()
