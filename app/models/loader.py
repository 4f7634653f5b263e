"""The one way to load a captioning model: hub id or local directory, options, clear errors."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import ModelLoadError

if TYPE_CHECKING:
    from app.models.base import Captioner

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "Salesforce/blip-image-captioning-large"
BLIP_BASE = "Salesforce/blip-image-captioning-base"
BLIP2 = "Salesforce/blip2-opt-2.7b"
#: Hub ids known to work, for error messages and ``--help`` texts.
KNOWN_MODELS = (DEFAULT_MODEL, BLIP_BASE, BLIP2)

_DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
_DTYPES = ("auto", "float16", "bfloat16", "float32")


@dataclass(frozen=True)
class CaptionOptions:
    """How to load a captioning model and generate captions."""

    #: Beams of the beam search; 1 is greedy decoding.
    num_beams: int = 3
    #: Most tokens in a caption (about one word each); a call may ask for fewer.
    max_new_tokens: int = 30
    #: Fewest tokens in a caption; 0 lets the model stop when it is done.
    min_new_tokens: int = 0
    #: Penalty on repeating a token already generated; 1.0 means none.
    repetition_penalty: float = 1.0
    #: Images per forward pass; None picks it from free GPU memory (a small fixed size on CPU).
    batch_size: int | None = None
    #: "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".
    device: str = "auto"
    #: "auto" (float16 on CUDA, float32 on CPU), "float16", "bfloat16" or "float32".
    dtype: str = "auto"
    #: Spread the model over GPU and CPU with accelerate (``device_map="auto"``), e.g. BLIP-2 on a
    #: 12 GB GPU; slower than a model that fits on the GPU.
    offload: bool = False
    #: Memory caps per device when offloading, e.g. ``{"0": "10GiB", "cpu": "30GiB"}``; None lets
    #: accelerate use what is free.
    max_memory: dict[str, str] | None = None
    #: Hub revision (branch, tag or commit); ignored for a local directory.
    revision: str | None = None
    #: Never reach the hub: only a local directory or the cache (also on when HF_HUB_OFFLINE=1).
    local_files_only: bool = False
    #: Hub cache directory; None uses the Hugging Face default (HF_HUB_CACHE).
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise ValueError(f"num_beams must be at least 1, got {self.num_beams}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.min_new_tokens < 0:
            raise ValueError(f"min_new_tokens must not be negative, got {self.min_new_tokens}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be positive, got {self.repetition_penalty}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1 or None (auto), got {self.batch_size}")
        if not _DEVICE_PATTERN.fullmatch(self.device):
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}"
            )
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")


def load_captioner(name_or_path: str, options: CaptionOptions | None = None) -> Captioner:
    """Load a BLIP or BLIP-2 captioner from a local directory or the Hugging Face hub.

    The model's ``config.json`` decides the architecture, so any BLIP or BLIP-2 checkpoint
    works, fine-tuned ones included.

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
    # Imported here so that importing app.models stays light (no torch, no transformers).
    from safetensors import SafetensorError
    from transformers import AutoConfig

    from app.models.blip import ARCHITECTURES, BlipCaptioner

    options = options or CaptionOptions()
    try:
        config = AutoConfig.from_pretrained(
            name_or_path,
            revision=options.revision,
            cache_dir=options.cache_dir,
            local_files_only=options.local_files_only,
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(_not_found_message(name_or_path, options, exc)) from exc

    architecture = ARCHITECTURES.get(config.model_type)
    if architecture is None:
        raise ModelLoadError(
            f"{name_or_path!r} is a {config.model_type!r} model, which cannot caption images "
            f"here. Supported model types: {', '.join(ARCHITECTURES)}; for example "
            f"{', '.join(KNOWN_MODELS)}."
        )
    logger.info("Loading %s model %s", config.model_type, name_or_path)
    try:
        return BlipCaptioner.from_pretrained(name_or_path, architecture, options)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        # RuntimeError covers CUDA out of memory and weights that do not match the config.
        raise ModelLoadError(
            f"Could not load the {config.model_type} model {name_or_path!r}: "
            f"{_first_line(exc)}. {_load_hint(exc)}"
        ) from exc


def _first_line(exc: Exception) -> str:
    """The first line of an exception's message, without its final full stop."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return lines[0].rstrip(".")


def _load_hint(exc: Exception) -> str:
    """What the user can do about an error raised while loading weights."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return (
            "The GPU ran out of memory: set offload=True (and max_memory) to spread the model "
            f"over GPU and CPU, use device='cpu', or use the smaller {BLIP_BASE}."
        )
    return (
        "Its files may be incomplete or damaged: delete them (or the model's folder in the "
        "hub cache) and download or save_pretrained() them again."
    )


def _not_found_message(name_or_path: str, options: CaptionOptions, exc: Exception) -> str:
    """Say what was tried to find a model's configuration, and what the user can do."""
    from huggingface_hub import constants as hub_constants

    local = Path(name_or_path).expanduser().resolve()
    if local.is_dir():
        return (
            f"Could not read a model configuration in the directory {str(local)!r}: "
            f"{_first_line(exc)}. "
            "The directory must hold config.json and the processor files written by "
            "save_pretrained()."
        )
    cache_dir = options.cache_dir or hub_constants.HF_HUB_CACHE
    hub = f"the hub id {name_or_path!r}" + (
        f" at revision {options.revision!r}" if options.revision else ""
    )
    if options.local_files_only or hub_constants.HF_HUB_OFFLINE:
        where = (
            f"{hub} in the cache {cache_dir!r} only (offline: local_files_only or "
            "HF_HUB_OFFLINE=1 is set, so nothing was downloaded)"
        )
    else:
        where = f"{hub} on the Hugging Face hub (cache {cache_dir!r})"
    return (
        f"Could not find the captioning model {name_or_path!r}. Tried the local directory "
        f"{str(local)!r} (no such directory) and {where}: {_first_line(exc)}. Pass an existing "
        f"model directory or one of the known model ids: {', '.join(KNOWN_MODELS)}."
    )
