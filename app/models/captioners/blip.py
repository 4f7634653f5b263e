"""The ``blip`` and ``blip-2`` captioner kinds: batched beam-search captioning on the GPU or
the CPU."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from transformers import (
    Blip2ForConditionalGeneration,
    Blip2Processor,
    BlipForConditionalGeneration,
    BlipProcessor,
    PreTrainedModel,
    ProcessorMixin,
)

from app.errors import ModelLoadError
from app.models.base import CaptionOptions, CaptionRequest
from app.models.captioners import CaptionerKind, LoadCaptioner
from app.models.hub import ModelSource

logger = logging.getLogger(__name__)

#: GPU memory that one image takes while it is captioned, per beam, above the weights: vision
#: activations plus the decoder's key/value cache in float16. Measured on an H100 with 20-token
#: captions (bench/gpu.sh, bench/results/gpu-2026-11-26.md): 24 MiB for BLIP-large, 18 MiB for
#: BLIP-2 OPT-2.7B; this leaves room for 30-token captions and fragmentation.
MEMORY_PER_IMAGE_BEAM = 64 * 2**20
#: Share of the free GPU memory that automatic batching may use; the rest absorbs fragmentation
#: and whatever else runs on the GPU.
USABLE_FREE_MEMORY = 0.8
#: Largest batch that automatic batching picks: on an H100, 64 images per call were 6 % (BLIP-large)
#: and 19 % (BLIP-2) faster than 32, for twice the activation memory.
MAX_AUTO_BATCH_SIZE = 32
#: Most tokens in a caption when the options name none: BLIP's tokens are about a word each.
MAX_NEW_TOKENS = 30
#: Batch size on the CPU when none is given: bigger batches are not faster there.
CPU_BATCH_SIZE = 4
#: Tokens to allow per word of a request's budget: the WordPiece (BLIP) and BPE (BLIP-2)
#: vocabularies split some words, and the pipeline trims the text at a word boundary anyway.
TOKENS_PER_WORD = 1.5


@dataclass(frozen=True)
class Architecture:
    """The transformers classes that load and run one model type."""

    model_class: type[PreTrainedModel]
    processor_class: type[ProcessorMixin]


#: Supported ``model_type`` values of a model's config.json, and how to load each.
ARCHITECTURES: dict[str, Architecture] = {
    "blip": Architecture(BlipForConditionalGeneration, BlipProcessor),
    "blip-2": Architecture(Blip2ForConditionalGeneration, Blip2Processor),
}


def resolve_device(device: str) -> torch.device:
    """Turn a device option into a torch device.

    Args:
        device: "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".

    Raises:
        ModelLoadError: A CUDA device was asked for but is not there.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (resolved.index or 0) >= count:
            raise ModelLoadError(
                f"Device {device!r} was requested but {count} CUDA device(s) are available "
                "(no GPU, or a CPU-only build of torch). Use device='auto' or 'cpu'."
            )
    return resolved


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Turn a dtype option into a torch dtype: "auto" is float16 on CUDA and float32 on CPU."""
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    resolved = getattr(torch, dtype)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"{dtype!r} is not a torch dtype")
    return resolved


def pick_batch_size(device: torch.device, num_beams: int) -> int:
    """Pick a batch size for captioning on ``device`` when the user gave none.

    On CUDA: the share ``USABLE_FREE_MEMORY`` of the currently free memory divided by
    ``MEMORY_PER_IMAGE_BEAM`` per beam, between 1 and ``MAX_AUTO_BATCH_SIZE``. Call it after the
    model is on the GPU, so that its weights are already counted. Elsewhere: ``CPU_BATCH_SIZE``.

    Args:
        device: Where the model runs.
        num_beams: Beams of the beam search; each multiplies the decoder's memory.
    """
    if device.type != "cuda":
        return CPU_BATCH_SIZE
    free, _total = torch.cuda.mem_get_info(device)
    fitting = int(free * USABLE_FREE_MEMORY) // (MEMORY_PER_IMAGE_BEAM * num_beams)
    return max(1, min(MAX_AUTO_BATCH_SIZE, fitting))


class BlipCaptioner:
    """Captions images with a BLIP or BLIP-2 model; owns the model's device and dtype.

    Images are captioned in chunks of ``batch_size`` with beam search. Every image of a chunk
    has the same size after the processor and the caption is generated from the image alone
    (no text prompt), so nothing is padded and a caption does not depend on its neighbours.
    One model runs one call at a time: concurrent calls wait for each other.
    Build one with :func:`app.models.load_captioner`.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        processor: ProcessorMixin,
        options: CaptionOptions,
        *,
        name: str,
        kind: CaptionerKind,
    ) -> None:
        """Wrap a loaded model, already placed on its device(s) and in its dtype.

        Args:
            model: A BLIP or BLIP-2 conditional-generation model.
            processor: Its processor (image processor and tokenizer).
            options: Generation options; ``batch_size`` None picks one from free memory.
            name: The hub id or directory it came from, for logs.
            kind: Its registry line: how many frames it looks at (one: BLIP ignores
                ``CaptionRequest.frames``) and the languages it writes (English).
        """
        self.frames_per_scene = kind.frames_per_scene
        self.languages = kind.languages
        self.model = model.eval()
        self.processor = processor
        self.options = options
        self.name = name
        # With offloading the first layers' device takes the inputs; otherwise the only one.
        self.device: torch.device = model.device
        # The type of the layer the pixels enter. Not ``model.dtype``, the first parameter's:
        # BLIP-2 keeps its query tokens in float32, so pixels would travel in float32.
        patches = model.get_submodule("vision_model.embeddings.patch_embedding")
        assert isinstance(patches, torch.nn.Conv2d)
        self.dtype: torch.dtype = patches.weight.dtype
        self.batch_size = options.batch_size or pick_batch_size(self.device, options.num_beams)
        self.max_new_tokens = options.max_new_tokens or MAX_NEW_TOKENS
        self._lock = threading.Lock()
        logger.info(
            "Captioner %s ready on %s as %s, batch size %d",
            name,
            self.device,
            self.dtype,
            self.batch_size,
        )

    @classmethod
    def from_pretrained(
        cls,
        model: ModelSource,
        architecture: Architecture,
        options: CaptionOptions,
        kind: CaptionerKind,
    ) -> BlipCaptioner:
        """Load model and processor from a hub id or a directory, on the device of ``options``.

        Errors of transformers, safetensors and torch pass through;
        :func:`app.models.load_captioner` turns them into a ModelLoadError.

        Args:
            model: A hub id or a directory written by ``save_pretrained``.
            architecture: The classes for the model's type.
            options: Where and how to load.
            kind: The registry line of its kind.
        """
        device = resolve_device(options.device)
        dtype = resolve_dtype(options.dtype, device)
        name_or_path = model.name_or_path
        source = model.pretrained_kwargs()
        processor = architecture.processor_class.from_pretrained(name_or_path, **source)
        if options.offload:
            # accelerate fills the GPU first, then CPU memory, within max_memory.
            loaded = architecture.model_class.from_pretrained(
                name_or_path,
                dtype=dtype,
                device_map="auto",
                max_memory=_accelerate_max_memory(options.max_memory),
                **source,
            )
            device_map: dict[str, Any] = getattr(loaded, "hf_device_map", {})
            logger.info(
                "Offloaded %s over %s", name_or_path, sorted(set(map(str, device_map.values())))
            )
        else:
            # Loading straight onto the device never holds a second copy of the weights.
            loaded = architecture.model_class.from_pretrained(
                name_or_path, dtype=dtype, device_map=device, **source
            )
        return cls(loaded, processor, options, name=name_or_path, kind=kind)

    def caption(
        self, images: Sequence[Image.Image], requests: Sequence[CaptionRequest] | None = None
    ) -> list[str]:
        """Caption RGB images, one caption per image, in order.

        Args:
            images: The images; any size, the processor resizes them.
            requests: One per image; each chunk stops at the tokens that the largest word
                budget in it needs (``TOKENS_PER_WORD`` per word), at most the options'
                ``max_new_tokens``.

        Returns:
            The captions, stripped, without special tokens.
        """
        if requests is not None and len(requests) != len(images):
            raise ValueError(f"{len(requests)} requests for {len(images)} images")
        captions: list[str] = []
        with self._lock:
            for start in range(0, len(images), self.batch_size):
                chunk = images[start : start + self.batch_size]
                wanted = None if requests is None else requests[start : start + self.batch_size]
                captions.extend(self._caption_chunk(chunk, self._token_limit(wanted)))
        return captions

    def _token_limit(self, requests: Sequence[CaptionRequest] | None) -> int:
        """Tokens to generate for a chunk: enough for its largest word budget."""
        budgets = [r.max_words for r in requests or ()]
        if not budgets or None in budgets:
            return self.max_new_tokens
        most = max(b for b in budgets if b is not None)
        if most < 1:
            raise ValueError(f"max_words must be at least 1, got {most}")
        return min(self.max_new_tokens, math.ceil(most * TOKENS_PER_WORD))

    @torch.inference_mode()
    def _caption_chunk(self, images: Sequence[Image.Image], max_new_tokens: int) -> list[str]:
        """Caption one chunk in a single generate call."""
        inputs = self.processor(images=list(images), return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(self.device, self.dtype)
        output = self.model.generate(
            pixel_values=pixel_values,
            num_beams=self.options.num_beams,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            min_new_tokens=min(self.options.min_new_tokens, max_new_tokens),
            repetition_penalty=self.options.repetition_penalty,
        )
        texts = self.processor.batch_decode(output, skip_special_tokens=True)
        return [text.strip() for text in texts]


def _accelerate_max_memory(max_memory: dict[str, str] | None) -> dict[int | str, str] | None:
    """Key GPUs by index as accelerate expects: ``{"0": "10GiB"}`` becomes ``{0: "10GiB"}``."""
    if max_memory is None:
        return None
    return {int(key) if key.isdigit() else key: value for key, value in max_memory.items()}


def _loader(architecture: Architecture) -> LoadCaptioner:
    def load(kind: CaptionerKind, source: ModelSource, options: CaptionOptions) -> BlipCaptioner:
        return BlipCaptioner.from_pretrained(source, architecture, options, kind)

    return load


load_blip = _loader(ARCHITECTURES["blip"])
load_blip2 = _loader(ARCHITECTURES["blip-2"])
