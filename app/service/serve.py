"""Run the service under uvicorn, with logging set up for it."""

from __future__ import annotations

import socket
import sys
from typing import TYPE_CHECKING, Any

import uvicorn

from app.config import Settings, get_settings
from app.quiet import disable_library_progress_bars, route_library_logs

if TYPE_CHECKING:
    from fastapi import FastAPI

#: uvicorn's exit status when the app did not start.
STARTUP_FAILURE = 3

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


class _Server(uvicorn.Server):
    """uvicorn's server, ending the app's event streams as shutdown begins: uvicorn waits for
    open responses before the lifespan shutdown, and a stream following a queued job would
    otherwise hold it for the whole grace period."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        service = getattr(self.app.state, "service", None)
        if service is not None:
            service.close_streams()
        await super().shutdown(sockets)


def run_server(settings: Settings | None = None) -> None:
    """Serve the API until SIGINT or SIGTERM, then shut down gracefully.

    Args:
        settings: The settings; None reads them from the environment (``DESCRIBER_*``).
    """
    from app.api import create_app

    settings = settings or get_settings()
    # Logs only: a bar drawn to a stderr pipe whose reader went away (``2>&1 | head``) blocked
    # the main thread in tqdm's lock, and with it /healthz and the signal handlers.
    disable_library_progress_bars()
    route_library_logs()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=logging_config(settings.log_level),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        # One process owns the SQLite store and the model: never several uvicorn workers.
        workers=None,
    )
    server = _Server(config, app)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
