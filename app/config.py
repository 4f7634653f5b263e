"""The service's settings: one pydantic-settings object, read once from ``DESCRIBER_*`` variables.

Every field is documented in ``README.md``. The pipeline never imports this module: the
service turns these values into the pipeline's option dataclasses (``caption_options`` and
friends below).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.errors import PluginUnavailable
from app.models import DEFAULT_MODEL, CaptionOptions
from app.models.captioners import CAPTIONERS
from app.models.prompt import PromptBuilder, PromptError
from app.models.translators import TranslateOptions, default_translator
from app.pipeline.chunks import default_workers
from app.pipeline.describe import DescribeOptions, MediaOptions, SpeechSource
from app.pipeline.narration import NarrationOptions
from app.pipeline.novelty import AUTO_SCORER, SCORERS, check_scorer
from app.pipeline.scenes import DETECTORS, ScanMode, SceneOptions
from app.pipeline.soundtrack import MixOptions
from app.pipeline.sources import FetchOptions, URLGuard
from app.pipeline.speech import SPEECH_DETECTORS, SpeechOptions
from app.pipeline.tts import TTS_ENGINES, TtsOptions
from app.registry import Registry
from app.service.backends import BACKENDS

logger = logging.getLogger(__name__)

#: Shortest bearer token or callback secret accepted in production.
MIN_SECRET_LENGTH = 16

#: The registry that checks each setting naming a plug-in.
_REGISTRIES: dict[str, Registry[Any]] = {
    "backend": BACKENDS,
    "captioner": CAPTIONERS,
    "detector": DETECTORS,
    "novelty_scorer": SCORERS,
    "speech_detector": SPEECH_DETECTORS,
    "tts": TTS_ENGINES,
}


class Settings(BaseSettings):
    """Configuration of the HTTP service, from environment variables prefixed ``DESCRIBER_``.

    A ``.env`` file in the working directory is read too. Nested values (``max_memory``) are
    JSON, e.g. ``DESCRIBER_MAX_MEMORY='{"0": "10GiB", "cpu": "30GiB"}'``.
    """

    model_config = SettingsConfigDict(
        env_prefix="DESCRIBER_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        # DESCRIBER_MAX_VIDEO_DURATION=none (any optional setting) means None.
        env_parse_none_str="none",
    )

    # --- Deployment -----------------------------------------------------------------------
    environment: Literal["local", "production"] = "local"
    """``production`` refuses unsafe values (no token, private URLs allowed, unsigned callbacks)."""
    host: str = "127.0.0.1"
    """Interface uvicorn listens on (``0.0.0.0`` in the container)."""
    port: int = Field(default=8000, ge=0, le=65535)
    """TCP port uvicorn listens on (0 picks a free one)."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Level of the service's log lines."""
    api_token: SecretStr | None = None
    """Bearer token every endpoint but ``/healthz`` and ``/readyz`` requires; None: no auth."""

    # --- Store and queue -------------------------------------------------------------------
    backend: str = "local"
    """Job backend (store and queue): ``local`` is one SQLite file and workers in this
    process."""
    db_path: Path = Path("data/describer.sqlite3")
    """SQLite file holding jobs, descriptions and the callback outbox (created if missing)."""
    workers: int = Field(default=1, ge=1, le=64)
    """Jobs processed at once; they share one model (a local model serialises captioning)."""
    queue_max: int = Field(default=100, ge=1)
    """Most jobs waiting in the queue; ``POST /process`` answers 503 past it."""
    retry_after: int = Field(default=30, ge=1)
    """Seconds sent in ``Retry-After`` when the queue is full."""
    job_max_attempts: int = Field(default=3, ge=1)
    """Runs a job gets when the service keeps dying under it; then it ends NOT_PROCESSED."""
    queue_poll_interval: float = Field(default=5.0, gt=0)
    """Seconds between checks of the store for jobs, besides being woken on each submit."""

    # --- Temporal backend (DESCRIBER_BACKEND=temporal; pip install '.[scale]') -------------
    database_url: SecretStr | None = None
    """PostgreSQL holding jobs, descriptions and the outbox for every process of the
    ``temporal`` backend, as ``postgresql://user:password@host:5432/database``."""
    temporal_address: str = "localhost:7233"
    """Temporal frontend, ``host:port``."""
    temporal_namespace: str = "default"
    """Temporal namespace of the jobs' workflows."""
    temporal_task_queue: str = "describer"
    """Temporal task queue the API submits to and ``python -m app worker`` takes jobs from."""
    temporal_heartbeat_timeout: float = Field(default=30.0, gt=0)
    """Seconds without a heartbeat after which a worker is taken for lost and its job runs
    again on another, after the last description it stored."""
    temporal_retry_initial: float = Field(default=1.0, gt=0)
    """Seconds before a failed or lost job runs again; doubles after each try (up to
    ``temporal_retry_max``), ``job_max_attempts`` tries in all."""
    temporal_retry_max: float = Field(default=60.0, gt=0)
    """Longest wait between two tries of a job, seconds."""

    # --- Limits ----------------------------------------------------------------------------
    max_download_bytes: int = Field(default=4 * 1024**3, ge=1)
    """Largest video downloaded, bytes."""
    max_subtitles_bytes: int = Field(default=10 * 1024**2, ge=1)
    """Largest subtitles file downloaded, bytes (read into memory whole)."""
    max_video_duration: float | None = Field(default=4 * 3600.0, gt=0)
    """Longest video accepted, seconds; None: no limit."""
    download_timeout: float = Field(default=900.0, gt=0)
    """Seconds a whole download may take."""
    download_dir: Path | None = None
    """Folder for downloaded videos and subtitles while a job uses them (created if missing;
    files there that a process killed in the middle of a job left are removed by the next
    download); None: ``describer-downloads-<uid>`` in the system's temporary folder."""
    connect_timeout: float = Field(default=15.0, gt=0)
    """Seconds to connect to a media server or to wait for its next chunk."""
    job_timeout: float = Field(default=4 * 3600.0, gt=0)
    """Seconds a job may run, download included, before it ends NOT_PROCESSED."""
    allow_private_urls: bool = False
    """Accept media URLs on loopback and private networks (tests, trusted LANs). Cloud
    metadata addresses stay refused."""

    # --- Callbacks to core -----------------------------------------------------------------
    core_url: str | None = None
    """Base URL of core; None: no callbacks, results stay available through the API."""
    callback_secret: SecretStr | None = None
    """Shared secret for the ``X-Describer-Signature`` HMAC-SHA256 header; None: unsigned."""
    callback_timeout: float = Field(default=10.0, gt=0)
    """Seconds one callback request may take."""
    callback_backoff_initial: float = Field(default=0.5, gt=0)
    """First wait between two tries of a callback, seconds; it doubles after each failure."""
    callback_backoff_max: float = Field(default=60.0, gt=0)
    """Longest wait between two tries of a callback, seconds (transient failures never give up)."""
    callback_concurrency: int = Field(default=4, ge=1)
    """Jobs whose callbacks are delivered at once (each job's own callbacks go one by one)."""

    # --- Model -----------------------------------------------------------------------------
    captioner: str = "auto"
    """Captioner kind (blip, blip-2, chat-vlm, openai); ``auto`` picks it from the model's
    config.json, or ``openai`` when ``api_base`` is set."""
    model: str = DEFAULT_MODEL
    """Hub id or local directory of the captioning model; with ``api_base``, the served
    model's name."""
    model_revision: str | None = None
    """Hub revision (branch, tag or commit) of the model."""
    cache_dir: str | None = None
    """Hugging Face cache directory (mount it as a volume); None: the HF default."""
    local_files_only: bool = False
    """Never reach the hub: only a local directory or the cache."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``."""
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    """Model weights' type; ``auto``: float16 on CUDA, float32 on CPU."""
    beams: int = Field(default=3, ge=1)
    """Beam search width; 1 is greedy decoding."""
    max_new_tokens: int | None = Field(default=None, ge=1)
    """Most tokens in a caption; None: the captioner's own (30 for BLIP, 200 for
    prompt-driven models)."""
    repetition_penalty: float = Field(default=1.0, gt=0)
    """Penalty on repeating a token; 1.0 means none."""
    model_batch_size: int | None = Field(default=None, ge=1)
    """Images per forward pass; None picks it from free GPU memory."""
    offload: bool = False
    """Spread the model over GPU and CPU (accelerate), e.g. BLIP-2 on a small GPU."""
    max_memory: dict[str, str] | None = None
    """Memory caps per device when offloading, e.g. ``{"0": "10GiB", "cpu": "30GiB"}``."""

    # --- Prompt-driven captioners: vision-language models, OpenAI-compatible endpoints ------
    api_base: str | None = None
    """Base URL of an OpenAI-compatible chat-completions endpoint (``http://host:8000/v1``);
    set, captions come from it and ``model`` names the served model."""
    api_key: SecretStr | None = None
    """Bearer token for ``api_base``; None sends none."""
    api_concurrency: int = Field(default=4, ge=1)
    """Requests in flight to ``api_base`` at once, all jobs together."""
    api_timeout: float = Field(default=120.0, gt=0)
    """Seconds one request to ``api_base`` may take."""
    api_max_attempts: int = Field(default=4, ge=1)
    """Tries of a request that fails with 429, 5xx, a timeout or a lost connection."""
    api_backoff: float = Field(default=1.0, ge=0)
    """Seconds before the second try; each further wait doubles, up to a minute."""
    prompt_file: Path | None = None
    """UTF-8 file holding the prompt template (placeholders in README.md); None: the
    default prompt."""
    frames_per_scene: int | None = Field(default=None, ge=1, le=16)
    """Frames of each scene shown to the captioner; None: the captioner's own (1 for BLIP, 3
    for vision-language models)."""
    dialogue_lines: int = Field(default=2, ge=0)
    """Subtitle lines before the pause, and as many after it, put in the prompt."""
    previous_descriptions: int = Field(default=3, ge=0)
    """Descriptions accepted before a scene that are put in its prompt."""

    # --- Pipeline --------------------------------------------------------------------------
    batch_size: int = Field(default=8, ge=1)
    """Most frames handed to the captioner in one call."""
    min_gap: float = Field(default=2.0, gt=0)
    """Shortest dialogue-free window, seconds, that can hold a description."""
    frame_offset: float = Field(default=1.0, ge=0)
    """Seconds after a scene starts at which its frame is taken."""
    detector: str = "adaptive"
    """Scene detector: adaptive, content, hash, histogram or threshold."""
    detector_threshold: float | None = None
    """The detector's own threshold; None keeps PySceneDetect's default."""
    min_scene_len: float = Field(default=0.6, ge=0)
    """Seconds after a cut before another cut is accepted."""
    fades: bool = True
    """Also cut on fades to and from black."""
    decode_device: str = Field(default="cpu", pattern=r"^(cpu|cuda(:\d+)?)$")
    """Where video frames are decoded: ``cpu``, or ``cuda`` / ``cuda:N`` for the GPU's video
    decoder (NVDEC); checked when the service starts."""
    scan: ScanMode = ScanMode.FULL
    """How cuts are found: ``full`` decodes every (reference) frame; ``keyframes`` decodes
    the keyframes and fully only the stretches that may hold a cut (same cuts on the bench
    videos, not yet faster there: see ``bench/scenes.py``)."""
    scan_workers: int = Field(default=0, ge=0)
    """Processes that share the full scan, each a chunk of the video at a time. 0: one when
    decoding on the CPU (the decoder already uses every core), half the cores, at most 8,
    when decoding with NVDEC (``decode_device``), where one process is bound by copying its
    frames back; 1: one process."""
    scan_chunk_length: float = Field(default=60.0, ge=5)
    """Seconds of video each scan worker takes at a time; a video shorter than two chunks is
    scanned in one process."""
    skip_nonref_frames: bool = True
    """Decode only the frames other frames refer to (about a third fewer in H.264 with
    B-frames): cuts and chosen frames within two frames of exact; false decodes every frame."""
    novelty_scorer: str = AUTO_SCORER
    """How captions are compared with recent ones: meteor (words, WordNet synonyms; English),
    semantic (sentence embeddings), chrf (character n-grams; any language), or auto (meteor
    for English, chrf for other languages)."""
    novelty_threshold: float | None = Field(default=None, ge=0, le=1)
    """A caption at least this similar to a recent one is dropped; `none`: the scorer's
    measured default."""
    novelty_history: int | None = Field(default=None, ge=1)
    """How many recent descriptions a caption is compared with; `none`: the scorer's default."""
    similar_frame_threshold: float | None = Field(default=0.97, gt=0, le=1)
    """Skip a frame at least this similar to the last captioned one; None compares nothing."""
    caption_image_side: int | None = Field(default=768, ge=16)
    """Frames go to the captioner scaled to at most this many pixels on their long side;
    None: full size."""
    language: str = Field(default="en", pattern=r"^[a-z]{2}$")
    """The viewer's language, an ISO 639-1 code (``en``, ``ru``): descriptions are written in
    it."""
    # --- Translation (an English-only captioner, another language) ------------------------
    translator: str | None = "auto"
    """Hub id or local directory of the model that translates an English-only captioner's
    descriptions into ``language``; ``auto``: ``Helsinki-NLP/opus-mt-en-{language}``;
    None (``none``): no translator, so such a language is an error."""
    translator_revision: str | None = None
    """Hub revision (branch, tag or commit) of the translation model."""
    translator_batch_size: int = Field(default=16, ge=1)
    """Descriptions per forward pass of the translation model."""
    words_per_second: float = Field(default=3.0, gt=0)
    """Narration speed that sets each description's word budget: espeak-ng measured 4.1
    words/s in English, 3.0 in Russian (``bench/narration_rate.py``)."""
    min_words: int = Field(default=3, ge=1)
    """A pause that holds fewer words than this gets no description."""
    speech_source: SpeechSource = SpeechSource.AUTO
    """Where dialogue is found: subtitles, audio, both, or auto (subtitles when given, else
    the audio track)."""
    speech_detector: str = "silero"
    """Voice activity detector for the audio track: silero or webrtc."""
    speech_threshold: float = Field(default=0.5, gt=0, lt=1)
    """Speech score (0..1) from which audio counts as speech."""

    # --- Narration: speech, fit, and the film's description track ---------------------------
    tts: str = "espeak"
    """Text-to-speech engine: espeak (espeak-ng, offline) or piper (``pip install piper-tts``)."""
    voice: str | None = None
    """The engine's voice (espeak-ng: ``en-us``, ``ru``...; piper: a ``.onnx`` file or a voice
    id); None: the engine's voice for ``language``."""
    tts_rate: float = Field(default=1.0, ge=0.25, le=4)
    """Speaking speed relative to the voice's normal speed."""
    max_speedup: float = Field(default=1.25, ge=1, le=2)
    """How much faster than ``tts_rate`` an overrunning description may be spoken before it
    is shortened (1.25: 25 % faster)."""
    duck_db: float = Field(default=12.0, ge=0, le=60)
    """How far the film's sound is lowered under a description in the mixed track, dB."""
    duck_ramp: float = Field(default=0.25, ge=0, le=2)
    """Seconds over which the film's sound is lowered before a description and raised
    after it."""

    # --- The service's rendered audio (jobs with "audio": true) ----------------------------
    media_dir: Path = Path("data/media")
    """Where the service renders each audio job's description track and film with it."""
    media_max_bytes: int = Field(default=50 * 1024**3, ge=1)
    """Most bytes the media directory holds; past it the oldest jobs' media are removed."""
    media_retention: float | None = Field(default=7 * 86400.0, gt=0)
    """Seconds a job's media are kept; `none`: until the size limit needs the room."""
    public_url: str | None = None
    """The service's public base URL, put before the media links of callbacks and the API
    (``https://describer.example.org``); unset: the links are paths (``/jobs/{id}/audio``)."""

    def narration_options(self) -> NarrationOptions:
        """Options for ``Narrator`` (its engine is built from their ``tts``)."""
        tts = TtsOptions(
            engine=self.tts,
            voice=self.voice,
            language=self.language,
            rate=self.tts_rate,
            cache_dir=self.cache_dir,
            local_files_only=self.local_files_only,
        )
        return NarrationOptions(tts=tts, max_speedup=self.max_speedup, min_words=self.min_words)

    def mix_options(self) -> MixOptions:
        """Options for ``mix_film``."""
        return MixOptions(duck_db=self.duck_db, ramp=self.duck_ramp, language=self.language)

    @field_validator("backend", "captioner", "detector", "novelty_scorer", "speech_detector", "tts")
    @classmethod
    def _registered(cls, value: str, info: ValidationInfo) -> str:
        if info.field_name in ("captioner", "novelty_scorer") and value == "auto":
            return value
        # Only the name: a plug-in's packages are checked where it is used (a command that
        # never detects speech runs without the speech detector's), and by the service at
        # start-up (``unavailable_plugins``), which may use them all.
        return _REGISTRIES[str(info.field_name)].known(value)

    def unavailable_plugins(self) -> list[str]:
        """One line for each plug-in setting whose member needs a package that is missing,
        naming the ``DESCRIBER_*`` variable and what to install; empty when all can load."""
        problems = []
        for name, registry in _REGISTRIES.items():
            value = getattr(self, name)
            if value == "auto":
                continue
            try:
                registry.check(value)
            except PluginUnavailable as exc:
                problems.append(f"DESCRIBER_{name.upper()}: {exc}")
        return problems

    @field_validator("prompt_file")
    @classmethod
    def _valid_prompt(cls, value: Path | None) -> Path | None:
        if value is not None:
            try:
                PromptBuilder.from_file(value)
            except PromptError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @field_validator("api_key")
    @classmethod
    def _empty_key_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None

    @field_validator("translator")
    @classmethod
    def _none_translator(cls, value: str | None) -> str | None:
        # "none" from the command line too, where env_parse_none_str does not apply.
        return None if value is None or value.strip().lower() in ("", "none") else value.strip()

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        CaptionOptions(device=value)  # raises ValueError naming the valid devices
        return value

    @field_validator("core_url", "public_url")
    @classmethod
    def _http_base(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{info.field_name} must be an http(s) URL, got {value!r}")
        return value

    @field_validator("api_token", "callback_secret", "database_url")
    @classmethod
    def _empty_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None

    @model_validator(mode="after")
    def _safe_for_production(self) -> Settings:
        problems: list[str] = []
        if self.environment == "production":
            if self.api_token is None or len(self.api_token.get_secret_value()) < MIN_SECRET_LENGTH:
                problems.append(f"api_token must be set to at least {MIN_SECRET_LENGTH} characters")
            if self.allow_private_urls:
                problems.append("allow_private_urls must be false (it opens SSRF to the LAN)")
            if self.core_url is not None and (
                self.callback_secret is None
                or len(self.callback_secret.get_secret_value()) < MIN_SECRET_LENGTH
            ):
                problems.append(
                    f"callback_secret must be set to at least {MIN_SECRET_LENGTH} characters "
                    "when core_url is set"
                )
        if problems:
            raise ValueError(
                "unsafe settings for DESCRIBER_ENVIRONMENT=production: " + "; ".join(problems)
            )
        if self.callback_backoff_max < self.callback_backoff_initial:
            raise ValueError("callback_backoff_max must not be below callback_backoff_initial")
        if self.backend == "temporal" and self.database_url is None:
            raise ValueError(
                "DESCRIBER_BACKEND=temporal needs DESCRIBER_DATABASE_URL (postgresql://...)"
            )
        # The pipeline's dataclasses check their own ranges: fail at startup, not in a job.
        self.caption_options()
        self.media_options()
        self.narration_options()
        self.mix_options()
        check_scorer(self.novelty_scorer, self.language)
        return self

    # --- The pipeline's option objects -------------------------------------------------------

    def caption_options(self) -> CaptionOptions:
        """Options for ``load_captioner``."""
        return CaptionOptions(
            kind=self.captioner,
            num_beams=self.beams,
            max_new_tokens=self.max_new_tokens,
            repetition_penalty=self.repetition_penalty,
            batch_size=self.model_batch_size,
            device=self.device,
            dtype=self.dtype,
            offload=self.offload,
            max_memory=self.max_memory,
            revision=self.model_revision,
            local_files_only=self.local_files_only,
            cache_dir=self.cache_dir,
            prompt=None
            if self.prompt_file is None
            else PromptBuilder.from_file(self.prompt_file).template,
            api_base=self.api_base,
            api_key=None if self.api_key is None else self.api_key.get_secret_value(),
            api_concurrency=self.api_concurrency,
            api_timeout=self.api_timeout,
            api_max_attempts=self.api_max_attempts,
            api_backoff=self.api_backoff,
        )

    def translator_model(self) -> str | None:
        """The translation model for ``language``, or None when none is set."""
        if self.translator == "auto":
            return default_translator(self.language)
        return self.translator

    def translate_options(self) -> TranslateOptions:
        """Options for ``load_translator``: the captioner's device, dtype and hub settings."""
        return TranslateOptions(
            batch_size=self.translator_batch_size,
            device=self.device,
            dtype=self.dtype,
            revision=self.translator_revision,
            local_files_only=self.local_files_only,
            cache_dir=self.cache_dir,
        )

    def media_options(self, guard: URLGuard | None = None) -> MediaOptions:
        """Options for ``describe_media``, fetching through ``guard``."""
        return MediaOptions(
            describe=self.describe_options(),
            speech_source=self.speech_source,
            speech_detector=self.speech_detector,
            speech=SpeechOptions(threshold=self.speech_threshold),
            fetch=FetchOptions(
                max_bytes=self.max_download_bytes,
                max_subtitles_bytes=self.max_subtitles_bytes,
                timeout=self.download_timeout,
                connect_timeout=self.connect_timeout,
                directory=self.download_dir,
            ),
            guard=guard,
        )

    def describe_options(self) -> DescribeOptions:
        """Options for ``describe``."""
        return DescribeOptions(
            frame_offset=self.frame_offset,
            min_gap=self.min_gap,
            novelty_scorer=self.novelty_scorer,
            novelty_threshold=self.novelty_threshold,
            novelty_history=self.novelty_history,
            scenes=SceneOptions(
                detector=self.detector,
                threshold=self.detector_threshold,
                min_scene_len=self.min_scene_len,
                fades=self.fades,
                skip_nonref_frames=self.skip_nonref_frames,
                decode_device=self.decode_device,
                scan=self.scan,
                workers=self.scan_workers or default_workers(self.decode_device),
                chunk_length=self.scan_chunk_length,
            ),
            batch_size=self.batch_size,
            max_duration=self.max_video_duration,
            words_per_second=self.words_per_second,
            language=self.language,
            min_words=self.min_words,
            similar_frame_threshold=self.similar_frame_threshold,
            caption_image_side=self.caption_image_side,
            frames_per_scene=self.frames_per_scene,
            dialogue_lines=self.dialogue_lines,
            previous_descriptions=self.previous_descriptions,
        )


@functools.cache
def get_settings() -> Settings:
    """The settings of this process, read from the environment on first use."""
    return Settings()
