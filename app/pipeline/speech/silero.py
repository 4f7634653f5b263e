"""The ``silero`` speech detector: Silero VAD, a small neural network shipped inside the
silero-vad wheel (loaded from the package, never downloaded; run by ONNX Runtime). Tells speech
from music and noise; see :mod:`app.pipeline.speech` for measurements."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from typing import Any

from app.errors import ModelLoadError
from app.pipeline.speech.base import (
    SAMPLE_RATE,
    AudioInput,
    SpeechOptions,
    SpeechUpdate,
    StreamingDetector,
    fixed_blocks,
    quiet_segments,
)
from app.pipeline.types import Interval


def load_silero_model() -> Any:
    """Load the Silero VAD model bundled in the silero-vad wheel (no download), in ONNX form.

    ONNX Runtime runs it on one CPU thread (silero-vad's setting) about twice as fast as the
    TorchScript copy on this project's CPU: 300 s of audio in 1.8 s against 3.6 s. The
    TorchScript copy also loads through ``torch.jit.load``, which torch 2.13 deprecates.
    The session is asked for the CPU provider by name, as ONNX Runtime builds with CUDA
    require, and a 32 ms window is not worth a trip to the GPU.

    Returns:
        The model; it keeps state between windows, so give each detector its own.

    Raises:
        ModelLoadError: silero-vad is missing or its model file cannot be read.
    """
    import torch

    threads = torch.get_num_threads()
    try:
        # silero_vad calls torch.set_num_threads(1) process-wide when first imported.
        from onnxruntime.capi.onnxruntime_pybind11_state import (
            Fail,
            InvalidProtobuf,
            NoSuchFile,
        )
        from silero_vad.utils_vad import OnnxWrapper
    except ImportError as exc:
        raise ModelLoadError(
            f"the Silero VAD model cannot run ({exc}); install the project's dependencies "
            "(`pip install silero-vad onnxruntime`), or use the webrtc speech detector"
        ) from exc
    finally:
        torch.set_num_threads(threads)
    model = resources.files("silero_vad.data").joinpath("silero_vad.onnx")
    try:
        with resources.as_file(model) as path:
            return OnnxWrapper(str(path), force_onnx_cpu=True)
    except (OSError, Fail, InvalidProtobuf, NoSuchFile) as exc:
        raise ModelLoadError(
            f"the Silero VAD model could not be loaded ({exc}); "
            "reinstall it with `pip install --force-reinstall silero-vad`, "
            "or use the webrtc speech detector"
        ) from exc


class SileroSpeechDetector(StreamingDetector):
    """Silero VAD: a speech probability per 32 ms window, turned into intervals by silero-vad."""

    WINDOW = 512
    """Samples per window at 16 kHz, fixed by the model."""
    NEGATIVE_MARGIN = 0.15
    """silero-vad ends speech on windows below ``threshold - NEGATIVE_MARGIN``."""

    def __init__(self, options: SpeechOptions | None = None, *, split_after: float = 1.0) -> None:
        """Load the model; arguments as for ``StreamingDetector``."""
        super().__init__(options, split_after=split_after)
        self._model = load_silero_model()

    def stream(self, audio: AudioInput, sample_rate: int) -> Iterator[SpeechUpdate]:
        """Find speech; see ``SpeechDetector.stream``. ``sample_rate`` must be 16000."""
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"Silero VAD needs {SAMPLE_RATE} Hz audio, got {sample_rate} Hz")
        import torch

        window_seconds = self.WINDOW / sample_rate
        segments = quiet_segments(self.options, self.split_after, window_seconds)
        quiet_below = max(self.options.threshold - self.NEGATIVE_MARGIN, 0.01)
        length = 0
        self._model.reset_states()
        with torch.no_grad():
            for block, real in fixed_blocks(audio, self.WINDOW):
                probability = float(self._model(torch.tensor(block), sample_rate))
                length += real
                done = segments.push(probability, probability < quiet_below)
                if done is not None:
                    start, probabilities = done
                    yield self._update(start, probabilities, len(probabilities) * self.WINDOW)
        start, probabilities = segments.rest()
        yield self._update(start, probabilities, length - start * self.WINDOW)

    def _update(self, start: int, probabilities: list[float], samples: int) -> SpeechUpdate:
        """The speech in one segment that starts at window ``start`` and holds ``samples``."""
        from silero_vad import get_speech_timestamps_from_probs

        offset = start * self.WINDOW
        known_until = (offset + samples) / SAMPLE_RATE
        if not probabilities:
            return SpeechUpdate([], known_until)
        spans = get_speech_timestamps_from_probs(
            probabilities,
            sampling_rate=SAMPLE_RATE,
            threshold=self.options.threshold,
            min_speech_duration_ms=self.options.min_speech * 1000,
            min_silence_duration_ms=self.options.min_silence * 1000,
            speech_pad_ms=self.options.padding * 1000,
            audio_length_samples=samples,
        )
        intervals = [
            Interval((offset + s["start"]) / SAMPLE_RATE, (offset + s["end"]) / SAMPLE_RATE)
            for s in spans
        ]
        return SpeechUpdate(intervals, known_until)
