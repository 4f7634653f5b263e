"""Captioner kinds: one module each in this folder, named in :data:`CAPTIONERS`.

A kind says which model types (``model_type`` in a model's config.json) it takes and how it
loads one; ``app.models.load_captioner`` picks it by name or by the model's type. A new kind
(a vision-language model, a remote endpoint): a module defining a ``CaptionerKind`` and a
line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.registry import Member, Registry

if TYPE_CHECKING:
    from app.models.base import Captioner, CaptionOptions
    from app.models.hub import ModelSource


@dataclass(frozen=True)
class CaptionerKind:
    """One kind of captioner: which models it takes and how it loads them."""

    model_types: tuple[str, ...]
    """``model_type`` values of config.json that this kind loads ("auto" picks it for them);
    empty for a kind that is only chosen by name."""
    load: Callable[[ModelSource, CaptionOptions], Captioner]
    """Loads a model; errors of transformers, safetensors and torch pass through (the caller
    turns them into a ``ModelLoadError``)."""
    local: bool = True
    """Whether the model's files are read here (a directory or the hub); False for a kind
    whose model is served elsewhere (an endpoint): its name is not looked up."""


_TRANSFORMERS = {"transformers": "transformers", "torch": "torch"}

#: Captioner kinds by name.
CAPTIONERS: Registry[CaptionerKind] = Registry(
    "captioner",
    {
        "blip": Member("app.models.captioners.blip:BLIP", _TRANSFORMERS),
        "blip-2": Member("app.models.captioners.blip:BLIP2", _TRANSFORMERS),
        # Chat vision-language models: one generic captioner, a line per family.
        "qwen-vl": Member(
            "app.models.captioners.vlm:QWEN_VL", {**_TRANSFORMERS, "torchvision": "torchvision"}
        ),
        "smolvlm": Member("app.models.captioners.vlm:IDEFICS3", _TRANSFORMERS),
        "smolvlm2": Member(
            "app.models.captioners.vlm:SMOLVLM",
            {**_TRANSFORMERS, "torchvision": "torchvision", "num2words": "num2words"},
        ),
        "openai": Member("app.models.captioners.remote:OPENAI", {"httpx": "httpx"}),
    },
)
