"""Request and response bodies of the HTTP API (pydantic at the edge)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from app.errors import InputError
from app.pipeline.tts import TTS_ENGINES
from app.pipeline.types import Description, Progress
from app.security import check_scheme
from app.service.jobs import DescriptionOrigin, Job, JobOptions, JobStatus, StoredDescription
from app.service.media import MediaLinks

MAX_URL_LENGTH = 4096


def _http_url(value: str) -> str:
    value = value.strip()
    try:
        check_scheme(value)
    except InputError as exc:
        raise PydanticCustomError("url", str(exc)) from exc
    return value


HttpURL = Annotated[str, Field(max_length=MAX_URL_LENGTH), AfterValidator(_http_url)]


class ProcessRequest(BaseModel):
    """A video to describe."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"url": "https://media.example.org/film.mp4", "subtitles": None},
                {
                    "url": "https://media.example.org/film.mp4",
                    "subtitles": "https://media.example.org/film.en.srt",
                },
            ]
        }
    )

    url: HttpURL = Field(description="http(s) URL of the video.")
    subtitles: HttpURL | None = Field(
        None,
        description="http(s) URL of SRT, WebVTT or ASS/SSA subtitles: descriptions then go "
        "only in the pauses between lines. Without subtitles every scene is described.",
    )
    audio: bool = Field(
        False,
        description="Speak each description (its spoken_duration measured, sped up or "
        "shortened to fit its window) before it is sent, then render the description track "
        "and the film with it: GET /jobs/{id}/audio and /jobs/{id}/media.",
    )
    tts: str | None = Field(
        None,
        description="Text-to-speech engine for this job (espeak, piper); null: the service's. "
        "Only with audio.",
    )
    voice: str | None = Field(
        None,
        max_length=256,
        description="The engine's voice for this job (espeak-ng: en-us, ru...); null: the "
        "service's, or the engine's voice for the language. Only with audio.",
    )
    language: str | None = Field(
        None,
        pattern=r"^[a-z]{2}$",
        description="The language the descriptions are expected in (ISO 639-1); it must be "
        "the service's (DESCRIBER_LANGUAGE): one service describes in one language.",
    )

    @field_validator("tts", "voice")
    @classmethod
    def _narration_option(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not info.data.get("audio"):
            raise PydanticCustomError(
                "needs_audio", f'{info.field_name} is only used with "audio": true'
            )
        return TTS_ENGINES.check(value) if info.field_name == "tts" else value

    def options(self) -> JobOptions:
        """The job's options."""
        return JobOptions(audio=self.audio, tts=self.tts, voice=self.voice)


class JobAccepted(BaseModel):
    """A job was queued, or an identical queued or running job was found."""

    job_id: str
    status: JobStatus
    created: bool = Field(description="False when an identical job was already queued or running.")


class DescriptionOut(BaseModel):
    """A description, with times in seconds from the start of the video."""

    start: float = Field(description="When narration may begin.")
    end: float = Field(description="When the dialogue-free window (or the scene) ends.")
    frame_time: float = Field(description="Time of the described frame.")
    scene_index: int
    scene_start: float
    scene_end: float
    text: str
    similarity: float = Field(
        description="Similarity to the closest recent description, 0 to 1 (higher: more "
        "alike; 0 for the first). Named novelty in earlier versions."
    )
    max_words: int = Field(description="Words that fit the window at the narration speed.")
    fits: bool = Field(description="Whether the caption fitted without being shortened.")
    spoken_duration: float | None = Field(
        default=None, description="Seconds of synthesized speech; null when none was rendered."
    )

    @classmethod
    def of(cls, description: Description) -> DescriptionOut:
        return cls(**dataclasses.asdict(description))


class MediaOut(BaseModel):
    """Where a job's rendered audio is served (range requests accepted)."""

    audio_url: str = Field(
        description="The descriptions alone on the film's timeline (AAC in .m4a); absolute "
        "under DESCRIBER_PUBLIC_URL, else a path from the service's root."
    )
    film_url: str = Field(description="The film with its audio-description track added (Matroska).")


def _time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


class JobSummary(BaseModel):
    """A job in the list of jobs: what it is and where it stands, without its descriptions."""

    job_id: str
    url: str
    subtitles: str | None
    status: JobStatus
    progress: Progress = Field(description="How far the job got (its schema is the pipeline's).")
    reason: str | None = Field(description="Why the job was not processed.")
    created_at: datetime
    finished_at: datetime | None
    audio: bool = Field(description="Whether the job renders spoken descriptions.")

    @classmethod
    def of(cls, job: Job) -> JobSummary:
        return cls(
            job_id=job.id,
            url=job.url,
            subtitles=job.subtitles,
            status=job.status,
            progress=job.progress,
            reason=job.reason,
            created_at=datetime.fromtimestamp(job.created_at, UTC),
            finished_at=_time(job.finished_at),
            audio=job.options.audio,
        )


class JobOut(JobSummary):
    """A job, its progress and the descriptions made so far."""

    attempts: int = Field(description="Runs started (more than 1 after a restart mid-job).")
    started_at: datetime | None
    media: MediaOut | None = Field(
        description="Where its rendered audio is served, once the job is processed with "
        "audio; null otherwise."
    )
    descriptions: list[DescriptionOut]

    @classmethod
    def of_job(cls, job: Job, descriptions: list[Description], media: MediaLinks | None) -> JobOut:
        return cls(
            **dict(JobSummary.of(job)),
            attempts=job.attempts,
            started_at=_time(job.started_at),
            media=None if media is None else MediaOut(**dataclasses.asdict(media)),
            descriptions=[DescriptionOut.of(d) for d in descriptions],
        )


class JobList(BaseModel):
    """The most recent jobs, newest first."""

    jobs: list[JobSummary]


# --- review (edit, delete, insert, approve) ----------------------------------------------------


class ReviewedDescriptionOut(DescriptionOut):
    """A description with what a change to it needs: its id and current version."""

    id: int = Field(description="Stable id of the description within the service.")
    version: int = Field(description="Raised by one on each change; send it back with a change.")
    origin: DescriptionOrigin = Field(description="machine, or reviewer when inserted by hand.")
    changed_at: datetime | None = Field(
        default=None, description="When this version was replaced (history entries only)."
    )

    @classmethod
    def of_stored(cls, stored: StoredDescription) -> ReviewedDescriptionOut:
        return cls(
            **dataclasses.asdict(stored.description),
            id=stored.id,
            version=stored.version,
            origin=stored.origin,
            changed_at=_time(stored.changed_at),
        )


class ReviewOut(BaseModel):
    """A job's descriptions as a reviewer sees them."""

    job_id: str
    status: JobStatus
    language: str = Field(description="Language of the descriptions (BCP 47).")
    words_per_second: float = Field(description="Narration speed the word budgets assume.")
    revision: int = Field(description="Grows with every change; approval names it.")
    descriptions: list[ReviewedDescriptionOut]


Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Text = Annotated[str, Field(min_length=1, max_length=2000)]


class DescriptionPatch(BaseModel):
    """A change to a description: the version it was made against and the fields changed."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="The version the change was made against.")
    text: Text | None = None
    start: Seconds | None = None
    end: Seconds | None = None


class DescriptionIn(BaseModel):
    """A new description, e.g. at the player's playhead."""

    model_config = ConfigDict(extra="forbid")

    start: Seconds = Field(description="When narration begins, seconds.")
    end: Seconds | None = Field(
        default=None,
        description="When its window ends; by default as long as its words take at the "
        "narration speed, within the scene.",
    )
    text: Text


class EditOut(BaseModel):
    """A description after a change, with warnings (e.g. more words than its window holds)."""

    description: ReviewedDescriptionOut
    warnings: list[str]


class HistoryOut(BaseModel):
    """A description now and the versions it had before, oldest first."""

    current: ReviewedDescriptionOut
    previous: list[ReviewedDescriptionOut]


class ApprovalOut(BaseModel):
    """An approval, queued for core."""

    job_id: str
    event_id: str = Field(description="The callback's event id: ``{job_id}:approved:{revision}``.")
    revision: int
    descriptions: int = Field(description="How many descriptions were approved.")
    created: bool = Field(description="False when this revision was already approved.")
    rendering: bool = Field(
        description="True when the job's audio is rendered again for this set; a `media` "
        "callback follows."
    )


class Health(BaseModel):
    """The process answers."""

    status: str = "ok"


class Readiness(BaseModel):
    """Whether the service can take jobs: model loaded and store writable."""

    ready: bool
    model: str = Field(description="loading, ready or failed, with the error when failed.")
    store: str = Field(description="ok, or the error writing to it.")


class ErrorOut(BaseModel):
    """An error, with a message that says what to do."""

    detail: str
