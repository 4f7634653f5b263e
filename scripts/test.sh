#!/usr/bin/env bash
# Install the project with its test tools, then lint, type-check and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --dev
.venv/bin/ruff check app tests bench
.venv/bin/ruff format --check app tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
