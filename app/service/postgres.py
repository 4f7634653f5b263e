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
    DescriptionNotFound,
    EventState,
    Job,
    JobNotFound,
    JobRequest,
    JobStatus,
    OutboxEvent,
    QueueFull,
    StaleVersion,
    StoredDescription,
    StoreUnavailable,
    Submission,
)
from app.service.store import (
    JOB_COLUMNS,
    dump_description,
    dump_progress,
    load_description,
    row_event,
    row_job,
    row_stored,
)

logger = logging.getLogger(__name__)

#: Seconds to wait for a connection (the server being restarted) before giving up a call.
CONNECT_TIMEOUT = 10.0

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
            options = request.options.to_json()
            cursor = await conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE url = %s AND "
                "coalesce(subtitles, '') = %s AND options = %s "
                "AND status IN ('queued', 'running')",
                (request.url, request.subtitles or "", options),
            )
            if (row := await cursor.fetchone()) is not None:
                return Submission(row_job(row), created=False)
            cursor = await conn.execute("SELECT count(*) AS n FROM jobs WHERE status = 'queued'")
            counted = await cursor.fetchone()
            if counted is not None and counted["n"] >= max_queued:
                raise QueueFull(max_queued, retry_after)
            cursor = await conn.execute(
                "INSERT INTO jobs (id, url, subtitles, status, created_at, options) "
                f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {JOB_COLUMNS}",
                (
                    uuid.uuid4().hex,
                    request.url,
                    request.subtitles,
                    JobStatus.QUEUED,
                    time.time(),
                    options,
                ),
            )
            return Submission(row_job(await _one(cursor)), created=True)

    async def get_job(self, job_id: str) -> Job:
        async with self._connection() as conn:
            cursor = await conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s", (job_id,))
            row = await cursor.fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return row_job(row)

    async def start_job(self, job_id: str) -> Job | None:
        async with self._connection() as conn:
            cursor = await conn.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = %s, "
                "progress = '{}' WHERE id = %s AND status IN ('queued', 'running') "
                f"RETURNING {JOB_COLUMNS}",
                (time.time(), job_id),
            )
            row = await cursor.fetchone()
        return None if row is None else row_job(row)

    async def jobs_with_status(self, status: JobStatus) -> list[Job]:
        async with self._connection() as conn:
            cursor = await conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = %s ORDER BY created_at, id",
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
            # The machine's one description per scene (descriptions_machine_scene).
            cursor = await conn.execute(
                "INSERT INTO descriptions (job_id, scene_index, start_time, data) "
                "VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (job_id, scene_index) WHERE origin = 'machine' DO NOTHING",
                (job_id, d.scene_index, d.start, dump_description(d)),
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
            return [stored.description for stored in await _reviewable(conn, job_id)]

    async def count_by_status(self) -> dict[JobStatus, int]:
        counts = dict.fromkeys(JobStatus, 0)
        async with self._connection() as conn:
            cursor = await conn.execute("SELECT status, count(*) AS n FROM jobs GROUP BY status")
            for row in await cursor.fetchall():
                counts[JobStatus(row["status"])] = row["n"]
        return counts

    # --- review ------------------------------------------------------------------------------

    async def recent_jobs(self, limit: int) -> list[Job]:
        async with self._connection() as conn:
            cursor = await conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_at DESC, id DESC LIMIT %s",
                (limit,),
            )
            return [row_job(row) for row in await cursor.fetchall()]

    async def review_state(self, job_id: str) -> tuple[list[StoredDescription], int]:
        async with self._connection() as conn:
            # One snapshot for both reads: the revision names exactly these descriptions.
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor = await conn.execute(
                "SELECT coalesce(sum(version), 0) AS revision FROM descriptions WHERE job_id = %s",
                (job_id,),
            )
            revision = int((await _one(cursor))["revision"])
            return await _reviewable(conn, job_id), revision

    async def scenes_described(self, job_id: str) -> list[Description]:
        async with self._connection() as conn:
            cursor = await conn.execute(
                "SELECT data FROM descriptions WHERE job_id = %s ORDER BY start_time", (job_id,)
            )
            return [load_description(row["data"]) for row in await cursor.fetchall()]

    async def get_description(self, job_id: str, description_id: int) -> StoredDescription:
        async with self._connection() as conn:
            return await _get_description(conn, job_id, description_id)

    async def revise_description(
        self, job_id: str, description_id: int, version: int, new: Description | None
    ) -> StoredDescription:
        async with self._connection() as conn:
            # The row is locked until commit: of two changes made against one version, the
            # second sees the first's and is refused.
            current = await _get_description(conn, job_id, description_id, lock=True)
            if current.version != version:
                raise StaleVersion(description_id, version, current.version)
            await conn.execute(
                "INSERT INTO description_history (description_id, version, data, replaced_at) "
                "SELECT id, version, data, %s FROM descriptions WHERE id = %s",
                (time.time(), description_id),
            )
            if new is None:
                await conn.execute(
                    "UPDATE descriptions SET deleted = 1, version = version + 1 WHERE id = %s",
                    (description_id,),
                )
                return dataclasses.replace(current, version=version + 1, deleted=True)
            await conn.execute(
                "UPDATE descriptions SET data = %s, start_time = %s, version = version + 1 "
                "WHERE id = %s",
                (dump_description(new), new.start, description_id),
            )
            return await _get_description(conn, job_id, description_id)

    async def insert_description(self, job_id: str, description: Description) -> StoredDescription:
        d = description
        async with self._connection() as conn:
            cursor = await conn.execute(
                "INSERT INTO descriptions (job_id, scene_index, start_time, data, origin) "
                "VALUES (%s, %s, %s, %s, 'reviewer') RETURNING *",
                (job_id, d.scene_index, d.start, dump_description(d)),
            )
            return row_stored(await _one(cursor))

    async def description_history(
        self, job_id: str, description_id: int
    ) -> list[StoredDescription]:
        async with self._connection() as conn:
            current = await _get_description(conn, job_id, description_id)
            cursor = await conn.execute(
                "SELECT version, data, replaced_at FROM description_history "
                "WHERE description_id = %s ORDER BY version",
                (description_id,),
            )
            return [
                StoredDescription(
                    id=description_id,
                    version=row["version"],
                    origin=current.origin,
                    description=load_description(row["data"]),
                    changed_at=row["replaced_at"],
                )
                for row in await cursor.fetchall()
            ]

    # --- outbox ------------------------------------------------------------------------------

    async def add_event(self, event: OutboxEvent) -> bool:
        async with self._connection() as conn:
            return await _insert_event(conn, event)

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


