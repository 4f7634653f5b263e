"""Chat vision-language models run locally through transformers' image-text-to-text classes
(``AutoModelForImageTextToText`` and ``AutoProcessor``): Qwen2-VL, Qwen2.5-VL, Qwen3-VL,
SmolVLM (Idefics3), SmolVLM2, Gemma 3 and any other family whose processor has a chat
template that takes images (each of these runs in the tests, on a tiny random model).

One generic captioner; a family is a line in ``CAPTIONERS`` with its ``model_type`` values
and the packages its processor needs, whose target is :data:`load`. Each scene's frames and
the prompt of :mod:`app.models.prompt` make one user turn; a batch of scenes is padded on
the left and generated in one call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    BatchFeature,
    PreTrainedModel,
    ProcessorMixin,
)

from app.models.base import CaptionOptions, CaptionRequest
from app.models.captioners import CaptionerKind, LoadCaptioner
from app.models.captioners.blip import (
    CPU_BATCH_SIZE,
    _accelerate_max_memory,
    resolve_device,
    resolve_dtype,
)
from app.models.hub import ModelSource
from app.models.prompt import PromptBuilder, token_limit

logger = logging.getLogger(__name__)

#: Scenes per generate call on a GPU when the options name no batch size: each brings its
#: frames' image tokens (hundreds per frame) into the key/value cache.
GPU_BATCH_SIZE = 4


class ChatVLMCaptioner:
    """Describes scenes with a local chat vision-language model; owns its device and dtype.

    The frames of a request (or its one image) and the prompt form one chat turn. Prompts
    of a batch differ in length, so they are padded on the left, which leaves each answer
    as it would be alone. One model runs one call at a time.
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
        """Wrap a loaded model, already on its device(s) and in its dtype.

        Args:
            model: An image-text-to-text model.
            processor: Its processor, with a chat template and a tokenizer that pads on the
                left.
            options: Generation options.
            name: The hub id or directory it came from, for logs.
            kind: Its registry line: the frames of a scene it is shown, unless the pipeline
                is told otherwise, and the languages it writes (any it is asked for).
        """
        self.frames_per_scene = kind.frames_per_scene
        self.languages = kind.languages
        self.model = model.eval()
        self.processor = processor
        self.options = options
        self.name = name
        self.device: torch.device = model.device
        self.dtype: torch.dtype = model.dtype
        self.prompt = PromptBuilder.for_template(options.prompt)
        self.batch_size = options.batch_size or (
            GPU_BATCH_SIZE if self.device.type == "cuda" else CPU_BATCH_SIZE
        )
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
        cls, kind: CaptionerKind, source: ModelSource, options: CaptionOptions
    ) -> ChatVLMCaptioner:
        """Load model and processor from a hub id or a directory, on the device of ``options``.

        "auto" dtype is bfloat16 on a GPU that has it (these models are trained in it;
        float16 overflows in some), float16 on other GPUs, float32 on the CPU.
        """
        device = resolve_device(options.device)
        dtype = resolve_dtype(options.dtype, device)
        if options.dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
            dtype = torch.bfloat16
        name = source.name_or_path
        kwargs = source.pretrained_kwargs()
        processor = AutoProcessor.from_pretrained(name, padding_side="left", **kwargs)
        placement: dict[str, Any] = (
            {"device_map": "auto", "max_memory": _accelerate_max_memory(options.max_memory)}
            if options.offload
            else {"device_map": device}
        )
        model = AutoModelForImageTextToText.from_pretrained(
            name, dtype=dtype, **placement, **kwargs
        )
        return cls(model, processor, options, name=name, kind=kind)

    def caption(
        self, images: Sequence[Image.Image], requests: Sequence[CaptionRequest] | None = None
    ) -> list[str]:
        """Describe each image, or its request's frames, as the request's prompt asks.

        Args:
            images: One image per scene; a request's ``frames``, when given, replace it.
            requests: One per image; None asks for the defaults (English, 20 words).

        Returns:
            One description per image, stripped, without special tokens.
        """
        if requests is not None and len(requests) != len(images):
            raise ValueError(f"{len(requests)} requests for {len(images)} images")
        asked = list(requests) if requests is not None else [CaptionRequest()] * len(images)
        answers: list[str] = []
        with self._lock:
            for start in range(0, len(images), self.batch_size):
                end = start + self.batch_size
                answers.extend(self._caption_chunk(images[start:end], asked[start:end]))
        return answers

    def conversation(self, image: Image.Image, request: CaptionRequest) -> list[dict[str, Any]]:
        """The chat turn for one scene: its frames, then the prompt."""
        frames = request.frames or (image,)
        content: list[dict[str, Any]] = [{"type": "image", "image": frame} for frame in frames]
        content.append({"type": "text", "text": self.prompt.build(request, len(frames))})
        return [{"role": "user", "content": content}]

    def encode(
        self, images: Sequence[Image.Image], requests: Sequence[CaptionRequest]
    ) -> BatchFeature:
        """The model's inputs for a batch of scenes: one chat turn each, padded on the left,
        on the model's device, pixels in its dtype."""
        conversations = [self.conversation(i, r) for i, r in zip(images, requests, strict=True)]
        encoded = self.processor.apply_chat_template(
            conversations,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"padding": True},
        )
        assert isinstance(encoded, BatchFeature)
        inputs = encoded.to(self.device)
        # Pixels go in the model's dtype; token ids and masks stay integers.
        for key, value in inputs.items():
            if torch.is_floating_point(value):
                inputs[key] = value.to(self.dtype)
        return inputs

    @torch.inference_mode()
    def _caption_chunk(
        self, images: Sequence[Image.Image], requests: Sequence[CaptionRequest]
    ) -> list[str]:
        inputs = self.encode(images, requests)
        limit = token_limit(requests, self.options.max_new_tokens)
        output = self.model.generate(
            **inputs,
            num_beams=self.options.num_beams,
            do_sample=False,
            max_new_tokens=limit,
            min_new_tokens=min(self.options.min_new_tokens, limit),
            repetition_penalty=self.options.repetition_penalty,
        )
        answers = output[:, inputs["input_ids"].shape[1] :]
        texts = self.processor.batch_decode(answers, skip_special_tokens=True)
        return [text.strip() for text in texts]


#: The loader of every chat vision-language kind (Qwen-VL, SmolVLM, SmolVLM2, ...).
load: LoadCaptioner = ChatVLMCaptioner.from_pretrained
