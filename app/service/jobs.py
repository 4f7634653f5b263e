"""Plain data of the service: jobs, their states, callback events, and the per-job logger."""

from __future__ import annotations

import json
import logging
from collections.abc import MutableMapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from app.errors import DescriberError
from app.pipeline.types import Description, Progress


class JobStatus(StrEnum):
    """Where a job stands. ``processed`` and ``not_processed`` are final."""

    QUEUED = "queued"
    RUNNING = "running"
    PROCESSED = "processed"
    NOT_PROCESSED = "not_processed"

    @property
    def final(self) -> bool:
        return self in (JobStatus.PROCESSED, JobStatus.NOT_PROCESSED)


class EventState(StrEnum):
    """Delivery state of a callback in the outbox."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    """Core refused it (4xx): recorded, not retried."""


class EventType(StrEnum):
    """Kinds of callbacks sent to core."""

    DESCRIPTION = "description"
    STATUS = "status"
    APPROVAL = "approval"
    MEDIA = "media"


@dataclass(frozen=True)
class JobOptions:
    """What a client chose for one job besides its media (stored as one JSON column)."""

    audio: bool = False
    """Narrate the descriptions and render the description track and the film with it."""
    tts: str | None = None
    """Text-to-speech engine for this job; None: the service's (``DESCRIBER_TTS``)."""
    voice: str | None = None
    """The engine's voice for this job; None: the service's (``DESCRIBER_VOICE``)."""

    def to_json(self) -> str:
        """The options that differ from the defaults as a JSON object, keys sorted: two
        requests alike store alike, and the defaults are ``{}`` as in rows from before
        options."""
        default = JobOptions()
        chosen = {k: v for k, v in asdict(self).items() if getattr(default, k) != v}
        return json.dumps(chosen, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JobOptions:
        """Options from JSON; missing keys take their defaults (rows from before options)."""
        data = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class JobRequest:
    """What a client asked for."""

    url: str
    subtitles: str | None = None
    options: JobOptions = field(default_factory=JobOptions)


@dataclass(frozen=True)
class Job:
    """A job as stored. Times are Unix seconds."""

    id: str
    url: str
    subtitles: str | None
    status: JobStatus
    progress: Progress
    reason: str | None
    attempts: int
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    options: JobOptions = field(default_factory=JobOptions)


class DescriptionOrigin(StrEnum):
    """Who wrote a stored description."""

    MACHINE = "machine"
    REVIEWER = "reviewer"
    """Inserted through the review API."""


@dataclass(frozen=True)
class StoredDescription:
    """A description as stored, with what review needs: its id and version.

    Every change (edit or delete) raises ``version`` by one and keeps the previous version in
    the history; a deleted description is kept, marked ``deleted``.
    """

    id: int
    version: int
    origin: DescriptionOrigin
    description: Description
    deleted: bool = False
    changed_at: float | None = None
    """When this version was replaced (history entries only)."""


@dataclass(frozen=True)
class Submission:
    """The result of submitting a job: the job, and whether it was created by this call."""

    job: Job
    created: bool


@dataclass(frozen=True)
class OutboxEvent:
    """A callback to deliver to core, exactly as it will be sent.

    The body is serialised once, before the event is stored, so every try sends the same
    bytes under the same signature.
    """

    event_id: str
    """Stable id core deduplicates on."""
    job_id: str
    type: EventType
    path: str
    """Path under core's base URL."""
    body: bytes
    id: int = 0
    """Position in the outbox (0 until stored); a job's events are delivered in this order."""
    state: EventState = EventState.PENDING
    attempts: int = 0
    last_error: str | None = None


class QueueFull(DescriberError):
    """The job queue holds as many jobs as it may; the client should retry later."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(f"the job queue is full ({limit} jobs waiting); retry in {retry_after} s")
        self.retry_after = retry_after


class StoreUnavailable(DescriberError):
    """The job store cannot be read or written now (its disk is full, the file is locked);
    the client should retry later."""

    def __init__(self, message: str, *, full: bool) -> None:
        super().__init__(message)
        self.full = full


class JobNotFound(DescriberError):
    """No job has this id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}; check the id returned by POST /process")
        self.job_id = job_id


class DescriptionNotFound(DescriberError):
    """A job has no (undeleted) description with this id."""

    def __init__(self, job_id: str, description_id: int) -> None:
        super().__init__(
            f"job {job_id} has no description with id {description_id}; "
            f"GET /jobs/{job_id}/review lists them"
        )


class StaleVersion(DescriberError):
    """A change was made against an older version of a description than the stored one."""

    def __init__(self, description_id: int, given: int, current: int) -> None:
        super().__init__(
            f"description {description_id} is at version {current}, not {given}: someone "
            "changed it meanwhile; reload it and apply your change again"
        )
        self.current = current


class JobConflict(DescriberError):
    """The job is not in a state that allows this request (still running, nothing to send)."""


class InvalidEdit(DescriberError):
    """A change to a description breaks a rule (window outside its scene, over dialogue)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class RefusedURL(DescriberError):
    """A submitted URL is refused before any work starts (scheme, private address)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class RefusedOption(DescriberError):
    """A job option is refused before the job is queued (unknown voice, language)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class _JobLogger(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every line with the job id: ``job <id>: <message>``."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        assert self.extra is not None
        return f"job {self.extra['job_id']}: {msg}", kwargs


def job_logger(logger: logging.Logger, job_id: str) -> logging.LoggerAdapter[logging.Logger]:
    """A logger adapter that puts ``job_id`` in every line (and in ``record.job_id``)."""
    return _JobLogger(logger, {"job_id": job_id})
