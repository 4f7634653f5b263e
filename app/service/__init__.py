"""The HTTP service around the pipeline: durable jobs, a worker pool and callbacks to core.

``run_server`` runs it under uvicorn (``python -m app serve`` or ``python -m app.service``).
"""

from app.service.server import run_server

__all__ = ["run_server"]
