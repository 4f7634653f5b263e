"""Run the service under uvicorn, with logging set up for it."""

from __future__ import annotations

from typing import Any

from app.config import Settings, get_settings
from app.quiet import disable_library_progress_bars, route_library_logs

#: Seconds uvicorn waits for open requests before the lifespan shutdown (jobs then stop at
#: their next safe point).
GRACEFUL_SHUTDOWN_SECONDS = 20


def logging_config(level: str) -> dict[str, Any]:
    """A ``logging.config`` dict: one line per record on stderr, with time and logger name."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "app": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }


def run_server(settings: Settings | None = None) -> None:
    """Serve the API until SIGINT or SIGTERM, then shut down gracefully.

    Args:
        settings: The settings; None reads them from the environment (``DESCRIBER_*``).
    """
    import uvicorn

    from app.api import create_app

    settings = settings or get_settings()
    # Logs only: a bar drawn to a stderr pipe whose reader went away (``2>&1 | head``) blocked
    # the main thread in tqdm's lock, and with it /healthz and the signal handlers.
    disable_library_progress_bars()
    route_library_logs()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=logging_config(settings.log_level),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        # One process owns the SQLite store and the model: never several uvicorn workers.
        workers=None,
    )
