# The audio-description service on a CUDA runtime: uvicorn under supervisord, as a non-root
# user, with the job store and the model cache in volumes.
#
#   docker build -t audio-describer .
#   docker run --gpus all -p 8000:8000 -v describer-data:/data -v model-cache:/models \
#       -e DESCRIBER_API_TOKEN=... audio-describer
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

# python3 (3.12 on Ubuntu 24.04) with venv; supervisor runs the service; curl for the
# health check. scripts/install.sh adds ffmpeg, WordNet and espeak-ng (the narration voice).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 python3-venv supervisor curl ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/describer
COPY pyproject.toml README.md ./
COPY scripts ./scripts
COPY app ./app

# PyPI's torch 2.14.1 and torchvision 0.29.1 (scripts/torch.sh) are CUDA 13.0 builds that
# carry their CUDA libraries (host driver 580 or newer); pass an index to pick another build
# (e.g. https://download.pytorch.org/whl/cpu for CPU only).
ARG TORCH_INDEX_URL=""
# Optional dependency groups: EXTRAS=scale for DESCRIBER_BACKEND=temporal (docker-compose.scale.yml).
ARG EXTRAS=""
RUN TORCH_INDEX_URL="${TORCH_INDEX_URL}" EXTRAS="${EXTRAS}" PYTHON=python3 bash scripts/install.sh \
    && rm -rf /var/lib/apt/lists/* /root/.cache

COPY supervisord.conf /etc/supervisor/describer.conf

RUN useradd --system --uid 10001 --create-home --home-dir /home/describer describer \
    && mkdir -p /data /models \
    && chown describer:describer /data /models

ENV DESCRIBER_HOST=0.0.0.0 \
    DESCRIBER_PORT=8000 \
    DESCRIBER_DB_PATH=/data/describer.sqlite3 \
    DESCRIBER_CACHE_DIR=/models/hub \
    HF_HOME=/models \
    PATH=/opt/describer/.venv/bin:$PATH

# The job store and outbox must outlive the container; the model cache saves a download.
VOLUME ["/data", "/models"]

USER describer
EXPOSE 8000

# Liveness only: /readyz turns 200 once the model is loaded (minutes for a first download).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1

CMD ["supervisord", "-c", "/etc/supervisor/describer.conf"]
