"""The Temporal workflow of one job: run the ``describe`` activity (retried with backoff,
heartbeating), and when it cannot end the job itself, ``give_up`` records why.

This module runs inside Temporal's workflow sandbox: it imports nothing but the standard
library and ``temporalio`` (never the pipeline), and names activities by string.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError, TimeoutError, TimeoutType
from temporalio.workflow import ActivityCancellationType

#: Name of the workflow type, as clients start it.
WORKFLOW = "DescribeJob"

#: Seconds the workflow outlives the job's timeout, to record the timeout itself.
FINISH_MARGIN = 60.0


@dataclass(frozen=True)
class JobInput:
    """What a job's workflow needs: the job and the limits it runs under."""

    job_id: str
    job_timeout: float
    """Seconds from submission to the end of the job's last try, waiting included."""
    heartbeat_timeout: float
    max_attempts: int
    retry_initial: float
    retry_max: float


def workflow_id(job_id: str) -> str:
    """The id of a job's workflow (one workflow per job)."""
    return f"describe-{job_id}"


@workflow.defn(name=WORKFLOW)
class DescribeJob:
    """One job, from its first try to its final status."""

    @workflow.run
    async def run(self, job: JobInput) -> None:
        try:
            await workflow.execute_activity(
                "describe",
                job.job_id,
                schedule_to_close_timeout=timedelta(seconds=job.job_timeout),
                heartbeat_timeout=timedelta(seconds=job.heartbeat_timeout),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=job.retry_initial),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=job.retry_max),
                    maximum_attempts=job.max_attempts,
                ),
                # The pipeline stops at a safe point before the workflow goes on.
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
            return
        except ActivityError as error:
            reason = _reason(error.cause, job)
            cancelled = isinstance(error.cause, CancelledError)
        except asyncio.CancelledError:
            reason, cancelled = "the job was cancelled", True
        await workflow.execute_activity(
            "give_up",
            args=[job.job_id, reason],
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=job.retry_max)),
        )
        if cancelled:
            raise asyncio.CancelledError


def _reason(cause: BaseException | None, job: JobInput) -> str:
    """Why a job ended NOT_PROCESSED, for core and the API."""
    if isinstance(cause, CancelledError):
        return "the job was cancelled"
    if isinstance(cause, TimeoutError) and cause.type is TimeoutType.SCHEDULE_TO_CLOSE:
        return f"the job took longer than {job.job_timeout:g} s, the longest a job may run"
    if isinstance(cause, TimeoutError) and cause.type is TimeoutType.HEARTBEAT:
        return (
            f"the workers running this job stopped answering {job.max_attempts} times; "
            "it was not tried again"
        )
    return f"the job failed {job.max_attempts} times; the last error: {cause}"
