"""Text-to-speech engines that speak the descriptions, one module each in this folder, named
in ``TTS_ENGINES``:

* ``espeak`` (default): the espeak-ng program, offline, English, Russian and about a hundred
  other languages; robotic but always intelligible.
* ``piper``: Piper's neural voices (``pip install piper-tts``); listed only when installed.
"""

from __future__ import annotations

from collections.abc import Callable

from app.pipeline.tts.base import Samples, TtsEngine, TtsOptions
from app.registry import Member, Registry

TtsEngineFactory = Callable[[TtsOptions], TtsEngine]

DEFAULT_ENGINE = "espeak"

#: Engines by name, each a class built from ``TtsOptions``. A new engine: a module in this
#: folder and a line here.
TTS_ENGINES: Registry[TtsEngineFactory] = Registry(
    "text-to-speech engine",
    {
        "espeak": "app.pipeline.tts.espeak:EspeakEngine",
        "piper": Member("app.pipeline.tts.piper:PiperEngine", {"piper": "piper-tts"}),
    },
)


def load_engine(options: TtsOptions) -> TtsEngine:
    """Build the engine ``options.engine`` with its voice.

    Raises:
        ValueError: Unknown or not installed engine (the message says which exist).
        VoiceError: The voice cannot be used.
    """
    return TTS_ENGINES.load(options.engine)(options)


__all__ = ["DEFAULT_ENGINE", "TTS_ENGINES", "Samples", "TtsEngine", "TtsOptions", "load_engine"]
