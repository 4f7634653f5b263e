#!/usr/bin/env bash
# GPU figures (bench/gpu.py) on a bare GPU machine that has Python 3.12 with PyTorch (CUDA),
# transformers and accelerate, but no network: the project's other dependencies travel as
# wheels in .whl/, with WordNet for METEOR as an archive beside them.
#
#   bash bench/gpu.sh prepare        # here, with PyPI: fill .whl/ (about 50 MiB)
#   bash bench/gpu.sh [OUT_DIR [ARGS]]  # there: install from .whl/, run bench/gpu.py ARGS
#                                       # (e.g. --sections 3,4); tables in OUT_DIR/gpu.md
#
# OUT_DIR defaults to $OUT (the device tool's output folder), else bench/results. The run
# stops itself after GPU_BENCH_TIMEOUT seconds (default 470); the tables written by then stay.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the project needs that the GPU machine's image lacks (torch, transformers, accelerate,
# numpy, pillow, opencv, tqdm, click, regex, joblib, httpx, nvidia-ml-py are there). Pinned
# to the versions the test suite runs with; pysrt has no wheel on PyPI, so one is built.
WHEELS=(
    av==18.1.0 scenedetect==0.7.2 nltk==3.10.4 pydantic==2.14.4 pydantic-core==2.50.5
    pydantic-settings==2.16.3 annotated-types==0.8.0 typing-inspection==0.4.5
    python-dotenv==1.2.4 pysubs2==1.8.1 webvtt-py==0.6.0 chardet==7.7.0 platformdirs==4.14.8
    tenacity==9.2.1 pycountry==26.2.16
)
SDISTS=(pysrt==1.1.2)

if [[ "${1:-}" == "prepare" ]]; then
    [[ -d .venv/nltk_data ]] || { echo "gpu.sh: run scripts/install.sh first (WordNet)" >&2; exit 1; }
    rm -rf .whl && mkdir .whl
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"
    python3 -m pip wheel --quiet --no-deps -w .whl "${SDISTS[@]}"
    tar -C .venv -cJf .whl/nltk_data.tar.xz nltk_data
    du -sh .whl
    exit 0
fi

out=${1:-${OUT:-bench/results}}
shift || true
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/gpu-bench-site .whl/*.whl
# WordNet is needed by the sections that describe (METEOR); a scan-only run may leave it behind.
if [[ -f .whl/nltk_data.tar.xz ]]; then
    mkdir -p /tmp/gpu-bench-nltk && tar -C /tmp/gpu-bench-nltk -xJf .whl/nltk_data.tar.xz
fi
export PYTHONPATH=/tmp/gpu-bench-site:$PWD NLTK_DATA=/tmp/gpu-bench-nltk/nltk_data
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
timeout "${GPU_BENCH_TIMEOUT:-470}" python3 bench/gpu.py --out "$out/gpu.md" "$@" 2>&1 | tee "$out/gpu.log"