async def _reviewable(conn: Connection, job_id: str) -> list[StoredDescription]:
    cursor = await conn.execute(
        "SELECT * FROM descriptions WHERE job_id = %s AND deleted = 0 "
        "ORDER BY start_time, scene_index, id",
        (job_id,),
    )
    return [row_stored(row) for row in await cursor.fetchall()]


async def _get_description(
    conn: Connection, job_id: str, description_id: int, *, lock: bool = False
) -> StoredDescription:
    cursor = await conn.execute(
        "SELECT * FROM descriptions WHERE id = %s AND job_id = %s AND deleted = 0"
        + (" FOR UPDATE" if lock else ""),
        (description_id, job_id),
    )
    row = await cursor.fetchone()
    if row is None:
        raise DescriptionNotFound(job_id, description_id)
    return row_stored(row)


async def _insert_event(conn: Connection, event: OutboxEvent) -> bool:
    """Store a callback; False when its event id is already stored."""
    # ON CONFLICT DO NOTHING: the same event id is never stored (so never delivered) twice.
    cursor = await conn.execute(
        "INSERT INTO outbox (event_id, job_id, type, path, body, created_at) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
        (event.event_id, event.job_id, event.type.value, event.path, event.body, time.time()),
    )
    return cursor.rowcount == 1
