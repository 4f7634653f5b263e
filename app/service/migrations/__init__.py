"""Schema migrations of the job store (Alembic), for SQLite and PostgreSQL alike.

Every store runs :func:`upgrade` when it opens, so a store file or database written by an
older version is brought to the current schema first. Revisions are plain SQL in
``versions/``; one revision serves both databases (``op.get_bind().dialect.name`` tells
them apart where their SQL differs).

To change the schema, add a revision: copy the newest file in ``versions/``, give it the next
number as ``revision`` and the newest one's as ``down_revision``, and write its ``upgrade()``
(``op.execute("ALTER TABLE ...")``). Never edit a revision that was released: files and
databases written by it exist. ``0001`` is the schema as it was when migrations began
(``CREATE ... IF NOT EXISTS``, so store files written before then open too).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

__all__ = ["HEAD", "upgrade"]

#: The newest revision: what a store holds once opened.
HEAD = "head"


def upgrade(url: str, revision: str = HEAD) -> None:
    """Bring the database at ``url`` (a SQLAlchemy URL) to ``revision`` (the newest one;
    tests name older ones to write the files of older versions).

    Concurrent callers (several processes starting at once) are safe: on PostgreSQL the
    migration holds an advisory lock, and SQLite serialises writers itself.
    """
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()
