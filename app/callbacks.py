"""Callbacks to core: what each one says, how it is signed, and how it is delivered.

The contract (documented in ``README.md``):

* ``POST {core_url}/jobs/{job_id}/descriptions`` for each description, in time order;
* ``POST {core_url}/jobs/{job_id}/status`` once, last, with ``PROCESSED`` or ``NOT_PROCESSED``;
* ``POST {core_url}/jobs/{job_id}/approved`` when a reviewer approves the (edited) descriptions:
  the whole final set, with the revision it was approved at;
* headers ``X-Describer-Event-Id`` (stable: core drops an id it already holds),
  ``X-Describer-Event-Type`` and, with a shared secret, ``X-Describer-Signature:
  sha256=<hex HMAC-SHA256 of the raw body>``.

Connection errors, timeouts, 5xx, 408 and 429 are retried with capped exponential backoff
until core takes the callback; any other answer outside 2xx is recorded as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_never,
    wait_exponential,
    wait_random,
)

from app.pipeline.types import Description
from app.service.jobs import EventState, EventType, Job, JobStatus, OutboxEvent, job_logger

logger = logging.getLogger(__name__)

EVENT_ID_HEADER = "X-Describer-Event-Id"
EVENT_TYPE_HEADER = "X-Describer-Event-Type"
SIGNATURE_HEADER = "X-Describer-Signature"
USER_AGENT = "audio-describer/0.1"
#: Answers that mean "try again later" although they are 4xx.
RETRYABLE_4XX = frozenset({408, 425, 429})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _encode(payload: Mapping[str, object]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _event(job: Job, type: EventType, event_id: str, path: str, **fields: object) -> OutboxEvent:
    """An outbox event for ``job`` posted to ``/jobs/{job_id}/{path}``; its body holds the
    common fields, then ``fields``, then the time."""
    body = {
        "event_id": event_id,
        "type": type.value,
        "job_id": job.id,
        "url": job.url,
        **fields,
        "created_at": _now(),
    }
    return OutboxEvent(
        event_id=event_id,
        job_id=job.id,
        type=type,
        path=f"/jobs/{job.id}/{path}",
        body=_encode(body),
    )


def description_event(job: Job, description: Description) -> OutboxEvent:
    """The callback announcing one description of a job.

    Its event id depends only on the job and the scene, so a job run again after a crash
    produces the same id for the same description.
    """
    return _event(
        job,
        EventType.DESCRIPTION,
        f"{job.id}:description:{description.scene_index}",
        "descriptions",
        # "novelty" is the name "similarity" had in earlier versions: same value, deprecated,
        # kept until core reads the new name.
        description={**asdict(description), "novelty": description.similarity},
    )


def status_event(
    job: Job,
    status: JobStatus,
    reason: str | None,
    descriptions: int,
    media: Mapping[str, str] | None = None,
) -> OutboxEvent:
    """The callback announcing a job's final status (``PROCESSED`` or ``NOT_PROCESSED``),
    with the URLs of its rendered ``media`` (``audio_url``, ``film_url``) when it has any."""
    if not status.final:
        raise ValueError(f"a status callback needs a final status, not {status}")
    return _event(
        job,
        EventType.STATUS,
        f"{job.id}:status",
        "status",
        status=status.value.upper(),
        reason=reason,
        descriptions=descriptions,
        media=None if media is None else dict(media),
    )


def approval_event(job: Job, descriptions: list[Description], revision: int) -> OutboxEvent:
    """The callback carrying the descriptions a reviewer approved, all of them, in time order.

    Its event id names the revision of the job's descriptions, so approving the same set
    twice sends it once, and approving after further edits sends the new set.
    """
    return _event(
        job,
        EventType.APPROVAL,
        f"{job.id}:approved:{revision}",
        "approved",
        revision=revision,
        descriptions=[asdict(d) for d in descriptions],
    )


def media_event(
    job: Job, revision: int, media: Mapping[str, str] | None, reason: str | None
) -> OutboxEvent:
    """The callback saying the job's audio was rendered again for an approved revision
    (``media``: its links), or why it could not be (``reason``; the previous audio stays)."""
    return _event(
        job,
        EventType.MEDIA,
        f"{job.id}:media:{revision}",
        "media",
        revision=revision,
        media=None if media is None else dict(media),
        reason=reason,
    )


def sign(body: bytes, secret: str) -> str:
    """The ``X-Describer-Signature`` value of a body: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, signature: str) -> bool:
    """Whether ``signature`` is the valid signature of ``body`` (for core, and tests)."""
    return hmac.compare_digest(sign(body, secret), signature)


class TransientCallbackError(Exception):
    """Core could not take the callback now (down, slow, 5xx); it will be tried again."""


