"""What every text-to-speech engine shares: its options and its contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.pipeline.describe import LANGUAGE_CODE

Samples = npt.NDArray[np.float32]
"""Mono audio, 1-D float32 in [-1, 1]."""


@dataclass(frozen=True)
class TtsOptions:
    """Which voice speaks, and how fast.

    Attributes:
        engine: A name from ``TTS_ENGINES`` (``espeak``, ``piper``).
        voice: The engine's voice: an espeak-ng voice name (``en-us``, ``ru``), or a Piper
            voice ``.onnx`` file or id (``en_US-lessac-medium``); None: the engine's voice for
            ``language``.
        language: The viewer's language (ISO 639-1), which picks the voice when none is given.
        rate: Speaking speed relative to the voice's normal speed (1.0); narration may speed
            a description up further, up to ``NarrationOptions.max_speedup``.
        cache_dir: Where voices given by id are downloaded (the Hugging Face cache by default).
        local_files_only: Never download a voice: only a file or the cache.
    """

    engine: str = "espeak"
    voice: str | None = None
    language: str = "en"
    rate: float = 1.0
    cache_dir: str | None = None
    local_files_only: bool = False

    def __post_init__(self) -> None:
        if not 0.25 <= self.rate <= 4:
            raise ValueError(f"the speaking rate must be between 0.25 and 4, got {self.rate}")
        if not LANGUAGE_CODE.fullmatch(self.language):
            raise ValueError(f"language must be an ISO 639-1 code, got {self.language!r}")


class TtsEngine(ABC):
    """Turns text into speech with one voice. Built from ``TtsOptions``; the constructor
    checks that the voice exists (``VoiceError`` otherwise), so a bad voice fails before a
    film is scanned."""

    sample_rate: int
    """Samples per second of what :meth:`synthesize` returns."""

    @abstractmethod
    def synthesize(self, text: str, speed: float = 1.0) -> Samples:
        """Speak ``text`` at ``speed`` times the voice's normal speed.

        Returns:
            Mono float32 samples at :attr:`sample_rate`, the engine's leading and trailing
            silence included (narration trims it).

        Raises:
            VoiceError: The engine failed.
        """
