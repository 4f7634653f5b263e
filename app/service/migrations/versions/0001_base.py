"""The schema as it was when migrations began: jobs, descriptions, the callback outbox.

On SQLite every statement is ``IF NOT EXISTS``: a store file written before migrations has
these tables already and only gets stamped; one with the older progress columns has them
moved into ``jobs.progress``.
"""

import sqlite3

from alembic import op

revision = "0001"
down_revision = None

_SQLITE = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    subtitles TEXT,
    status TEXT NOT NULL,
    -- The job's Progress, every field, as a JSON object ('{}': not started).
    progress TEXT NOT NULL DEFAULT '{}',
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created_at);
-- At most one active job per request: duplicates return it instead of queueing again.
CREATE UNIQUE INDEX IF NOT EXISTS jobs_active_request
    ON jobs (url, coalesce(subtitles, '')) WHERE status IN ('queued', 'running');
CREATE TABLE IF NOT EXISTS descriptions (
    job_id TEXT NOT NULL REFERENCES jobs (id),
    scene_index INTEGER NOT NULL,
    start_time REAL NOT NULL,
    -- Every field of the Description, as a JSON object.
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, scene_index)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    type TEXT NOT NULL,
    path TEXT NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at REAL NOT NULL,
    settled_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (state, job_id, id)
"""

_POSTGRESQL = """
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    subtitles TEXT,
    status TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION
);
CREATE INDEX jobs_by_status ON jobs (status, created_at);
CREATE UNIQUE INDEX jobs_active_request
    ON jobs (url, coalesce(subtitles, '')) WHERE status IN ('queued', 'running');
CREATE TABLE descriptions (
    job_id TEXT NOT NULL REFERENCES jobs (id),
    scene_index INTEGER NOT NULL,
    start_time DOUBLE PRECISION NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, scene_index)
);
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    type TEXT NOT NULL,
    path TEXT NOT NULL,
    body BYTEA NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    settled_at DOUBLE PRECISION
);
CREATE INDEX outbox_pending ON outbox (state, job_id, id);
-- Written by the readiness probe.
CREATE TABLE probe (id INTEGER PRIMARY KEY)
"""


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    for statement in (_SQLITE if sqlite else _POSTGRESQL).split(";"):
        op.execute(statement)
    if sqlite:
        from app.service.store import migrate_progress

        raw = bind.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        raw.row_factory = sqlite3.Row
        try:
            migrate_progress(raw)
        finally:
            raw.row_factory = None
