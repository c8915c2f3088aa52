# syntax=docker/dockerfile:1
#
# agentcred operator image.
#
#   docker build -t ghcr.io/agentcred/agentcred:0.1.0 .
#
# Two stages on the same base image (the venv's interpreter symlink points at the
# base image's python3.11, so both stages must match). PYTHON_IMAGE may be any image
# with Python 3.11 and its venv module: the testbed node builds on a Debian bookworm
# image made by mmdebstrap (agentcred_testbed/images.py), as no registry is reachable.
ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: install agentcred with every backend into a self-contained venv ---
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# README*/LICENSE* are optional (globs may match nothing); pyproject.toml is required.
COPY pyproject.toml README* LICENSE* ./
COPY operator/ ./operator/

# Non-editable install; pip byte-compiles into the venv here, so the read-only
# final image never needs to write .pyc files.
RUN pip install --upgrade pip \
 && pip install ".[all]"

# --- final: runtime only, non-root ---
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="agentcred" \
      org.opencontainers.image.description="Kubernetes operator that gives AI agents short-lived, task-scoped credentials" \
      org.opencontainers.image.source="https://github.com/agentcred/agentcred" \
      org.opencontainers.image.licenses="Apache-2.0"

# USER: the numeric UID below has no passwd entry, and Kopf asks getpass.getuser() for
# its identity at start, which then fails ("uid not found: 65532") unless USER is set
# (found by running the image on the testbed node, issue #11).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    USER=agentcred

COPY --from=builder /opt/venv /opt/venv

# Numeric UID/GID so Kubernetes can verify runAsNonRoot; no passwd entry needed.
USER 65532:65532

# 8080: Kopf liveness endpoint (/healthz); 9090: Prometheus metrics.
EXPOSE 8080 9090

ENTRYPOINT ["/opt/venv/bin/agentcred"]
CMD ["run"]
