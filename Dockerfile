# SRGAN x4 super-resolution service. docs/DEPLOY.md has the commands.
#   GPU (default):  docker build -t srgan-service:0.1.0 .
#   CPU:            docker build -t srgan-service:0.1.0-cpu --build-arg BASE_IMAGE=ubuntu:24.04 \
#                     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu .
# The torch wheels carry their own CUDA and cuDNN libraries, so the base is the plain CUDA
# runtime (not the -cudnn- variant, which would ship cuDNN twice). Any Debian or Ubuntu base
# with Python >= 3.11 works: python3 comes from its own archive.
ARG BASE_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04

FROM ${BASE_IMAGE} AS builder
ARG DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, in a layer of its own: it is most of the image and changes least often.
# TORCH_WHEEL_DIR, a folder of the build context holding a torch wheel (allowed by
# .dockerignore: `wheels`), wins over the index; otherwise TORCH_SPEC from TORCH_INDEX_URL.
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=https://pypi.org/simple
ARG TORCH_WHEEL_DIR=
# A CA bundle for pip where a proxy re-signs TLS, mounted into the build; pip reads PIP_CERT.
ARG PIP_CERT
# Pinned all the same: by TORCH_SPEC, or by the wheel's own file name.
# hadolint ignore=DL3013
RUN --mount=type=bind,target=/context \
    if [ -n "$TORCH_WHEEL_DIR" ]; then \
      pip install /context/"$TORCH_WHEEL_DIR"/torch-*.whl; \
    else \
      pip install --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC"; \
    fi

WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY model ./model
# The weights ship inside the `model` package; fail here rather than at the first request.
RUN pip install . \
 && ls /opt/venv/lib/python3*/site-packages/model/weights/srgan_x4.safetensors \
       /opt/venv/lib/python3*/site-packages/model/weights/srresnet_x4.safetensors

FROM ${BASE_IMAGE} AS runtime
ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG DEBIAN_FRONTEND=noninteractive
LABEL org.opencontainers.image.title="srgan-service" \
      org.opencontainers.image.description="SRGAN x4 image super-resolution HTTP service with micro-batching" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

# The venv's python is a link to this interpreter, the same one the builder stage used.
# A fixed numeric uid lets Kubernetes check runAsNonRoot without reading /etc/passwd.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin srgan

COPY --from=builder /opt/venv /opt/venv
# HOME=/tmp: the user has no home, and /tmp is the one writable place under a read-only root.
# NVIDIA_*: what the NVIDIA container runtime exposes; no effect without a GPU.
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

USER 10001:10001
EXPOSE 8000
# Healthy means ready: weights loaded and warmed up (/readyz), which is what compose's
# `depends_on: service_healthy` waits for; a draining replica turns unhealthy. The start
# period covers loading and warm-up. No curl in the image: Python's urllib, which fails
# (exit 1) on a refused connection or any non-2xx answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
CMD ["srgan", "serve", "--host", "0.0.0.0", "--port", "8000"]
