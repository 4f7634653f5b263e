"""``python -m app.service``: run the HTTP service with settings from the environment."""

from app.service.serve import run_server

run_server()
