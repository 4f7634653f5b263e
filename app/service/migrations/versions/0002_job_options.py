"""Job options (issue 13): ``jobs.options``, the job's ``JobOptions`` that differ from the
defaults as a JSON object (``'{}'``: all defaults, as every older job), and the active-request
index widened to it, so that the same video asked with other options (audio) is another job.
"""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.execute("ALTER TABLE jobs ADD COLUMN options TEXT NOT NULL DEFAULT '{}'")
    op.execute("DROP INDEX jobs_active_request")
    op.execute(
        "CREATE UNIQUE INDEX jobs_active_request ON jobs (url, coalesce(subtitles, ''), options) "
        "WHERE status IN ('queued', 'running')"
    )
