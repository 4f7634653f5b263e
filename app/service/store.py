"""Durable state of the service: jobs, their descriptions and the outbox of callbacks to core.

``JobStore`` is the contract; ``SqliteJobStore`` the embedded implementation. A description
and the callback that announces it are written in one transaction, and so are a job's final
status and its callback, so a crash can never leave one without the other.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from app.pipeline.types import Description, Progress, Stage
from app.service.jobs import (
    DescriptionNotFound,
    DescriptionOrigin,
    EventState,
    EventType,
    Job,
    JobNotFound,
    JobOptions,
    JobRequest,
    JobStatus,
    OutboxEvent,
    QueueFull,
    StaleVersion,
    StoredDescription,
    StoreUnavailable,
    Submission,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: A row as the databases' drivers give it: ``sqlite3.Row`` or psycopg's dict rows.
Row = sqlite3.Row | Mapping[str, Any]


class JobStore(Protocol):
    """Where jobs, descriptions and undelivered callbacks live: what the service, the worker
    and the outbox call. All methods are coroutines. Queueing, claiming and requeueing jobs
    belong to the backend's ``JobQueue``."""

    async def open(self) -> None:
        """Create or migrate the storage; called once before anything else."""

    async def close(self) -> None:
        """Release the storage."""

    async def check_writable(self) -> None:
        """Raise an exception when the store cannot take writes (readiness probe)."""

    async def get_job(self, job_id: str) -> Job:
        """The job with this id. Raises ``JobNotFound``."""

    async def set_progress(self, job_id: str, progress: Progress) -> None:
        """Record how far a running job got (the whole record, replacing the last)."""

    async def add_description(
        self, job_id: str, description: Description, event: OutboxEvent | None
    ) -> bool:
        """Store a description and its callback atomically.

        Returns:
            False when this job already holds a description of the same scene (a job run
            again after a crash); nothing is written then.
        """

    async def finish(
        self, job_id: str, status: JobStatus, reason: str | None, event: OutboxEvent | None
    ) -> None:
        """Store a job's final status and its callback atomically."""

    async def descriptions(self, job_id: str) -> list[Description]:
        """A job's descriptions in time order."""

    async def count_by_status(self) -> dict[JobStatus, int]:
        """Number of jobs in each state (every state present)."""

    async def recent_jobs(self, limit: int) -> list[Job]:
        """The ``limit`` most recently created jobs, newest first."""

    async def review_state(self, job_id: str) -> tuple[list[StoredDescription], int]:
        """A job's undeleted descriptions (time order) and their revision, read together."""

    async def scenes_described(self, job_id: str) -> list[Description]:
        """Every description a job had, deleted ones included (the scenes they name)."""

    async def get_description(self, job_id: str, description_id: int) -> StoredDescription:
        """One undeleted description. Raises ``DescriptionNotFound``."""

    async def revise_description(
        self, job_id: str, description_id: int, version: int, new: Description | None
    ) -> StoredDescription:
        """Replace (or, with None, delete) a description still at ``version``, keeping the
        replaced version in its history. Raises ``DescriptionNotFound``, ``StaleVersion``."""

    async def insert_description(self, job_id: str, description: Description) -> StoredDescription:
        """Add a reviewer's description."""

    async def description_history(
        self, job_id: str, description_id: int
    ) -> list[StoredDescription]:
        """A description's replaced versions, oldest first."""

    async def add_event(self, event: OutboxEvent) -> bool:
        """Store a callback; False when its event id is already stored."""

    async def start_job(self, job_id: str) -> Job | None:
        """Mark a queued or running job as running for one more run (attempts + 1, progress
        cleared) and return it; None when it has already ended."""

    async def jobs_with_pending_events(self) -> list[str]:
        """Ids of jobs that have callbacks waiting, oldest event first."""

    def delivering(self, job_id: str) -> AbstractAsyncContextManager[bool]:
        """Hold the right to deliver this job's callbacks while the block runs; it yields
        False when another process holds it (that process delivers them, in order)."""

    async def next_pending_event(self, job_id: str) -> OutboxEvent | None:
        """A job's earliest undelivered callback."""

    async def settle_event(
        self, event_id: int, state: EventState, attempts: int, error: str | None
    ) -> None:
        """Record the outcome of delivering a callback."""

    async def count_events(self) -> dict[EventState, int]:
        """Number of callbacks in each delivery state."""


