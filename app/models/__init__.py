"""Models: the ``Captioner`` contract, the captioner kinds (``app.models.captioners``), the
one model resolver (``app.models.hub``) and the sentence encoder.

Importing this package is cheap: torch and transformers load with the first model.
"""

from app.models.base import Captioner, CaptionOptions, CaptionRequest
from app.models.loader import (
    BLIP2,
    BLIP_BASE,
    DEFAULT_MODEL,
    KNOWN_MODELS,
    load_captioner,
)

__all__ = [
    "BLIP2",
    "BLIP_BASE",
    "DEFAULT_MODEL",
    "KNOWN_MODELS",
    "CaptionOptions",
    "CaptionRequest",
    "Captioner",
    "load_captioner",
]
