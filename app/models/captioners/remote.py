"""The ``openai`` captioner kind: a vision-language model behind an OpenAI-compatible
chat-completions endpoint (vLLM, Ollama, llama.cpp server, LM Studio, OpenAI itself).

Each image (or each scene's frames) is one request: the frames as base64 JPEG ``image_url``
parts, then the prompt of :mod:`app.models.prompt`. Requests run in a pool shared by every
job, so at most ``api_concurrency`` are in flight. A 429, a 5xx, a timeout or a lost
connection is tried again with exponential backoff, waiting at least what the answer's
``Retry-After`` asks (up to :data:`MAX_BACKOFF`); any other failure, or an answer without
text, raises ``EndpointError`` naming the endpoint and quoting its answer.

Loading checks the endpoint once: its ``/models`` list must name the model, so a wrong
``--model``, a wrong key or an endpoint that is down fail at start, not in the first job.
"""

from __future__ import annotations

import base64
import email.utils
import io
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import tenacity
from PIL import Image

from app.errors import EndpointError, ModelLoadError
from app.models.base import CaptionOptions, CaptionRequest
from app.models.captioners import CaptionerKind
from app.models.hub import ModelSource
from app.models.prompt import PromptBuilder, token_limit

logger = logging.getLogger(__name__)

#: Longest wait between two tries, seconds.
MAX_BACKOFF = 60.0
#: Characters of an endpoint's answer quoted in an error message.
QUOTED = 500
#: JPEG quality of the frames sent.
JPEG_QUALITY = 90


class _Transient(Exception):
    """A failure worth another try (429, 5xx, timeout, lost connection); says what happened."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        #: Seconds the endpoint asked to wait (its ``Retry-After``), if it said.
        self.retry_after = retry_after


class _WaitAtLeastRetryAfter(tenacity.wait.wait_base):
    """Exponential backoff, but never shorter than the endpoint's ``Retry-After``."""

    def __init__(self, backoff: tenacity.wait.wait_base) -> None:
        self.backoff = backoff

    def __call__(self, state: tenacity.RetryCallState) -> float:
        wait = self.backoff(state)
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, _Transient) and error.retry_after is not None:
            wait = max(wait, min(error.retry_after, MAX_BACKOFF))
        return wait


