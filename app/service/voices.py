"""The voices of the service's jobs: each job's narration options (the service's, with the
job's engine and voice), and their engines, built once and shared by jobs."""

from __future__ import annotations

import threading
from dataclasses import replace

from app.pipeline.narration import NarrationOptions, Narrator
from app.pipeline.tts import TtsEngine, load_engine
from app.service.jobs import JobOptions


class Voices:
    """Narrators for jobs, over engines kept per (engine, voice).

    Args:
        narration: The service's narration options (``DESCRIBER_TTS``, ``DESCRIBER_VOICE``...).
    """

    def __init__(self, narration: NarrationOptions) -> None:
        self.narration = narration
        self._engines: dict[tuple[str, str | None], TtsEngine] = {}
        self._lock = threading.Lock()

    def options(self, job: JobOptions) -> NarrationOptions:
        """The narration options of a job: its engine and voice over the service's. The
        service's voice goes with the service's engine only; another engine without a
        voice speaks with its voice for the language."""
        tts = self.narration.tts
        engine = job.tts or tts.engine
        voice = job.voice if job.voice is not None else tts.voice if engine == tts.engine else None
        return replace(self.narration, tts=replace(tts, engine=engine, voice=voice))

    def narrator(self, job: JobOptions) -> Narrator:
        """A narrator for a job; blocking (the first use of a voice loads it).

        Raises:
            ValueError: The engine is unknown or not installed.
            VoiceError: The voice cannot be used.
            ModelLoadError: A voice id that cannot be found or downloaded.
        """
        options = self.options(job)
        key = (options.tts.engine, options.tts.voice)
        with self._lock:  # one load per voice, even when two jobs ask at once
            engine = self._engines.get(key)
            if engine is None:
                engine = self._engines[key] = load_engine(options.tts)
        return Narrator(engine, options)
