"""Alembic's entry point: runs the revisions on the connection :func:`upgrade` opened."""

from alembic import context
from sqlalchemy import text

connection = context.config.attributes["connection"]
if connection.dialect.name == "postgresql":
    # Held to the end of the transaction: processes starting together migrate one by one.
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('describer:migrations'))"))
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
