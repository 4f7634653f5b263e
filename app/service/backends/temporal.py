"""The ``temporal`` job backend: jobs, descriptions and the outbox in PostgreSQL, shared by
every process; each job a Temporal workflow (``temporal_workflow``) whose ``describe``
activity runs the pipeline in a ``python -m app worker`` process.

The activity heartbeats every third of ``temporal_heartbeat_timeout`` with the scene index
of the last stored description. A worker that dies stops heartbeating; Temporal then runs
the activity again (after ``temporal_retry_initial`` s, doubling, ``job_max_attempts`` tries
in all) on any worker, which goes on after that description: the descriptions already stored
are neither stored nor sent again. Submitting starts the workflow; its timeout is the job's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.worker import Worker as TemporalWorker

from app.config import Settings
from app.pipeline.types import Description
from app.service.backends.temporal_workflow import (
    FINISH_MARGIN,
    DescribeJob,
    JobInput,
    workflow_id,
)
from app.service.jobs import Job, JobRequest, JobStatus, StoreUnavailable, Submission, job_logger
from app.service.postgres import PostgresJobStore
from app.service.worker import Outcome, Worker

logger = logging.getLogger(__name__)


class TemporalBackend:
    """``PostgresJobStore`` at ``settings.database_url`` and a queue of Temporal workflows."""

    runs_jobs = False

    def __init__(self, settings: Settings) -> None:
        if settings.database_url is None:
            raise ValueError("DESCRIBER_BACKEND=temporal needs DESCRIBER_DATABASE_URL")
        self.settings = settings
        self.store = PostgresJobStore(
            settings.database_url.get_secret_value(),
            # Each job delivering callbacks holds one; jobs and the API need a few more.
            max_connections=settings.callback_concurrency + 2 * settings.workers + 4,
        )
        self.queue = TemporalJobQueue(self)
        self._client: Client | None = None
        self._runner: TemporalWorker | None = None
        self._running: asyncio.Task[None] | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("the temporal backend is not open; call open() first")
        return self._client

    async def open(self, max_attempts: int) -> list[Job]:
        await self.store.open()
        address = self.settings.temporal_address
        try:
            self._client = await Client.connect(address, namespace=self.settings.temporal_namespace)
        except RuntimeError as exc:  # the SDK's connection error
            raise StoreUnavailable(
                f"cannot reach Temporal at {address}: {exc}; check DESCRIBER_TEMPORAL_ADDRESS",
                full=False,
            ) from exc
        logger.info(
            "jobs on Temporal at %s, namespace %s, task queue %s",
            address,
            self.settings.temporal_namespace,
            self.settings.temporal_task_queue,
        )
        return []  # tries of interrupted jobs are Temporal's to count

    def job_input(self, job: Job) -> JobInput:
        s = self.settings
        return JobInput(
            job_id=job.id,
            job_timeout=s.job_timeout,
            heartbeat_timeout=s.temporal_heartbeat_timeout,
            max_attempts=s.job_max_attempts,
            retry_initial=s.temporal_retry_initial,
            retry_max=s.temporal_retry_max,
        )

    def serve_jobs(self, worker: Worker) -> None:
        activities = JobActivities(worker, self.store)
        self._runner = TemporalWorker(
            self.client,
            task_queue=self.settings.temporal_task_queue,
            workflows=[DescribeJob],
            activities=[activities.describe, activities.give_up],
            max_concurrent_activities=self.settings.workers,
            # Time for running jobs to reach a safe point; then they are cancelled.
            graceful_shutdown_timeout=timedelta(seconds=30),
        )
        self._running = asyncio.create_task(self._runner.run(), name="temporal-worker")
        logger.info("taking jobs from task queue %s", self.settings.temporal_task_queue)

    async def stop_jobs(self, worker: Worker) -> None:
        if self._runner is None:
            await worker.stop()
            return
        # Stop polling first, then let running jobs reach a safe point: their activities fail
        # as interrupted and Temporal runs them again on another worker.
        shutdown = asyncio.create_task(self._runner.shutdown())
        await worker.stop()
        await shutdown
        if self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)
        self._runner = self._running = None

    async def close(self) -> None:
        await self.store.close()


class TemporalJobQueue:
    """``JobQueue`` of the API process: a submission is a row in PostgreSQL and a workflow;
    the jobs go to worker processes, never to this one."""

    def __init__(self, backend: TemporalBackend) -> None:
        self._backend = backend

    async def submit(self, request: JobRequest) -> Submission:
        settings = self._backend.settings
        submission = await self._backend.store.add_job(
            request, max_queued=settings.queue_max, retry_after=settings.retry_after
        )
        if submission.created:
            job = submission.job
            try:
                await self._backend.client.start_workflow(
                    DescribeJob.run,
                    self._backend.job_input(job),
                    id=workflow_id(job.id),
                    task_queue=settings.temporal_task_queue,
                    execution_timeout=timedelta(seconds=settings.job_timeout + FINISH_MARGIN),
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                )
            except RPCError as exc:
                reason = f"Temporal at {settings.temporal_address} did not take the job: {exc}"
                await self._backend.store.finish(job.id, JobStatus.NOT_PROCESSED, reason, None)
                raise StoreUnavailable(f"{reason}; retry later", full=False) from exc
        return submission

    async def next_job(self) -> Job | None:
        return None  # jobs reach worker processes through Temporal

    async def release(self, job: Job) -> None:
        raise RuntimeError("temporal jobs are given back by failing their activity")

    async def depth(self) -> int:
        return (await self._backend.store.count_by_status())[JobStatus.QUEUED]

    def close(self) -> None:
        """Nothing to close: this queue hands out no jobs."""


class JobActivities:
    """The activities of a job's workflow, run by a worker process with its model loaded."""

    def __init__(self, worker: Worker, store: PostgresJobStore) -> None:
        self._worker = worker
        self._store = store

    @activity.defn(name="describe")
    async def describe(self, job_id: str) -> None:
        """Run the job to its final status; raise to have it run again (on any worker)."""
        log = job_logger(logger, job_id)
        info = activity.info()
        last: int | None = info.heartbeat_details[0] if info.heartbeat_details else None
        job = await self._store.start_job(job_id)
        if job is None:
            log.info("already ended; nothing to do")
            return
        if last is not None:
            log.info("run %d goes on after scene %d, stored by an earlier run", info.attempt, last)
        # The job's heartbeat timeout was fixed when it was submitted.
        timeout = info.heartbeat_timeout.total_seconds() if info.heartbeat_timeout else 30.0
        stored = asyncio.Event()

        def on_stored(description: Description) -> None:
            nonlocal last
            last = description.scene_index
            stored.set()

        async def heartbeat() -> None:
            while True:
                activity.heartbeat(*([] if last is None else [last]))
                stored.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stored.wait(), timeout / 3)

        beating = asyncio.create_task(heartbeat(), name=f"heartbeat-{job_id}")
        try:
            outcome = await self._worker.execute(job, on_stored)
        finally:
            beating.cancel()
        if outcome is None:
            raise ApplicationError("the job stopped at a safe point", type="Interrupted")
        await self._worker.finish(job, outcome)

    @activity.defn(name="give_up")
    async def give_up(self, job_id: str, reason: str) -> None:
        """End a job NOT_PROCESSED (tries used up, timed out, cancelled) unless it ended."""
        job = await self._store.get_job(job_id)
        if not job.status.final:
            await self._worker.finish(job, Outcome(JobStatus.NOT_PROCESSED, reason))
