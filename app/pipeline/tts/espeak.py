"""espeak-ng, the default voice: offline, about a hundred languages (English and Russian among
them), formant synthesis that sounds robotic but is always intelligible. It runs as the
``espeak-ng`` program of the Debian package of that name (``scripts/install.sh`` installs it).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from app.errors import VoiceError
from app.pipeline.tts.base import Samples, TtsEngine, TtsOptions

logger = logging.getLogger(__name__)

NORMAL_WPM = 175
"""espeak-ng's default speed, words per minute (``-s``): speed 1.0."""
MIN_WPM, MAX_WPM = 80, 450
"""The speeds espeak-ng accepts."""

#: The voice for a language when none is given: the language code itself, except where
#: espeak-ng's voice for the bare code is not the usual one for films (``en`` is British).
_VOICE_FOR_LANGUAGE = {"en": "en-us"}


class EspeakEngine(TtsEngine):
    """Speech from the ``espeak-ng`` program, one process per text.

    Raises:
        VoiceError: espeak-ng is not installed, or has no such voice.
    """

    def __init__(self, options: TtsOptions) -> None:
        program = shutil.which("espeak-ng")
        if program is None:
            raise VoiceError(
                "espeak-ng is not installed: install the Debian package (apt-get install "
                "espeak-ng, or bash scripts/install.sh) or choose another engine with --tts"
            )
        self._program = program
        self.voice = options.voice or _VOICE_FOR_LANGUAGE.get(options.language, options.language)
        self._rate = options.rate
        # espeak-ng itself falls back to a near match ("no-such-voice" speaks Norwegian).
        if self.voice.partition("+")[0].lower() not in self._voices():
            raise VoiceError(
                f"espeak-ng has no voice {self.voice!r}; list its voices with "
                "'espeak-ng --voices' and pass one with --voice (a language code such as en-us "
                "or ru, a voice name, optionally with a +variant)"
            )
        # An unknown voice fails here, before any film is scanned; the rate is the voice's
        # (22 050 Hz, 16 000 for MBROLA voices).
        _, self.sample_rate = self._speak("test", 1.0)

    def _voices(self) -> set[str]:
        """Every name espeak-ng knows a voice by: language codes, voice names, voice files."""
        listing = subprocess.run(
            [self._program, "--voices"], capture_output=True, text=True, check=True
        ).stdout
        names: set[str] = set()
        for line in listing.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 5:  # Pty Language Age/Gender VoiceName File [Other languages]
                names.update(n.lower() for n in (fields[1], fields[3], fields[4]))
                names.add(fields[4].rpartition("/")[2].lower())
        return names

    def synthesize(self, text: str, speed: float = 1.0) -> Samples:
        return self._speak(text, speed)[0]

    def _speak(self, text: str, speed: float) -> tuple[Samples, int]:
        wpm = round(NORMAL_WPM * self._rate * speed)
        if not MIN_WPM <= wpm <= MAX_WPM:
            raise VoiceError(
                f"espeak-ng speaks at {MIN_WPM} to {MAX_WPM} words per minute; rate x speed "
                f"{self._rate * speed:.2f} asks for {wpm}"
            )
        with tempfile.TemporaryDirectory(prefix="espeak-") as directory:
            wav_path = Path(directory) / "speech.wav"
            # The text goes on standard input (-b 1: UTF-8), so a text that starts with a
            # dash is not read as an option.
            run = subprocess.run(
                [self._program, "-b", "1", "-v", self.voice, "-s", str(wpm), "-w", str(wav_path)],
                input=text.encode(),
                capture_output=True,
                check=False,
            )
            if run.returncode != 0 or not wav_path.is_file():
                problem = run.stderr.decode(errors="replace").strip() or f"exit {run.returncode}"
                raise VoiceError(
                    f"espeak-ng cannot speak with the voice {self.voice!r}: {problem}. List its "
                    "voices with 'espeak-ng --voices' and pass one with --voice"
                )
            with wave.open(str(wav_path)) as wav:
                pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
                rate = wav.getframerate()
        return (pcm.astype(np.float32) / 32768).astype(np.float32), rate
