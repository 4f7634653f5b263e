"""Piper (the ``piper-tts`` package): neural voices, far more natural than espeak-ng, run on
the CPU by ONNX Runtime. A voice is a ``.onnx`` file with its ``.onnx.json`` beside it, given
by path, or a voice id of the ``rhasspy/piper-voices`` hub repository
(``en_US-lessac-medium``), fetched through the project's model resolver (cache directory,
offline switch). Voices are listed at https://huggingface.co/rhasspy/piper-voices; download
one with ``python -m piper.download_voices en_US-lessac-medium`` or let the first run fetch it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.errors import VoiceError
from app.models.hub import ModelSource, load_model
from app.pipeline.tts.base import Samples, TtsEngine, TtsOptions

if TYPE_CHECKING:
    from piper import PiperVoice

VOICES_REPOSITORY = "rhasspy/piper-voices"
"""The hub repository that holds Piper's voices."""

#: The voice for a language when none is given.
DEFAULT_VOICES = {"en": "en_US-lessac-medium", "ru": "ru_RU-irina-medium"}

_VOICE_ID = re.compile(
    r"(?P<lang>[a-z]{2,3})_(?P<region>[A-Z]{2})-(?P<name>.+)-(?P<quality>[a-z_]+)"
)


def voice_file(voice_id: str) -> str:
    """The path of a voice's ``.onnx`` in the voices repository.

    Raises:
        VoiceError: ``voice_id`` is not of the form ``en_US-lessac-medium``.
    """
    match = _VOICE_ID.fullmatch(voice_id)
    if match is None:
        raise VoiceError(
            f"{voice_id!r} is neither a Piper voice file (.onnx) nor a voice id like "
            f"en_US-lessac-medium (see https://huggingface.co/{VOICES_REPOSITORY})"
        )
    lang, region, name, quality = match.group("lang", "region", "name", "quality")
    return f"{lang}/{lang}_{region}/{name}/{quality}/{voice_id}.onnx"


class PiperEngine(TtsEngine):
    """Speech from a Piper voice.

    Raises:
        VoiceError: No voice for the language, or a voice file that does not exist.
        ModelLoadError: A voice id that cannot be found or downloaded, or a damaged voice.
    """

    def __init__(self, options: TtsOptions) -> None:
        voice = options.voice or DEFAULT_VOICES.get(options.language)
        if voice is None:
            raise VoiceError(
                f"no default Piper voice for the language {options.language!r}: pass one with "
                f"--voice (a .onnx file or an id from https://huggingface.co/{VOICES_REPOSITORY})"
            )
        is_file = voice.endswith(".onnx")
        if is_file and not Path(voice).expanduser().is_file():
            raise VoiceError(f"the Piper voice file {voice} does not exist; check the path")
        source = ModelSource(
            voice,
            cache_dir=options.cache_dir,
            local_files_only=options.local_files_only,
            # A voice file was just found: the resolver, which knows model directories and
            # hub ids, would refuse a file.
            resolved=is_file,
        )
        self._voice = load_model(source, "Piper voice", _load)
        self._rate = options.rate
        self.sample_rate = self._voice.config.sample_rate

    def synthesize(self, text: str, speed: float = 1.0) -> Samples:
        from piper import SynthesisConfig

        scale = self._voice.config.length_scale / (self._rate * speed)  # < 1 is faster
        config = SynthesisConfig(length_scale=scale)
        chunks = [chunk.audio_float_array for chunk in self._voice.synthesize(text, config)]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def _load(source: ModelSource) -> PiperVoice:
    """Load a voice file, or download a voice id (and its config) from the voices repository."""
    from piper import PiperVoice

    name = source.name_or_path
    if name.endswith(".onnx"):
        return PiperVoice.load(Path(name).expanduser())
    from huggingface_hub import hf_hub_download

    onnx = voice_file(name)
    kwargs = source.pretrained_kwargs()
    hf_hub_download(VOICES_REPOSITORY, f"{onnx}.json", **kwargs)
    return PiperVoice.load(hf_hub_download(VOICES_REPOSITORY, onnx, **kwargs))
