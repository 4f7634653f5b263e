#!/usr/bin/env bash
# Install everything the service needs into ./.venv: system packages (when run as root on
# Debian/Ubuntu), PyTorch and torchvision (see scripts/torch.sh), the project, and WordNet for
# METEOR.
#
#   bash scripts/install.sh          # runtime only
#   bash scripts/install.sh --dev    # plus test and lint tools
#
# Environment: PYTHON (interpreter for the venv, default python3), TORCH_VERSION (default
# 2.14.1), TORCHVISION_VERSION (default the release made for that torch; none: no
# torchvision), TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cu128 to pick a build),
# EXTRAS (optional dependency groups, e.g. scale for DESCRIBER_BACKEND=temporal).
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[[ "${1:-}" == "--dev" ]] && dev=1

# espeak-ng: the default voice of narration (and the speech of the tests' media).
packages=(ffmpeg wordnet-base wordnet-sense-index espeak-ng)
# Chromium: the browser the review page's tests drive through Playwright (no browser download).
((dev)) && packages+=(chromium)
# PostgreSQL: the tests of the temporal backend start their own server.
((dev)) && packages+=(postgresql)
bash scripts/system-packages.sh "${packages[@]}"

[[ -x .venv/bin/python ]] || "${PYTHON:-python3}" -m venv .venv

# PyTorch and the torchvision made for it, before the project so that pip keeps them; a torch
# already there (a user's CUDA build) is kept (see scripts/torch.sh).
bash scripts/torch.sh .venv/bin/python

extras="${EXTRAS:-}"
((dev)) && extras="dev${extras:+,$extras}"
.venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"

# NLTK data under the venv, where NLTK looks by default (sys.prefix/nltk_data).
.venv/bin/python -m app.pipeline.wordnet .venv/nltk_data
