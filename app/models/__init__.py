"""Captioning models: the ``Captioner`` contract and the one function that loads a model.

Importing this package is cheap: torch and transformers load with the first model.
"""

from app.models.base import Captioner
from app.models.loader import (
    BLIP2,
    BLIP_BASE,
    DEFAULT_MODEL,
    KNOWN_MODELS,
    CaptionOptions,
    load_captioner,
)

__all__ = [
    "BLIP2",
    "BLIP_BASE",
    "DEFAULT_MODEL",
    "KNOWN_MODELS",
    "CaptionOptions",
    "Captioner",
    "load_captioner",
]
