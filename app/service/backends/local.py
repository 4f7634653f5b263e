"""The ``local`` job backend: one SQLite file holds jobs, descriptions and the outbox, and
the queue hands its jobs to workers in this process."""

from __future__ import annotations

import logging

from app.config import Settings
from app.service.jobs import Job, JobStatus, job_logger
from app.service.queue import StoreJobQueue
from app.service.store import SqliteJobStore
from app.service.worker import Worker

logger = logging.getLogger(__name__)


class LocalBackend:
    """``SqliteJobStore`` at ``settings.db_path`` and a ``StoreJobQueue`` over it."""

    runs_jobs = True

    def __init__(self, settings: Settings) -> None:
        self.store = SqliteJobStore(settings.db_path)
        self.queue = StoreJobQueue(
            self.store,
            max_queued=settings.queue_max,
            retry_after=settings.retry_after,
            poll_interval=settings.queue_poll_interval,
        )

    async def open(self, max_attempts: int) -> list[Job]:
        await self.store.open()
        given_up: list[Job] = []
        for job in await self.store.jobs_with_status(JobStatus.RUNNING):
            log = job_logger(logger, job.id)
            if job.attempts >= max_attempts:
                log.warning("interrupted %d times; not trying again", job.attempts)
                given_up.append(job)
            else:
                log.warning("was interrupted (run %d); queued again", job.attempts)
                await self.store.requeue(job.id)
        return given_up

    def serve_jobs(self, worker: Worker) -> None:
        worker.start()

    async def stop_jobs(self, worker: Worker) -> None:
        await worker.stop()

    async def close(self) -> None:
        self.queue.close()
        await self.store.close()
