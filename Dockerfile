# The one image every Tripwire service runs: api, scheduler/watcher, workers and Flower.
#
# CPU by default: torch comes from PyTorch's CPU wheel index, pinned like the Makefile's.
# GPU workers build the same file with the CUDA wheel instead, e.g.
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t tripwire-gpu .
# (pick the cuXXX index that matches the GPU hosts' driver; docker-compose.yml does this for
# the worker-gpu service through TRIPWIRE_TORCH_GPU_INDEX_URL). The host needs the NVIDIA
# Container Toolkit; the CUDA runtime libraries come with the wheel.
#
# Offline by default, but not hard-wired: Tripwire sets the HF_*_OFFLINE variables itself when
# it starts (tripwire/offline.py), and clears them when TRIPWIRE_ALLOW_HUB=1. Benchmark data is
# read from HF_HOME, a volume in the compose deployment (fill it with `tripwire fetch-data`).
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG FLOWER_VERSION=2.2.0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/var/cache/huggingface \
    TRIPWIRE_HOME=/var/lib/tripwire

# torch first and pinned, from the chosen index, so the project's "torch>=2.2" is already met
# and pip does not pull a default (CUDA) build.
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[inspect]" "flower==${FLOWER_VERSION}"

COPY evals ./evals
COPY triggers ./triggers
COPY docker/flowerconfig.py docker/flower_healthcheck.py ./docker/
COPY docker/worker_healthcheck.py /usr/local/bin/tripwire-worker-healthcheck

RUN useradd --create-home --uid 1000 tripwire \
    && mkdir -p /var/lib/tripwire /var/cache/huggingface \
    && chown tripwire /var/lib/tripwire /var/cache/huggingface \
    && chmod 0755 /usr/local/bin/tripwire-worker-healthcheck
USER tripwire

EXPOSE 8000
CMD ["tripwire", "serve", "--host", "0.0.0.0", "--port", "8000"]
