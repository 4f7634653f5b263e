"""Captioner kinds: one module each in this folder, a line each in :data:`CAPTIONERS`.

A kind's line says, as data, which model types (``model_type`` in a model's config.json) it
takes, how many frames of a scene it looks at and which languages it writes, so all of that is
known without importing the kind's module (torch, transformers) or loading a model: the scan
starts while the model loads. The module gives only the function that loads a model; the
captioner it returns takes those attributes from its kind. A new kind (a vision-language model,
a remote endpoint): a module defining a :data:`LoadCaptioner` function and a line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from app.registry import Member, Registry

if TYPE_CHECKING:
    from app.models.base import Captioner, CaptionOptions
    from app.models.hub import ModelSource


@dataclass(frozen=True)
class CaptionerKind(Member):
    """One kind of captioner: where its loader lives, what it needs, which models it takes
    and what its captioners do, all known before anything is imported."""

    model_types: tuple[str, ...] = ()
    """``model_type`` values of config.json that this kind loads ("auto" picks it for them);
    empty for a kind that is only chosen by name."""
    frames_per_scene: int = 1
    """Frames of a scene its captioners look at (``CaptionRequest.frames``), unless the
    pipeline is told otherwise."""
    languages: frozenset[str] | None = None
    """The languages (ISO 639-1) its captioners write; None: any they are asked for (a
    prompted model). For another language the pipeline translates (``app.pipeline.translate``)."""
    local: bool = True
    """Whether the model's files are read here (a directory or the hub); False for a kind
    whose model is served elsewhere (an endpoint): its name is not looked up."""


LoadCaptioner: TypeAlias = "Callable[[CaptionerKind, ModelSource, CaptionOptions], Captioner]"
"""What a kind's target is: loads a model of that kind into a captioner whose
``frames_per_scene`` and ``languages`` are the kind's. Errors of transformers, safetensors and
torch pass through (the caller turns them into a ``ModelLoadError``)."""

_TRANSFORMERS = {"transformers": "transformers", "torch": "torch"}
_VLM = "app.models.captioners.vlm:load"
#: Frames of a scene a prompt-driven model (a local chat model, an endpoint) is shown.
_PROMPTED_FRAMES = 3
_ENGLISH = frozenset({"en"})

#: Captioner kinds by name; the registry hands out each kind's :data:`LoadCaptioner`.
CAPTIONERS: Registry[LoadCaptioner] = Registry(
    "captioner",
    {
        # BLIP and BLIP-2 look at one frame and caption in English only.
        "blip": CaptionerKind(
            "app.models.captioners.blip:load_blip",
            _TRANSFORMERS,
            model_types=("blip",),
            languages=_ENGLISH,
        ),
        "blip-2": CaptionerKind(
            "app.models.captioners.blip:load_blip2",
            _TRANSFORMERS,
            model_types=("blip-2",),
            languages=_ENGLISH,
        ),
        # Chat vision-language models: one generic captioner, a line per family. Qwen2-VL,
        # Qwen2.5-VL and Qwen3-VL: their processors need torchvision (scripts/torch.sh).
        "qwen-vl": CaptionerKind(
            _VLM,
            {**_TRANSFORMERS, "torchvision": "torchvision"},
            model_types=("qwen2_vl", "qwen2_5_vl", "qwen3_vl"),
            frames_per_scene=_PROMPTED_FRAMES,
        ),
        "smolvlm": CaptionerKind(  # SmolVLM, model type idefics3
            _VLM, _TRANSFORMERS, model_types=("idefics3",), frames_per_scene=_PROMPTED_FRAMES
        ),
        # Gemma 3 (4B and up see images); its processor needs no torchvision.
        "gemma3": CaptionerKind(
            _VLM, _TRANSFORMERS, model_types=("gemma3",), frames_per_scene=_PROMPTED_FRAMES
        ),
        # SmolVLM2 (model type smolvlm): its processor needs torchvision (for video) and
        # num2words, even for images.
        "smolvlm2": CaptionerKind(
            _VLM,
            {**_TRANSFORMERS, "torchvision": "torchvision", "num2words": "num2words"},
            model_types=("smolvlm",),
            frames_per_scene=_PROMPTED_FRAMES,
        ),
        "openai": CaptionerKind(
            "app.models.captioners.remote:load",
            {"httpx": "httpx"},
            frames_per_scene=_PROMPTED_FRAMES,
            local=False,
        ),
    },
)


def captioner_kind(name: str) -> CaptionerKind:
    """The registry line of the installed kind ``name``; nothing is imported.

    Raises:
        ValueError: As ``CAPTIONERS.check``: unknown, or its packages are missing.
    """
    member = CAPTIONERS.members[CAPTIONERS.check(name)]
    if not isinstance(member, CaptionerKind):
        raise TypeError(f"the captioner {name!r} is registered without a CaptionerKind")
    return member
