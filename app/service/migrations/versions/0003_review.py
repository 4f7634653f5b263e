"""Review (issue 14): descriptions get an id, a version, an origin and a deleted flag, and the
versions a reviewer's change replaced are kept in ``description_history``.

Descriptions were keyed by (job_id, scene_index); that key stays unique for the pipeline's
own descriptions (a job run again after a crash does not add one twice), while a reviewer's
inserts may share a scene. SQLite cannot change a primary key, so there the table is rebuilt
with the rows in time order.
"""

from alembic import op

revision = "0003"
down_revision = "0002"

_SQLITE_REBUILD = """
CREATE TABLE descriptions_keyed (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    scene_index INTEGER NOT NULL,
    start_time REAL NOT NULL,
    -- Every field of the Description, as a JSON object.
    data TEXT NOT NULL,
    -- Raised by one on every edit or delete (the review API checks it).
    version INTEGER NOT NULL DEFAULT 1,
    -- machine (the pipeline) or reviewer (inserted through the review API).
    origin TEXT NOT NULL DEFAULT 'machine',
    -- Deleted by a reviewer: kept, with its history, but no longer served.
    deleted INTEGER NOT NULL DEFAULT 0
);
INSERT INTO descriptions_keyed (job_id, scene_index, start_time, data)
    SELECT job_id, scene_index, start_time, data FROM descriptions
    ORDER BY start_time, scene_index;
DROP TABLE descriptions;
ALTER TABLE descriptions_keyed RENAME TO descriptions;
CREATE TABLE description_history (
    description_id INTEGER NOT NULL REFERENCES descriptions (id),
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    replaced_at REAL NOT NULL,
    PRIMARY KEY (description_id, version)
)
"""

_POSTGRESQL_ALTER = """
ALTER TABLE descriptions DROP CONSTRAINT descriptions_pkey;
ALTER TABLE descriptions ADD COLUMN id BIGSERIAL PRIMARY KEY;
ALTER TABLE descriptions ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE descriptions ADD COLUMN origin TEXT NOT NULL DEFAULT 'machine';
ALTER TABLE descriptions ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
CREATE TABLE description_history (
    description_id BIGINT NOT NULL REFERENCES descriptions (id),
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    replaced_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (description_id, version)
)
"""

_INDEXES = """
-- One machine description per scene: a job run again after a crash does not add it twice.
CREATE UNIQUE INDEX descriptions_machine_scene
    ON descriptions (job_id, scene_index) WHERE origin = 'machine';
CREATE INDEX descriptions_by_time ON descriptions (job_id, start_time)
"""


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in (_SQLITE_REBUILD if sqlite else _POSTGRESQL_ALTER).split(";"):
        op.execute(statement)
    for statement in _INDEXES.split(";"):
        op.execute(statement)
