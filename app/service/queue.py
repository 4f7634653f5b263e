"""The job queue: ``JobQueue`` is the contract, ``StoreJobQueue`` the in-process implementation.

The in-process queue keeps no state of its own: queued jobs are rows of the store, so they
survive a restart; it only wakes waiting workers when a job arrives. A distributed queue
implements the same methods in a backend of its own (``app.service.backends``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from app.service.jobs import Job, JobRequest, JobStatus, StoreUnavailable, Submission
from app.service.store import SqliteJobStore

logger = logging.getLogger(__name__)


class JobQueue(Protocol):
    """Hands jobs to workers, each to one worker. De-duplication and the queue's limit are
    the queue's to enforce, however it stores jobs."""

    async def submit(self, request: JobRequest) -> Submission:
        """Queue a job, or return the queued or running job of the same request.

        Raises:
            QueueFull: The queue is at its limit; the client should retry later.
        """

    async def next_job(self) -> Job | None:
        """Wait for a job and claim it (it is then ``running``); None once the queue is closed."""

    async def release(self, job: Job) -> None:
        """Give back a claimed job, unfinished, so that it runs again (shutdown mid-job)."""

    async def depth(self) -> int:
        """Jobs waiting."""

    def close(self) -> None:
        """Stop handing out jobs; waiting ``next_job`` calls return None."""


class StoreJobQueue:
    """``JobQueue`` over a ``SqliteJobStore``, for workers in this process.

    Args:
        store: Where the jobs live.
        max_queued: Most jobs waiting; ``submit`` raises ``QueueFull`` past it.
        retry_after: Seconds a refused client is told to wait.
        poll_interval: Seconds between looks at the store while idle, in case a job arrived
            without a wake-up (another process writing the same file).
    """

    def __init__(
        self,
        store: SqliteJobStore,
        *,
        max_queued: int,
        retry_after: int,
        poll_interval: float = 5.0,
    ) -> None:
        self._store = store
        self._max_queued = max_queued
        self._retry_after = retry_after
        self._poll_interval = poll_interval
        self._wakeup = asyncio.Event()
        self._closed = False

    async def submit(self, request: JobRequest) -> Submission:
        submission = await self._store.add_job(
            request, max_queued=self._max_queued, retry_after=self._retry_after
        )
        if submission.created:
            self._wakeup.set()
        return submission

    async def next_job(self) -> Job | None:
        while not self._closed:
            # Clear before looking, so a submit that lands during the look wakes us again.
            self._wakeup.clear()
            try:
                job = await self._store.claim_next()
            except StoreUnavailable as exc:  # e.g. its disk is full: look again later
                logger.warning("cannot take a job from the store: %s", exc)
                job = None
            if job is not None:
                return job
            try:
                await asyncio.wait_for(self._wakeup.wait(), self._poll_interval)
            except TimeoutError:
                continue
        return None

    async def release(self, job: Job) -> None:
        await self._store.requeue(job.id)
        self._wakeup.set()

    async def depth(self) -> int:
        counts = await self._store.count_by_status()
        return counts[JobStatus.QUEUED]

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()
