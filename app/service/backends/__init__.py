"""Job backends: where jobs, descriptions and callbacks are kept (``JobStore``) and how jobs
reach workers (``JobQueue``), built together from one setting, ``DESCRIBER_BACKEND``.

A backend is one module in this folder with a factory ``(Settings) -> JobBackend`` and a line
in :data:`BACKENDS`. ``local`` (the default): one SQLite file and workers in the API process.
``temporal``: PostgreSQL shared by every process, jobs as Temporal workflows run by
``python -m app worker`` processes (``pip install '.[scale]'``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from app.registry import Member, Registry

if TYPE_CHECKING:
    from app.config import Settings
    from app.service.jobs import Job
    from app.service.queue import JobQueue
    from app.service.store import JobStore
    from app.service.worker import Worker


class JobBackend(Protocol):
    """A store and the queue over it, opened and closed together."""

    store: JobStore
    queue: JobQueue
    runs_jobs: bool
    """True: the API process runs the jobs itself; False: ``python -m app worker`` processes
    do, and the API loads no model."""

    async def open(self, max_attempts: int) -> list[Job]:
        """Open the storage, and queue again the jobs a previous process left running.

        Args:
            max_attempts: Runs a job gets; one that had them all is not queued again.

        Returns:
            The running jobs that already had ``max_attempts`` runs, for the caller to end:
            a job that kills the service every time must not do so forever.
        """
        ...

    def serve_jobs(self, worker: Worker) -> None:
        """Start handing this process's jobs to ``worker`` (its model is loaded)."""
        ...

    async def stop_jobs(self, worker: Worker) -> None:
        """Stop handing out jobs; running ones stop at a safe point and run again later."""
        ...

    async def close(self) -> None:
        """Release the storage (after ``stop_jobs``)."""
        ...


BackendFactory = Callable[["Settings"], JobBackend]

#: Job backends by the name ``DESCRIBER_BACKEND`` takes.
BACKENDS: Registry[BackendFactory] = Registry(
    "job backend",
    {
        "local": "app.service.backends.local:LocalBackend",
        "temporal": Member(
            "app.service.backends.temporal:TemporalBackend",
            requires={
                "temporalio": "temporalio",
                "psycopg": "psycopg",
                "psycopg_pool": "psycopg-pool",
            },
        ),
    },
)


def build_backend(settings: Settings) -> JobBackend:
    """The backend ``settings.backend`` names, built from the settings (nothing opened yet)."""
    return BACKENDS.load(settings.backend)(settings)