class RejectedCallback(Exception):
    """Core refused the callback (4xx); trying again would not help."""


@dataclass(frozen=True)
class Delivery:
    """The outcome of delivering one callback."""

    state: EventState
    attempts: int
    error: str | None = None
    seconds: float = 0.0


class _PeerClosedTransport(httpx.AsyncBaseTransport):
    """Reports a connection that core closed while it was being set up as the transport error
    it is (``httpx.ConnectError``), instead of the ``AttributeError`` it surfaces as.

    Root cause: right after connecting, httpcore asks the stream for its TLS object; anyio
    builds every socket attribute at once and calls ``getpeername()`` on the socket its
    transport returns, guarding only against ``OSError``. Under uvloop (which uvicorn uses) a
    transport whose peer has already closed or reset the connection returns no socket at
    all, so the lookup fails with ``'NoneType' object has no attribute 'getpeername'``.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._inner.handle_async_request(request)
        except AttributeError as exc:
            if exc.name != "getpeername" or exc.obj is not None:
                raise
            raise httpx.ConnectError(
                "the connection was closed by the other side as it was opened", request=request
            ) from exc

    async def aclose(self) -> None:
        await self._inner.aclose()


class DeliveryStopped(Exception):
    """Delivery was stopped between two tries; the event stays in the outbox."""


class CallbackClient:
    """Sends outbox events to core, retrying what can succeed later.

    Args:
        base_url: Core's base URL; event paths are appended to it.
        secret: Shared secret for the signature header; None sends unsigned callbacks.
        timeout: Seconds for one request.
        backoff_initial: First wait between two tries, seconds; doubles after each try.
        backoff_max: Longest wait between two tries, seconds.
        transport: httpx transport, for tests.
    """

    def __init__(
        self,
        base_url: str,
        *,
        secret: str | None = None,
        timeout: float = 10.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._secret = secret
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._client = httpx.AsyncClient(
            timeout=timeout,
            transport=_PeerClosedTransport(transport or httpx.AsyncHTTPTransport()),
            headers={"User-Agent": USER_AGENT},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def headers(self, event: OutboxEvent) -> dict[str, str]:
        """The headers sent with an event."""
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event.event_id,
            EVENT_TYPE_HEADER: event.type.value,
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(event.body, self._secret)
        return headers

    async def deliver(self, event: OutboxEvent, stop: asyncio.Event | None = None) -> Delivery:
        """Send an event until core takes it or refuses it.

        Transient failures are retried forever (with capped exponential backoff): the event
        is durable in the outbox, and giving up would lose it.

        Args:
            event: The callback.
            stop: Once set, no new try starts and a wait between tries ends at once
                (``DeliveryStopped``); a request on the wire is let finish, since core may
                already have taken it.

        Returns:
            ``DELIVERED`` or ``FAILED`` (core answered 4xx), with the number of tries.

        Raises:
            DeliveryStopped: ``stop`` was set before core took the event.
        """
        log = job_logger(logger, event.job_id)
        started = time.monotonic()

        async def pause(seconds: float) -> None:
            if stop is None:
                await asyncio.sleep(seconds)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)
            if stop.is_set():
                raise DeliveryStopped(f"callback {event.event_id}: stopped before delivery")

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            log.warning(
                "callback %s failed (try %d: %s); next try in %.1f s",
                event.event_id,
                state.attempt_number,
                error,
                wait,
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientCallbackError),
            # Jitter keeps many retrying callbacks from hitting core in lockstep.
            wait=wait_exponential(multiplier=self._backoff_initial, max=self._backoff_max)
            + wait_random(0, self._backoff_initial),
            stop=stop_never,
            before_sleep=before_sleep,
            sleep=pause,
            reraise=True,
        )
        attempts = 0
        try:
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    await self._post(event)
        except RejectedCallback as exc:
            log.error("callback %s refused by core, not retried: %s", event.event_id, exc)
            return Delivery(EventState.FAILED, attempts, str(exc), time.monotonic() - started)
        log.info("callback %s delivered (%d tries)", event.event_id, attempts)
        return Delivery(EventState.DELIVERED, attempts, None, time.monotonic() - started)

    async def _post(self, event: OutboxEvent) -> None:
        url = self.base_url + event.path
        try:
            response = await self._client.post(url, content=event.body, headers=self.headers(event))
        except httpx.TransportError as exc:  # connection refused, reset, timeouts
            raise TransientCallbackError(f"{type(exc).__name__}: {exc}") from exc
        if response.is_success:
            return
        message = f"HTTP {response.status_code} from {url}: {response.text[:200]}"
        if response.status_code >= 500 or response.status_code in RETRYABLE_4XX:
            raise TransientCallbackError(message)
        raise RejectedCallback(message)
