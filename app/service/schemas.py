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
from app.service.jobs import Job, JobOptions, JobStatus
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


class JobOut(BaseModel):
    """A job, its progress and the descriptions made so far."""

    job_id: str
    url: str
    subtitles: str | None
    status: JobStatus
    progress: Progress = Field(description="How far the job got (its schema is the pipeline's).")
    reason: str | None = Field(description="Why the job was not processed.")
    attempts: int = Field(description="Runs started (more than 1 after a restart mid-job).")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    audio: bool = Field(description="Whether the job renders spoken descriptions.")
    media: MediaOut | None = Field(
        description="Where its rendered audio is served, once the job is processed with "
        "audio; null otherwise."
    )
    descriptions: list[DescriptionOut]

    @classmethod
    def of(cls, job: Job, descriptions: list[Description], media: MediaLinks | None) -> JobOut:
        return cls(
            job_id=job.id,
            url=job.url,
            subtitles=job.subtitles,
            status=job.status,
            progress=job.progress,
            reason=job.reason,
            attempts=job.attempts,
            created_at=datetime.fromtimestamp(job.created_at, UTC),
            started_at=_time(job.started_at),
            finished_at=_time(job.finished_at),
            audio=job.options.audio,
            media=None if media is None else MediaOut(**dataclasses.asdict(media)),
            descriptions=[DescriptionOut.of(d) for d in descriptions],
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
