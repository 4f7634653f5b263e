"""The ``marian`` translator kind: MarianMT (Helsinki-NLP's OPUS-MT models, one per language
pair, e.g. ``Helsinki-NLP/opus-mt-en-ru``), batched beam search on the GPU or the CPU."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from app.models.captioners.blip import resolve_device, resolve_dtype
from app.models.hub import ModelSource
from app.models.translators import TranslateOptions, TranslatorKind

logger = logging.getLogger(__name__)


class Seq2SeqTranslator:
    """Translates with an encoder-decoder model and its tokenizer; owns device and dtype.

    Texts go in chunks of ``options.batch_size``; padding is masked, so a text's translation
    does not depend on its neighbours. One model runs one call at a time.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        language: str,
        options: TranslateOptions,
        *,
        name: str,
        generate: dict[str, Any] | None = None,
    ) -> None:
        """Wrap a loaded model, already on its device and in its dtype.

        Args:
            model: A sequence-to-sequence generation model.
            tokenizer: Its tokenizer.
            language: The language it writes (ISO 639-1).
            options: Generation options.
            name: The hub id or directory it came from, for logs.
            generate: Further ``generate`` arguments of the kind (a forced first token).
        """
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.language = language
        self.options = options
        self.name = name
        self.device: torch.device = model.device
        self._generate = dict(generate or {})
        if options.num_beams is not None:
            self._generate["num_beams"] = options.num_beams
        self._lock = threading.Lock()
        logger.info("Translator %s into %r ready on %s", name, language, self.device)

    def translate(self, texts: Sequence[str]) -> list[str]:
        """Translate English texts, one output per input, in order (stripped)."""
        translated: list[str] = []
        with self._lock:
            for start in range(0, len(texts), self.options.batch_size):
                translated.extend(self._chunk(texts[start : start + self.options.batch_size]))
        return translated

    @torch.inference_mode()
    def _chunk(self, texts: Sequence[str]) -> list[str]:
        if not texts:
            return []
        inputs = self.tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True).to(
            self.device
        )
        output = self.model.generate(
            **inputs, do_sample=False, max_new_tokens=self.options.max_new_tokens, **self._generate
        )
        decoded = self.tokenizer.batch_decode(output, skip_special_tokens=True)
        return [text.strip() for text in decoded]


def load(source: ModelSource, language: str, options: TranslateOptions) -> Seq2SeqTranslator:
    """Load a MarianMT model and its tokenizer onto the device of ``options``.

    Errors of transformers, safetensors and torch pass through;
    :func:`app.models.translators.load_translator` turns them into a ModelLoadError.
    """
    tokenizer = AutoTokenizer.from_pretrained(source.name_or_path, **source.pretrained_kwargs())
    model = load_seq2seq(source, options)
    return Seq2SeqTranslator(model, tokenizer, language, options, name=source.name_or_path)


def load_seq2seq(source: ModelSource, options: TranslateOptions) -> PreTrainedModel:
    """A sequence-to-sequence model on the device and in the dtype of ``options``."""
    device = resolve_device(options.device)
    return AutoModelForSeq2SeqLM.from_pretrained(
        source.name_or_path,
        dtype=resolve_dtype(options.dtype, device),
        device_map=device,
        **source.pretrained_kwargs(),
    )


MARIAN = TranslatorKind(model_types=("marian",), load=load)