class ChatEndpointCaptioner:
    """Captions through an OpenAI-compatible ``/chat/completions`` endpoint.

    Calls from several threads (jobs side by side) share one pool of ``api_concurrency``
    requests. Build one with :func:`app.models.load_captioner` and ``api_base`` set.
    """

    def __init__(self, model: str, options: CaptionOptions, kind: CaptionerKind) -> None:
        """Args:
        model: The served model's name, sent as ``model``.
        options: ``api_*`` settings, ``prompt`` and ``max_new_tokens``.
        kind: Its registry line: the frames of a scene sent with each request, unless the
            pipeline is told otherwise, and the languages it writes (any it is asked for).
        """
        if options.api_base is None:
            raise ValueError("the openai captioner needs api_base, the endpoint's base URL")
        self.frames_per_scene = kind.frames_per_scene
        self.languages = kind.languages
        self.model = model
        self.options = options
        self.url = options.api_base.rstrip("/") + "/chat/completions"
        self.prompt = PromptBuilder.for_template(options.prompt)
        headers = {}
        if options.api_key:
            headers["Authorization"] = f"Bearer {options.api_key}"
        self._client = httpx.Client(timeout=options.api_timeout, headers=headers)
        self._pool = ThreadPoolExecutor(options.api_concurrency, thread_name_prefix="endpoint")
        self._retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(options.api_max_attempts),
            wait=_WaitAtLeastRetryAfter(
                tenacity.wait_exponential(multiplier=options.api_backoff, max=MAX_BACKOFF)
            ),
            retry=tenacity.retry_if_exception_type(_Transient),
            before_sleep=self._log_retry,
            reraise=True,
        )
        logger.info("Captioner %s served by %s", model, self.url)

    def caption(
        self, images: Sequence[Image.Image], requests: Sequence[CaptionRequest] | None = None
    ) -> list[str]:
        """Describe each image (or its request's frames) with one request each, concurrently.

        Raises:
            EndpointError: A request failed for good; the others of the call are cancelled.
        """
        if requests is not None and len(requests) != len(images):
            raise ValueError(f"{len(requests)} requests for {len(images)} images")
        asked = requests or [CaptionRequest()] * len(images)
        futures: list[Future[str]] = [
            self._pool.submit(self._caption_one, image, request)
            for image, request in zip(images, asked, strict=True)
        ]
        try:
            return [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()

    def check(self) -> None:
        """Ask the endpoint's ``/models`` whether it serves :attr:`model`.

        An endpoint without that route (404, 405, 501) is only logged: the first request
        will tell.

        Raises:
            ModelLoadError: The endpoint cannot be reached, refuses the key, fails, or serves
                other models (the message lists them).
        """
        url = self.url.removesuffix("/chat/completions") + "/models"
        try:
            response = self._client.get(url)
        except httpx.HTTPError as exc:
            raise ModelLoadError(
                f"Cannot reach the captioning endpoint {url} (--api-base / DESCRIBER_API_BASE): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code in (404, 405, 501):
            logger.warning(
                "%s: HTTP %d; the endpoint does not list its models, so %r is not checked",
                url,
                response.status_code,
                self.model,
            )
            return
        if response.status_code != 200:
            key = " (check DESCRIBER_API_KEY)" if response.status_code in (401, 403) else ""
            raise ModelLoadError(
                f"The captioning endpoint {url} answered HTTP {response.status_code}{key}: "
                f"{_quote(response.text)}"
            )
        try:
            served = [entry["id"] for entry in response.json()["data"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(
                f"The captioning endpoint {url} answered something that is not a model list "
                f"({type(exc).__name__}: {exc}): {_quote(response.text)}"
            ) from exc
        if self.model not in served:
            raise ModelLoadError(
                f"The captioning endpoint {url} does not serve {self.model!r} "
                f"(--model / DESCRIBER_MODEL); it serves: {', '.join(map(repr, served)) or 'none'}"
            )

    def close(self) -> None:
        """Stop the request pool and close the connections."""
        self._pool.shutdown(cancel_futures=True)
        self._client.close()

    def payload(self, image: Image.Image, request: CaptionRequest) -> dict[str, Any]:
        """The JSON body of the request for one image."""
        frames = request.frames or (image,)
        content: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": _data_url(frame)}} for frame in frames
        ]
        content.append({"type": "text", "text": self.prompt.build(request, len(frames))})
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": token_limit([request], self.options.max_new_tokens),
            "temperature": 0,
        }

    def _caption_one(self, image: Image.Image, request: CaptionRequest) -> str:
        body = self.payload(image, request)
        try:
            answer = self._retrying(self._post, body)
        except _Transient as exc:
            tries = self.options.api_max_attempts
            raise EndpointError(
                f"The captioning endpoint {self.url} failed {tries} "
                f"{'try' if tries == 1 else 'tries'}; the last: {exc}"
            ) from exc
        return _answer_text(self.url, answer)

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        try:
            response = self._client.post(self.url, json=body)
        except httpx.TimeoutException as exc:
            raise _Transient(
                f"no answer within {self.options.api_timeout:g} s ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise _Transient(f"cannot reach it: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise _Transient(
                f"HTTP {response.status_code}: {_quote(response.text)}",
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code != 200:
            raise EndpointError(
                f"The captioning endpoint {self.url} refused the request for model "
                f"{self.model!r}: HTTP {response.status_code}: {_quote(response.text)}"
            )
        return response

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning(
            "%s: try %d failed (%s); trying again in %.1f s",
            self.url,
            state.attempt_number,
            error,
            wait,
        )


def _retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        logger.warning("ignoring a Retry-After that is neither seconds nor a date: %r", value)
        return None
    return max(0.0, when.timestamp() - time.time())


def _answer_text(url: str, response: httpx.Response) -> str:
    """The description in a chat-completions answer."""
    try:
        message = response.json()["choices"][0]["message"]
        content = message.get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise EndpointError(
            f"The captioning endpoint {url} answered something that is not a chat completion "
            f"({type(exc).__name__}: {exc}): {_quote(response.text)}"
        ) from exc
    if not isinstance(content, str):
        refusal = message.get("refusal")
        quoted = _quote(response.text)
        why = f"refused: {refusal}" if refusal else f"answered without text: {quoted}"
        raise EndpointError(f"The captioning endpoint {url} {why}")
    return content.strip()


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= QUOTED else text[:QUOTED] + "...")


def _data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def load(
    kind: CaptionerKind, source: ModelSource, options: CaptionOptions
) -> ChatEndpointCaptioner:
    """The ``openai`` kind's loader: a captioner for the served model, checked once."""
    captioner = ChatEndpointCaptioner(source.name_or_path, options, kind)
    try:
        captioner.check()
    except BaseException:
        captioner.close()
        raise
    return captioner
