"""The captioner contract: a batch of images in, one text per image out, and the options a
captioner is loaded with."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from PIL import Image

from app.models.captioners import CAPTIONERS
from app.models.hub import ModelSource


@dataclass(frozen=True)
class CaptionRequest:
    """What a captioner is told about one image besides the image itself.

    New needs (a language, the previous description as context) are new fields with a
    default, so no captioner's signature changes.
    """

    max_words: int | None = None
    """Most words the description may have (the pause it goes in); None: the model's own
    limit. The pipeline trims to it anyway; a captioner uses it to stop early or to ask a
    prompt-driven model for fewer words."""
    language: str = "en"
    """The viewer's language (ISO 639-1). A model that writes many languages is asked to
    write in it; an English-only one (BLIP) ignores it and the pipeline translates after."""
    frames: tuple[Image.Image, ...] = ()
    """Frames spread over the scene, in time order, for a captioner that takes several
    (``frames_per_scene`` above 1): it describes these instead of the one image; empty: only
    the image. A single-frame captioner (BLIP) ignores them."""
    dialogue: tuple[str, ...] = ()
    """Dialogue around the pause, in time order (subtitle lines, when subtitles exist)."""
    previous: tuple[str, ...] = ()
    """The last descriptions accepted before this one, oldest first: for continuity, and so
    that a prompt-driven model does not repeat them."""


@runtime_checkable
class Captioner(Protocol):
    """Anything that describes images in words.

    Implementations must return exactly one string per input image, in order, and must give
    the same caption for an image whether it is captioned alone or within a batch. A
    captioner that looks at several frames of a scene says how many in an ``int`` attribute
    ``frames_per_scene`` (read with :func:`frames_per_scene`) and finds them in
    ``CaptionRequest.frames``. Jobs that
    run side by side call ``caption`` from several threads at once: a captioner that cannot
    overlap calls (one local model) serialises them itself; a remote endpoint need not.
    """

    def caption(
        self, images: Sequence[Image.Image], requests: Sequence[CaptionRequest] | None = None
    ) -> list[str]:
        """Caption a batch of RGB images.

        Args:
            images: The images to describe.
            requests: One per image, in the same order; None asks nothing special of any.
        """
        ...


def frames_per_scene(captioner: Captioner) -> int:
    """How many frames of a scene ``captioner`` looks at: its ``frames_per_scene`` attribute.

    The attribute is optional in the contract so that a plain ``caption`` function object
    (the bench scripts', the tests' fakes) stays a captioner; one without it takes one frame.
    """
    wanted = getattr(captioner, "frames_per_scene", 1)
    if not isinstance(wanted, int) or wanted < 1:
        raise ValueError(f"frames_per_scene must be a positive int, got {wanted!r}")
    return wanted


_DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
_DTYPES = ("auto", "float16", "bfloat16", "float32")


@dataclass(frozen=True)
class CaptionOptions:
    """How to load a captioning model and generate captions.

    Every kind reads what applies to it: a remote endpoint ignores ``device`` and ``dtype``.
    """

    #: The captioner kind, a name in ``app.models.captioners.CAPTIONERS``; "auto" picks the
    #: kind whose model types include the ``model_type`` of the model's config.json.
    kind: str = "auto"

    #: Beams of the beam search; 1 is greedy decoding.
    num_beams: int = 3
    #: Most tokens in a caption; a call may ask for fewer. None: the kind's own (30 for BLIP,
    #: whose tokens are about a word each; 200 for prompt-driven models, which may write in
    #: languages that take several tokens a word).
    max_new_tokens: int | None = None
    #: Fewest tokens in a caption; 0 lets the model stop when it is done.
    min_new_tokens: int = 0
    #: Penalty on repeating a token already generated; 1.0 means none.
    repetition_penalty: float = 1.0
    #: Images per forward pass; None picks it from free GPU memory (a small fixed size on CPU).
    batch_size: int | None = None
    #: "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".
    device: str = "auto"
    #: "auto" (float16 on CUDA, float32 on CPU), "float16", "bfloat16" or "float32".
    dtype: str = "auto"
    #: Spread the model over GPU and CPU with accelerate (``device_map="auto"``), e.g. BLIP-2 on a
    #: 12 GB GPU; slower than a model that fits on the GPU.
    offload: bool = False
    #: Memory caps per device when offloading, e.g. ``{"0": "10GiB", "cpu": "30GiB"}``; None lets
    #: accelerate use what is free.
    max_memory: dict[str, str] | None = None
    #: Hub revision (branch, tag or commit); ignored for a local directory.
    revision: str | None = None
    #: Never reach the hub: only a local directory or the cache (also on when HF_HUB_OFFLINE=1).
    local_files_only: bool = False
    #: Hub cache directory; None uses the Hugging Face default (HF_HUB_CACHE).
    cache_dir: str | None = None

    # --- Prompt-driven captioners (local vision-language models, remote endpoints) ---------
    #: The prompt template (``app.models.prompt``); None: the default one.
    prompt: str | None = None
    #: Base URL of an OpenAI-compatible chat-completions endpoint (``.../v1``); set, the
    #: ``openai`` kind serves captions and the model name is the served model's.
    api_base: str | None = None
    #: Bearer token for the endpoint; None sends none.
    api_key: str | None = field(default=None, repr=False)
    #: Requests in flight to the endpoint at once, all jobs together.
    api_concurrency: int = 4
    #: Seconds one request may take (connecting, waiting for the answer, reading it).
    api_timeout: float = 120.0
    #: Tries of a request that fails with 429, a 5xx status, a timeout or a lost connection.
    api_max_attempts: int = 4
    #: Seconds before the second try; each further wait doubles, up to a minute.
    api_backoff: float = 1.0

    def source(self, name_or_path: str) -> ModelSource:
        """Where the model ``name_or_path`` is, with these options' hub settings."""
        return ModelSource(name_or_path, self.revision, self.cache_dir, self.local_files_only)

    def __post_init__(self) -> None:
        if self.kind != "auto":
            CAPTIONERS.check(self.kind)
        if self.num_beams < 1:
            raise ValueError(f"num_beams must be at least 1, got {self.num_beams}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.min_new_tokens < 0:
            raise ValueError(f"min_new_tokens must not be negative, got {self.min_new_tokens}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be positive, got {self.repetition_penalty}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1 or None (auto), got {self.batch_size}")
        if not _DEVICE_PATTERN.fullmatch(self.device):
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}"
            )
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")
        if self.kind == "openai" and self.api_base is None:
            raise ValueError("the openai captioner needs api_base, the endpoint's base URL")
        if self.api_base is not None and not self.api_base.startswith(("http://", "https://")):
            raise ValueError(f"api_base must be an http(s) URL, got {self.api_base!r}")
        if self.api_concurrency < 1 or self.api_max_attempts < 1:
            raise ValueError("api_concurrency and api_max_attempts must be at least 1")
        if self.api_timeout <= 0 or self.api_backoff < 0:
            raise ValueError("api_timeout must be positive and api_backoff not negative")
