"""The media directory: each job's rendered audio (``"audio": true``), its limits, and links.

A job's files live in ``<media_dir>/<job_id>/``: ``description.m4a`` (the descriptions alone
on the film's timeline, AAC) and ``film.mkv`` (the film with its audio-description track;
Matroska holds any codec the film may have). They are rendered into a staging folder,
``<media_dir>/.partial-<job_id>/``, renamed onto the job's folder only once both are
complete: a failure or a crash never leaves a job with half its media. Staging folders left
by a crash are removed when the service starts.

Old media go first: a job's folder older than the retention is removed (and is no longer
served), and while the folder holds more than its size limit the oldest jobs' media are
removed, never those of the job just rendered.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from app.errors import DescriberError, RenderError
from app.pipeline.narration import Clip
from app.pipeline.soundtrack import MixOptions, film_duration, mix_film, write_track
from app.pipeline.types import StopSignal
from app.service.jobs import Job, JobStatus

logger = logging.getLogger(__name__)

_PARTIAL = ".partial-"


class MediaKind(StrEnum):
    """What the service renders for a job, with the route that serves it."""

    AUDIO = "audio"
    """The descriptions alone, on the film's timeline."""
    FILM = "media"
    """The film with its audio-description track."""

    @property
    def file_name(self) -> str:
        return "description.m4a" if self is MediaKind.AUDIO else "film.mkv"

    @property
    def media_type(self) -> str:
        return "audio/mp4" if self is MediaKind.AUDIO else "video/x-matroska"


class MediaMissing(DescriberError):
    """A job has no such media to serve; the message says why (not asked for, not yet,
    rendering failed, removed)."""


@dataclass(frozen=True)
class MediaLinks:
    """Where a job's media are served."""

    audio_url: str
    film_url: str


class MediaStore:
    """A directory of rendered media with a size limit and a retention.

    Args:
        root: The media directory (created when first written).
        max_bytes: Most bytes all jobs' media may take.
        retention: Seconds a job's media are kept; None: until the size limit needs room.
        public_url: The service's public base URL for links; None: links are paths.
    """

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int,
        retention: float | None,
        public_url: str | None,
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.retention = retention
        self.public_url = (public_url or "").rstrip("/")

    def folder(self, job_id: str) -> Path:
        return self.root / job_id

    def links(self, job_id: str) -> MediaLinks:
        """The URLs of a job's media: absolute under ``public_url``, else paths from the
        service's root."""
        base = f"{self.public_url}/jobs/{job_id}"
        return MediaLinks(
            audio_url=f"{base}/{MediaKind.AUDIO}", film_url=f"{base}/{MediaKind.FILM}"
        )

    def render(
        self,
        job_id: str,
        video: Path,
        clips: Sequence[Clip],
        mix: MixOptions,
        stop: StopSignal | None = None,
    ) -> Path:
        """Render a job's description track and film with it, then make room.

        Raises:
            RenderError: The media directory cannot be written, or FFmpeg failed; nothing
                of this job is left in it.
            Stopped: ``stop`` was set; nothing of this job is left in it.
        """
        staging = self.root / f"{_PARTIAL}{job_id}"
        target = self.folder(job_id)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            _remove(staging)
            staging.mkdir()
        except OSError as exc:
            raise RenderError(
                f"cannot write the media directory {self.root}: {exc.strerror or exc}; check "
                "DESCRIBER_MEDIA_DIR"
            ) from exc
        try:
            write_track(staging / MediaKind.AUDIO.file_name, clips, film_duration(video), stop=stop)
            mix_film(video, clips, staging / MediaKind.FILM.file_name, mix, stop=stop)
            _remove(target)  # left by a run that crashed after its rename
            staging.rename(target)
        except OSError as exc:
            _remove(staging)
            raise RenderError(f"cannot write {target}: {exc.strerror or exc}") from exc
        except BaseException:
            _remove(staging)
            raise
        self.sweep(keep=job_id)
        return target

    def path(self, job: Job, kind: MediaKind) -> Path:
        """The file of a job's media, to serve.

        Raises:
            MediaMissing: The job did not ask for audio, is not done yet, failed, or its
                media were removed (retention, size limit).
        """
        if not job.options.audio:
            raise MediaMissing(
                f'job {job.id} has no {kind}: it was submitted without "audio": true'
            )
        path = self.folder(job.id) / kind.file_name
        if path.is_file() and not self._expired(path.parent):
            return path
        if not job.status.final:
            raise MediaMissing(
                f"job {job.id} is {job.status}: its {kind} is rendered after its descriptions; "
                "try again when the job is processed"
            )
        if job.status is JobStatus.NOT_PROCESSED:
            raise MediaMissing(f"job {job.id} was not processed, so it has no {kind}: {job.reason}")
        raise MediaMissing(
            f"the {kind} of job {job.id} was removed (media are kept "
            f"{self._kept()}); submit the video again to render it"
        )

    def _kept(self) -> str:
        limit = f"up to {self.max_bytes} bytes in all"
        return limit if self.retention is None else f"{self.retention:g} s and {limit}"

    def _expired(self, folder: Path, now: float | None = None) -> bool:
        if self.retention is None:
            return False
        return (now or time.time()) - folder.stat().st_mtime > self.retention

    def clear_partial(self) -> None:
        """Remove staging folders a crash left (call at startup, before jobs run)."""
        if not self.root.is_dir():
            return
        for staging in self.root.glob(f"{_PARTIAL}*"):
            logger.info("removing %s, left by an interrupted rendering", staging)
            _remove(staging)

    def sweep(self, keep: str | None = None) -> None:
        """Remove media past the retention, then the oldest until the directory holds at
        most ``max_bytes``; never the job ``keep``."""
        if not self.root.is_dir():
            return
        now = time.time()
        folders = sorted(
            (f for f in self.root.iterdir() if f.is_dir() and not f.name.startswith(_PARTIAL)),
            key=lambda f: f.stat().st_mtime,
        )
        sizes = {f: sum(p.stat().st_size for p in f.iterdir() if p.is_file()) for f in folders}
        total = sum(sizes.values())
        for folder in folders:
            if folder.name == keep:
                continue
            expired = self._expired(folder, now)
            if not expired and total <= self.max_bytes:
                continue
            _remove(folder)
            total -= sizes[folder]
            logger.info(
                "removed the media of job %s (%s)",
                folder.name,
                "past the retention" if expired else "over the size limit",
            )
        if total > self.max_bytes:
            logger.warning(
                "the media directory holds %d bytes, over DESCRIBER_MEDIA_MAX_BYTES (%d), with "
                "only the latest job's media left",
                total,
                self.max_bytes,
            )


def _remove(folder: Path) -> None:
    """Remove a folder and what it holds, if it exists; a failure is logged (the caller's
    own outcome matters more), not raised."""
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        return
    except OSError as exc:
        logger.warning("cannot remove %s: %s", folder, exc)
