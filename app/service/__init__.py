"""The HTTP service around the pipeline: durable jobs, a worker pool and callbacks to core.

``app.service.serve.run_server`` runs it under uvicorn (``python -m app serve`` or
``python -m app.service``); ``app.api.create_app`` builds the ASGI app.
"""
