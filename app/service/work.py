"""``python -m app worker``: a worker process of the ``temporal`` backend. It loads the
model once, takes up to ``DESCRIBER_WORKERS`` jobs at once from the Temporal task queue, and
delivers its jobs' callbacks; SIGTERM or SIGINT stops it at the jobs' next safe point (they
then run again on another worker)."""

from __future__ import annotations

import asyncio
import logging
import logging.config
import signal

from app.config import Settings
from app.quiet import disable_library_progress_bars, route_library_logs
from app.service.serve import logging_config
from app.service.service import Service

logger = logging.getLogger(__name__)


def run_worker(settings: Settings) -> int:
    """Run a worker until SIGTERM or SIGINT; returns the exit status (1: the model or the
    backend could not be loaded, as logged)."""
    logging.config.dictConfig(logging_config(settings.log_level))
    disable_library_progress_bars()
    route_library_logs()
    return asyncio.run(_work(settings))


async def _work(settings: Settings) -> int:
    service = Service(settings, runs_jobs=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    try:
        started = asyncio.create_task(service.started())
        stopping = asyncio.create_task(stop.wait())
        # A signal during the model's loading stops the worker too.
        await asyncio.wait({started, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if started.done() and not started.result():
            stopping.cancel()
            return 1
        await stopping
        logger.info("stopping: running jobs stop at their next safe point")
        return 0
    finally:
        await service.stop()
