"""``JobStore`` in PostgreSQL, shared by the API and worker processes of the ``temporal``
backend: the same tables and the same guarantees as ``SqliteJobStore``, for many processes.

A description and its callback, and a final status and its callback, are written in one
transaction. Submissions are serialised by an advisory lock (de-duplication and the queue's
limit hold across API processes); a job's callbacks are delivered by the one process that
holds the job's advisory lock (``delivering``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from app.pipeline.types import Description, Progress, Stage
from app.service.jobs import (
    EventState,
    Job,
    JobNotFound,
    JobRequest,
    JobStatus,
    OutboxEvent,
    QueueFull,
    StoreUnavailable,
    Submission,
)
from app.service.store import dump_progress, load_description, row_event, row_job

logger = logging.getLogger(__name__)

#: Seconds to wait for a connection (the server being restarted) before giving up a call.
CONNECT_TIMEOUT = 10.0

_JOB_COLUMNS = (
    "id, url, subtitles, status, progress, reason, attempts, created_at, started_at, finished_at"
)

Connection: TypeAlias = psycopg.AsyncConnection[dict[str, Any]]


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy URL of a libpq URL (``postgresql://...``), with the psycopg 3 driver."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgres", "postgresql"):
        raise ValueError(f"not a PostgreSQL URL (postgresql://user:password@host/db): {url!r}")
    return f"postgresql+psycopg://{rest}"


class PostgresJobStore:
    """``JobStore`` in a PostgreSQL database, through a pool of connections.

    Args:
        url: libpq URL, ``postgresql://user:password@host:port/database``.
        max_connections: Pool size; each job delivering callbacks holds one while it does.
    """

    def __init__(self, url: str, *, max_connections: int = 10) -> None:
        self.url = url
        self._max_connections = max_connections
        self._pool: AsyncConnectionPool[Connection] | None = None

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """A connection with a transaction open; committed at the end of the block."""
        if self._pool is None:
            raise RuntimeError("the job store is not open; call open() first")
        try:
            async with self._pool.connection(timeout=CONNECT_TIMEOUT) as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(
                f"the job store (PostgreSQL at {self._where}) cannot be used now: {exc}",
                full=False,
            ) from exc

    @property
    def _where(self) -> str:
        return self.url.rpartition("@")[2]  # never the password

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        from app.service import migrations

        try:
            await asyncio.to_thread(migrations.upgrade, sqlalchemy_url(self.url))
        except Exception as exc:
            raise StoreUnavailable(
                f"cannot open the job store (PostgreSQL at {self._where}): {exc}", full=False
            ) from exc
        self._pool = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self._max_connections,
            kwargs={"row_factory": dict_row},
            # A connection broken by a server restart is replaced, not handed out.
            check=AsyncConnectionPool.check_connection,
            open=False,
        )
        await self._pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        logger.info("job store open at PostgreSQL %s", self._where)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def check_writable(self) -> None:
        async with self._connection() as conn:
            await conn.execute("DELETE FROM probe")

    # --- jobs --------------------------------------------------------------------------------

    async def add_job(
        self, request: JobRequest, *, max_queued: int, retry_after: int
    ) -> Submission:
        async with self._connection() as conn:
            # One submission at a time across processes: the look-up and the insert agree.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('describer:submit'))")
            cursor = await conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE url = %s AND "
                "coalesce(subtitles, '') = %s AND status IN ('queued', 'running')",
                (request.url, request.subtitles or ""),
            )
            if (row := await cursor.fetchone()) is not None:
                return Submission(row_job(row), created=False)
            cursor = await conn.execute("SELECT count(*) AS n FROM jobs WHERE status = 'queued'")
            counted = await cursor.fetchone()
            if counted is not None and counted["n"] >= max_queued:
                raise QueueFull(max_queued, retry_after)
            cursor = await conn.execute(
                "INSERT INTO jobs (id, url, subtitles, status, created_at) "
                f"VALUES (%s, %s, %s, %s, %s) RETURNING {_JOB_COLUMNS}",
                (uuid.uuid4().hex, request.url, request.subtitles, JobStatus.QUEUED, time.time()),
            )
            return Submission(row_job(await _one(cursor)), created=True)

    async def get_job(self, job_id: str) -> Job:
        async with self._connection() as conn:
            cursor = await conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = %s", (job_id,))
            row = await cursor.fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return row_job(row)

    async def start_job(self, job_id: str) -> Job | None:
        async with self._connection() as conn:
            cursor = await conn.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = %s, "
                "progress = '{}' WHERE id = %s AND status IN ('queued', 'running') "
                f"RETURNING {_JOB_COLUMNS}",
                (time.time(), job_id),
            )
            row = await cursor.fetchone()
        return None if row is None else row_job(row)

    async def jobs_with_status(self, status: JobStatus) -> list[Job]:
        async with self._connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status = %s ORDER BY created_at, id",
                (status.value,),
            )
            return [row_job(row) for row in await cursor.fetchall()]

    async def set_progress(self, job_id: str, progress: Progress) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "UPDATE jobs SET progress = %s WHERE id = %s AND status = 'running'",
                (dump_progress(progress), job_id),
            )

    async def add_description(
        self, job_id: str, description: Description, event: OutboxEvent | None
    ) -> bool:
        d = description
        async with self._connection() as conn:
            cursor = await conn.execute(
                "INSERT INTO descriptions (job_id, scene_index, start_time, data) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (job_id, d.scene_index, d.start, json.dumps(dataclasses.asdict(d))),
            )
            if cursor.rowcount == 0:
                return False
            if event is not None:
                await _insert_event(conn, event)
            return True

    async def finish(
        self, job_id: str, status: JobStatus, reason: str | None, event: OutboxEvent | None
    ) -> None:
        if not status.final:
            raise ValueError(f"finish() needs a final status, not {status}")
        async with self._connection() as conn:
            cursor = await conn.execute(
                "UPDATE jobs SET status = %s, reason = %s, finished_at = %s, progress = CASE "
                "WHEN %s THEN jsonb_set(progress::jsonb, '{stage}', to_jsonb(%s::text))::text "
                "ELSE progress END WHERE id = %s AND status IN ('queued', 'running')",
                (
                    status.value,
                    reason,
                    time.time(),
                    status is JobStatus.PROCESSED,
                    Stage.DONE.value,
                    job_id,
                ),
            )
            if cursor.rowcount == 0:
                raise RuntimeError(f"job {job_id} is not queued or running; cannot finish it")
            if event is not None:
                await _insert_event(conn, event)

    async def descriptions(self, job_id: str) -> list[Description]:
        async with self._connection() as conn:
            cursor = await conn.execute(
                "SELECT data FROM descriptions WHERE job_id = %s ORDER BY start_time, scene_index",
                (job_id,),
            )
            return [load_description(row["data"]) for row in await cursor.fetchall()]

    async def count_by_status(self) -> dict[JobStatus, int]:
        counts = dict.fromkeys(JobStatus, 0)
        async with self._connection() as conn:
            cursor = await conn.execute("SELECT status, count(*) AS n FROM jobs GROUP BY status")
            for row in await cursor.fetchall():
                counts[JobStatus(row["status"])] = row["n"]
        return counts

    # --- outbox ------------------------------------------------------------------------------

    async def jobs_with_pending_events(self) -> list[str]:
        async with self._connection() as conn:
            cursor = await conn.execute(
                "SELECT job_id, min(id) AS first FROM outbox WHERE state = 'pending' "
                "GROUP BY job_id ORDER BY first"
            )
            return [row["job_id"] for row in await cursor.fetchall()]

    @asynccontextmanager
    async def delivering(self, job_id: str) -> AsyncIterator[bool]:
        # A transaction-scoped lock, on a connection held for the block: it ends with the
        # transaction, so also when this process dies or loses its connection.
        async with self._connection() as conn:
            cursor = await conn.execute(
                "SELECT pg_try_advisory_xact_lock(hashtext('describer:outbox'), hashtext(%s)) "
                "AS ours",
                (job_id,),
            )
            yield bool((await _one(cursor))["ours"])

    async def next_pending_event(self, job_id: str) -> OutboxEvent | None:
        async with self._connection() as conn:
            cursor = await conn.execute(
                "SELECT * FROM outbox WHERE state = 'pending' AND job_id = %s ORDER BY id LIMIT 1",
                (job_id,),
            )
            row = await cursor.fetchone()
        return None if row is None else row_event(row)

    async def settle_event(
        self, event_id: int, state: EventState, attempts: int, error: str | None
    ) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "UPDATE outbox SET state = %s, attempts = attempts + %s, last_error = %s, "
                "settled_at = %s WHERE id = %s",
                (state.value, attempts, error, time.time(), event_id),
            )

    async def count_events(self) -> dict[EventState, int]:
        counts = dict.fromkeys(EventState, 0)
        async with self._connection() as conn:
            cursor = await conn.execute("SELECT state, count(*) AS n FROM outbox GROUP BY state")
            for row in await cursor.fetchall():
                counts[EventState(row["state"])] = row["n"]
        return counts


async def _one(cursor: psycopg.AsyncCursor[dict[str, Any]]) -> dict[str, Any]:
    row = await cursor.fetchone()
    if row is None:
        raise RuntimeError("the statement returned no row")
    return row


async def _insert_event(conn: Connection, event: OutboxEvent) -> None:
    # ON CONFLICT DO NOTHING: the same event id is never stored (so never delivered) twice.
    await conn.execute(
        "INSERT INTO outbox (event_id, job_id, type, path, body, created_at) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
        (event.event_id, event.job_id, event.type.value, event.path, event.body, time.time()),
    )