#: Progress columns of store files written before progress became one JSON column; their
#: values move into ``progress`` when such a file is opened, then the columns are dropped.
_OLD_PROGRESS_COLUMNS = (
    "stage",
    "fraction",
    "scenes_found",
    "scenes_captioned",
    "scenes_without_pause",
    "scenes_similar",
    "captions_dropped",
)

JOB_COLUMNS = (
    "id, url, subtitles, status, progress, reason, attempts, created_at, started_at, "
    "finished_at, options"
)


def row_job(row: Row) -> Job:
    """A job from a row of the jobs table (any database)."""
    return Job(
        id=row["id"],
        url=row["url"],
        subtitles=row["subtitles"],
        status=JobStatus(row["status"]),
        progress=load_progress(row["progress"]),
        reason=row["reason"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        options=JobOptions.from_json(row["options"]),
    )


def dump_progress(progress: Progress) -> str:
    """A progress record as JSON, every field."""
    return json.dumps(dataclasses.asdict(progress))


def load_description(data: str) -> Description:
    """A stored description; rows of earlier versions name ``similarity`` ``novelty``."""
    fields = json.loads(data)
    if "novelty" in fields:
        fields["similarity"] = fields.pop("novelty")
    return Description(**fields)


def dump_description(description: Description) -> str:
    return json.dumps(dataclasses.asdict(description))


def row_stored(row: Row) -> StoredDescription:
    """A description with its id and version from a row of the descriptions table (any
    database)."""
    return StoredDescription(
        id=row["id"],
        version=row["version"],
        origin=DescriptionOrigin(row["origin"]),
        description=load_description(row["data"]),
        deleted=bool(row["deleted"]),
    )


def load_progress(text: str) -> Progress:
    """A progress record from JSON; fields it lacks take their defaults, unknown ones are
    ignored (a file written by a newer version)."""
    data = json.loads(text)
    known = {f.name for f in dataclasses.fields(Progress) if f.init}
    values = {key: value for key, value in data.items() if key in known}
    if values.get("stage") is not None:
        values["stage"] = Stage(values["stage"])
    return Progress(**values)


def migrate_progress(conn: sqlite3.Connection) -> None:
    """Move the progress columns of an older store file into the JSON column (run by the
    base migration; ``conn`` yields ``sqlite3.Row`` rows)."""
    present = {row["name"] for row in conn.execute("PRAGMA table_info(jobs)")}
    old = [column for column in _OLD_PROGRESS_COLUMNS if column in present]
    if "progress" in present and not old:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if "progress" not in present:
            conn.execute("ALTER TABLE jobs ADD COLUMN progress TEXT NOT NULL DEFAULT '{}'")
        for row in conn.execute(f"SELECT id, {', '.join(old)} FROM jobs").fetchall():
            values = dict(row)
            # Only the share was kept, not the seconds: as seconds of a 1 s video it reads
            # back as the same fraction.
            fraction = values.pop("fraction", 0.0) or 0.0
            stage = values.pop("stage", None)
            progress = Progress(
                stage=Stage(stage) if stage else None,
                scanned_seconds=fraction,
                duration=1.0 if fraction else None,
                **{k: v for k, v in values.items() if k != "id"},
            )
            conn.execute(
                "UPDATE jobs SET progress = ? WHERE id = ?", (dump_progress(progress), row["id"])
            )
        for column in old:
            conn.execute(f"ALTER TABLE jobs DROP COLUMN {column}")
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
    logger.info("job store: progress columns moved into jobs.progress")


def row_event(row: Row) -> OutboxEvent:
    """A callback from a row of the outbox table (any database)."""
    return OutboxEvent(
        id=row["id"],
        event_id=row["event_id"],
        job_id=row["job_id"],
        type=EventType(row["type"]),
        path=row["path"],
        body=bytes(row["body"]),
        state=EventState(row["state"]),
        attempts=row["attempts"],
        last_error=row["last_error"],
    )


class SqliteJobStore:
    """``JobStore`` in one SQLite file (WAL, full sync), used from one dedicated thread.

    Every call runs in that thread, one at a time, so each method is atomic with respect to
    the others without further locking, and the event loop never waits on disk.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorname", None) == "SQLITE_FULL":
                raise StoreUnavailable(
                    f"the disk holding the job store ({self.path.resolve()}) is full; free "
                    "space there",
                    full=True,
                ) from exc
            raise StoreUnavailable(
                f"the job store ({self.path.resolve()}) cannot be used now: {exc}", full=False
            ) from exc

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the job store is not open; call open() first")
        return self._db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        from app.service import migrations  # alembic: imported when a store opens, not before

        migrations.upgrade(f"sqlite:///{self.path}")
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed description survives a power cut, not only a killed process.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        self._db = conn
        logger.info("job store open at %s", self.path)

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._conn.close)
            self._db = None
        self._executor.shutdown(wait=True)

    async def check_writable(self) -> None:
        await self._run(self._check_writable)

    def _check_writable(self) -> None:
        with self._transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY)")
            conn.execute("DELETE FROM probe")

    # --- jobs --------------------------------------------------------------------------------

    async def add_job(
        self, request: JobRequest, *, max_queued: int, retry_after: int
    ) -> Submission:
        return await self._run(self._add_job, request, max_queued, retry_after)

    def _add_job(self, request: JobRequest, max_queued: int, retry_after: int) -> Submission:
        with self._transaction() as conn:
            options = request.options.to_json()
            row = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE url = ? AND coalesce(subtitles, '') = ? "
                "AND options = ? AND status IN ('queued', 'running')",
                (request.url, request.subtitles or "", options),
            ).fetchone()
            if row is not None:
                return Submission(row_job(row), created=False)
            (queued,) = conn.execute("SELECT count(*) FROM jobs WHERE status = 'queued'").fetchone()
            if queued >= max_queued:
                raise QueueFull(max_queued, retry_after)
            job_id = uuid.uuid4().hex
            conn.execute(
                "INSERT INTO jobs (id, url, subtitles, status, created_at, options) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    request.url,
                    request.subtitles,
                    JobStatus.QUEUED.value,
                    time.time(),
                    options,
                ),
            )
            return Submission(self._get(job_id), created=True)

    async def get_job(self, job_id: str) -> Job:
        return await self._run(self._get, job_id)

    def _get(self, job_id: str) -> Job:
        row = self._conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return row_job(row)

    async def claim_next(self) -> Job | None:
        return await self._run(self._claim_next)

    def _claim_next(self) -> Job | None:
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at, rowid LIMIT 1"
            ).fetchone()
            return None if row is None else self._start(conn, row["id"])

    async def start_job(self, job_id: str) -> Job | None:
        return await self._run(self._start_job, job_id)

    def _start_job(self, job_id: str) -> Job | None:
        with self._transaction() as conn:
            return self._start(conn, job_id)

    def _start(self, conn: sqlite3.Connection, job_id: str) -> Job | None:
        cursor = conn.execute(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?, "
            "progress = '{}' WHERE id = ? AND status IN ('queued', 'running')",
            (time.time(), job_id),
        )
        return self._get(job_id) if cursor.rowcount else None

    async def jobs_with_status(self, status: JobStatus) -> list[Job]:
        return await self._run(self._jobs_with_status, status)

    def _jobs_with_status(self, status: JobStatus) -> list[Job]:
        rows = self._conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = ? ORDER BY created_at, rowid",
            (status.value,),
        ).fetchall()
        return [row_job(row) for row in rows]

    async def requeue(self, job_id: str) -> None:
        await self._run(self._requeue, job_id)

    def _requeue(self, job_id: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'queued', progress = '{}' "
                "WHERE id = ? AND status = 'running'",
                (job_id,),
            )

    async def set_progress(self, job_id: str, progress: Progress) -> None:
        await self._run(self._set_progress, job_id, progress)

    def _set_progress(self, job_id: str, progress: Progress) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET progress = ? WHERE id = ? AND status = 'running'",
                (dump_progress(progress), job_id),
            )

    async def add_description(
        self, job_id: str, description: Description, event: OutboxEvent | None
    ) -> bool:
        return await self._run(self._add_description, job_id, description, event)

    def _add_description(self, job_id: str, d: Description, event: OutboxEvent | None) -> bool:
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO descriptions (job_id, scene_index, start_time, data) "
                "VALUES (?, ?, ?, ?)",
                (job_id, d.scene_index, d.start, dump_description(d)),
            )
            if cursor.rowcount == 0:
                return False
            if event is not None:
                self._insert_event(conn, event)
            return True

    async def finish(
        self, job_id: str, status: JobStatus, reason: str | None, event: OutboxEvent | None
    ) -> None:
        await self._run(self._finish, job_id, status, reason, event)

    def _finish(
        self, job_id: str, status: JobStatus, reason: str | None, event: OutboxEvent | None
    ) -> None:
        if not status.final:
            raise ValueError(f"finish() needs a final status, not {status}")
        with self._transaction() as conn:
            done = status is JobStatus.PROCESSED
            cursor = conn.execute(
                "UPDATE jobs SET status = ?, reason = ?, finished_at = ?, progress = CASE "
                "WHEN ? THEN json_set(progress, '$.stage', ?) ELSE progress END "
                "WHERE id = ? AND status IN ('queued', 'running')",
                (status.value, reason, time.time(), done, Stage.DONE.value, job_id),
            )
            if cursor.rowcount == 0:
                raise RuntimeError(f"job {job_id} is not queued or running; cannot finish it")
            if event is not None:
                self._insert_event(conn, event)

    @staticmethod
    def _insert_event(conn: sqlite3.Connection, event: OutboxEvent) -> bool:
        # OR IGNORE: the same event id is never stored (so never delivered) twice.
        cursor = conn.execute(
            "INSERT OR IGNORE INTO outbox (event_id, job_id, type, path, body, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (event.event_id, event.job_id, event.type.value, event.path, event.body, time.time()),
        )
        return cursor.rowcount == 1

    async def descriptions(self, job_id: str) -> list[Description]:
        return await self._run(self._descriptions, job_id)

    def _descriptions(self, job_id: str) -> list[Description]:
        return [stored.description for stored in self._reviewable(job_id)]

    # --- review ------------------------------------------------------------------------------

    async def recent_jobs(self, limit: int) -> list[Job]:
        """The ``limit`` most recently created jobs, newest first."""
        return await self._run(self._recent_jobs, limit)

    def _recent_jobs(self, limit: int) -> list[Job]:
        rows = self._conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [row_job(row) for row in rows]

    def _reviewable(self, job_id: str) -> list[StoredDescription]:
        rows = self._conn.execute(
            "SELECT * FROM descriptions WHERE job_id = ? AND NOT deleted "
            "ORDER BY start_time, scene_index, id",
            (job_id,),
        ).fetchall()
        return [row_stored(row) for row in rows]

    async def scenes_described(self, job_id: str) -> list[Description]:
        """Every description a job ever had, deleted ones included: the scenes they name are
        the scenes the service knows of."""
        return await self._run(self._scenes_described, job_id)

    def _scenes_described(self, job_id: str) -> list[Description]:
        rows = self._conn.execute(
            "SELECT data FROM descriptions WHERE job_id = ? ORDER BY start_time", (job_id,)
        ).fetchall()
        return [load_description(row["data"]) for row in rows]

    async def get_description(self, job_id: str, description_id: int) -> StoredDescription:
        """One undeleted description of a job. Raises ``DescriptionNotFound``."""
        return await self._run(self._get_description, job_id, description_id)

    def _get_description(self, job_id: str, description_id: int) -> StoredDescription:
        row = self._conn.execute(
            "SELECT * FROM descriptions WHERE id = ? AND job_id = ? AND NOT deleted",
            (description_id, job_id),
        ).fetchone()
        if row is None:
            raise DescriptionNotFound(job_id, description_id)
        return row_stored(row)

    async def revise_description(
        self, job_id: str, description_id: int, version: int, new: Description | None
    ) -> StoredDescription:
        """Replace a description (``new``) or delete it (None), if it is still at
        ``version``; the replaced version goes into the history.

        Raises:
            DescriptionNotFound: No such undeleted description.
            StaleVersion: It is at another version.
        """
        return await self._run(self._revise_description, job_id, description_id, version, new)

    def _revise_description(
        self, job_id: str, description_id: int, version: int, new: Description | None
    ) -> StoredDescription:
        with self._transaction() as conn:
            current = self._get_description(job_id, description_id)
            if current.version != version:
                raise StaleVersion(description_id, version, current.version)
            conn.execute(
                "INSERT INTO description_history (description_id, version, data, replaced_at) "
                "SELECT id, version, data, ? FROM descriptions WHERE id = ?",
                (time.time(), description_id),
            )
            if new is None:
                conn.execute(
                    "UPDATE descriptions SET deleted = 1, version = version + 1 WHERE id = ?",
                    (description_id,),
                )
                return dataclasses.replace(current, version=version + 1, deleted=True)
            conn.execute(
                "UPDATE descriptions SET data = ?, start_time = ?, version = version + 1 "
                "WHERE id = ?",
                (dump_description(new), new.start, description_id),
            )
            return self._get_description(job_id, description_id)

    async def insert_description(self, job_id: str, description: Description) -> StoredDescription:
        """Add a reviewer's description to a job."""
        return await self._run(self._insert_description, job_id, description)

    def _insert_description(self, job_id: str, d: Description) -> StoredDescription:
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO descriptions (job_id, scene_index, start_time, data, origin) "
                "VALUES (?, ?, ?, ?, ?)",
                (job_id, d.scene_index, d.start, dump_description(d), "reviewer"),
            )
            assert cursor.lastrowid is not None
            return self._get_description(job_id, cursor.lastrowid)

    async def description_history(
        self, job_id: str, description_id: int
    ) -> list[StoredDescription]:
        """The versions a description had before its current one, oldest first."""
        return await self._run(self._description_history, job_id, description_id)

    def _description_history(self, job_id: str, description_id: int) -> list[StoredDescription]:
        current = self._get_description(job_id, description_id)
        rows = self._conn.execute(
            "SELECT version, data, replaced_at FROM description_history "
            "WHERE description_id = ? ORDER BY version",
            (description_id,),
        ).fetchall()
        return [
            StoredDescription(
                id=description_id,
                version=row["version"],
                origin=current.origin,
                description=load_description(row["data"]),
                changed_at=row["replaced_at"],
            )
            for row in rows
        ]

    async def review_state(self, job_id: str) -> tuple[list[StoredDescription], int]:
        """A job's undeleted descriptions and their revision, read together.

        The revision grows with every change to the job's descriptions (each edit or delete
        raises one version by one, an insert adds a row at version 1): it names what an
        approval approved.
        """
        return await self._run(self._review_state, job_id)

    def _review_state(self, job_id: str) -> tuple[list[StoredDescription], int]:
        with self._transaction() as conn:
            (revision,) = conn.execute(
                "SELECT coalesce(sum(version), 0) FROM descriptions WHERE job_id = ?", (job_id,)
            ).fetchone()
            return self._reviewable(job_id), int(revision)

    async def add_event(self, event: OutboxEvent) -> bool:
        """Store a callback; False when one with its event id is already stored."""
        return await self._run(self._add_event, event)

    def _add_event(self, event: OutboxEvent) -> bool:
        with self._transaction() as conn:
            return self._insert_event(conn, event)

    async def count_by_status(self) -> dict[JobStatus, int]:
        return await self._run(self._count_by_status)

    def _count_by_status(self) -> dict[JobStatus, int]:
        counts = dict.fromkeys(JobStatus, 0)
        for row in self._conn.execute("SELECT status, count(*) FROM jobs GROUP BY status"):
            counts[JobStatus(row[0])] = row[1]
        return counts

    # --- outbox ------------------------------------------------------------------------------

    async def jobs_with_pending_events(self) -> list[str]:
        return await self._run(self._jobs_with_pending_events)

    def _jobs_with_pending_events(self) -> list[str]:
        rows = self._conn.execute(
            "SELECT job_id, min(id) AS first FROM outbox WHERE state = 'pending' "
            "GROUP BY job_id ORDER BY first"
        ).fetchall()
        return [row["job_id"] for row in rows]

    @asynccontextmanager
    async def delivering(self, job_id: str) -> AsyncIterator[bool]:
        # One process owns a store file and its outbox: always ours.
        yield True

    async def next_pending_event(self, job_id: str) -> OutboxEvent | None:
        return await self._run(self._next_pending_event, job_id)

    def _next_pending_event(self, job_id: str) -> OutboxEvent | None:
        row = self._conn.execute(
            "SELECT * FROM outbox WHERE state = 'pending' AND job_id = ? ORDER BY id LIMIT 1",
            (job_id,),
        ).fetchone()
        return None if row is None else row_event(row)

    async def settle_event(
        self, event_id: int, state: EventState, attempts: int, error: str | None
    ) -> None:
        await self._run(self._settle_event, event_id, state, attempts, error)

    def _settle_event(
        self, event_id: int, state: EventState, attempts: int, error: str | None
    ) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE outbox SET state = ?, attempts = attempts + ?, last_error = ?, "
                "settled_at = ? WHERE id = ?",
                (state.value, attempts, error, time.time(), event_id),
            )

    async def count_events(self) -> dict[EventState, int]:
        return await self._run(self._count_events)

    def _count_events(self) -> dict[EventState, int]:
        counts = dict.fromkeys(EventState, 0)
        for row in self._conn.execute("SELECT state, count(*) FROM outbox GROUP BY state"):
            counts[EventState(row[0])] = row[1]
        return counts
