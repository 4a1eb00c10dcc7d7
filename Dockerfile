# SRGAN x4 super-resolution service. docs/DEPLOY.md ("The image") has the commands and sizes.
#   GPU (default):  docker build -t srgan-service:0.1.0 .
#   CPU:            docker build -t srgan-service:0.1.0-cpu --build-arg BASE_IMAGE=debian:bookworm-slim \
#                     --build-arg TORCH_FLAVOR=cpu \
#                     --build-arg PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu .
#
# Layers, from the bottom: a slim base, python3, the dependencies (torch and the rest, from a
# hash-locked file), the weights, the code. A code-only change rebuilds and ships the top layer.
#
# The torch CUDA wheels bring their own CUDA runtime, cuBLAS and cuDNN (the nvidia-* wheels of
# the lock), so the base is NVIDIA's `-base-` image: Ubuntu, the CUDA version it is made for
# (CUDA_VERSION, checked against torch's below) and the forward-compatibility setup; the driver
# comes from the host through the NVIDIA container runtime. The CPU build takes any Debian or
# Ubuntu whose python3 the lock has wheels for (3.11 and up for the CPU lock's torch wheels).
# The digest was published for this tag in 2026-09; refresh it with
#   docker buildx imagetools inspect nvidia/cuda:13.0.2-base-ubuntu24.04   (the "Digest:" line)
ARG BASE_IMAGE=nvidia/cuda:13.0.2-base-ubuntu24.04@sha256:2ab6381d970b211fb93853796dc6707eb8a72575a375c422b17cf4d8b2641701

# The base every later stage shares: python3 and the service's user, nothing else.
FROM ${BASE_IMAGE} AS python
ARG DEBIAN_FRONTEND=noninteractive
# A fixed numeric uid lets Kubernetes check runAsNonRoot without reading /etc/passwd.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin srgan

# The dependencies, from requirements/image-${TORCH_FLAVOR}.txt alone: every distribution pinned
# with its hashes (scripts/lock-requirements), installed with --require-hashes and --no-deps.
# This stage reads nothing else from the context, so code changes never reach it.
FROM python AS deps
ARG DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# cu130: PyPI's torch (CUDA 13.0); cpu: torch+cpu, which pip finds through PIP_EXTRA_INDEX_URL
# (PyTorch's CPU index) or in a `wheels/` folder of the build context (offline builds; the
# hashes are checked all the same).
ARG TORCH_FLAVOR=cu130
ARG PIP_EXTRA_INDEX_URL
# A CA bundle for pip where a proxy re-signs TLS, mounted into the build; pip reads PIP_CERT.
ARG PIP_CERT
# `wheel[s]` matches the optional folder without failing when it is absent.
COPY requirements/image-${TORCH_FLAVOR}.txt wheel[s] /tmp/deps/
# The check: torch is the flavour asked for, and a CUDA build matches the base's CUDA (major.minor).
RUN pip install --require-hashes --no-deps --find-links /tmp/deps -r /tmp/deps/image-${TORCH_FLAVOR}.txt \
 && rm -rf /tmp/deps \
 && pip check \
 && python -c "import os, sys, torch; \
flavor, cuda, base = sys.argv[1], torch.version.cuda, os.environ.get('CUDA_VERSION', ''); \
want = None if flavor == 'cpu' else flavor[2:-1] + '.' + flavor[-1]; \
print(f'torch {torch.__version__}, built for CUDA {cuda}; base CUDA {base or None}'); \
assert cuda == want, f'TORCH_FLAVOR={flavor} wants CUDA {want}, torch is built for {cuda}'; \
assert not (cuda and base) or base.startswith(cuda + '.'), f'torch is built for CUDA {cuda}, the base has {base}'" \
    "$TORCH_FLAVOR"

# The project itself, installed into a staging folder and split into two trees that mirror the
# runtime's paths: the weights and the code, each copied as its own layer below.
FROM deps AS app
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model ./model
COPY app ./app
# The weights ship inside the `model` package; fail here rather than at the first request.
# hadolint ignore=DL3013
RUN site=$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))') \
 && pip install --no-deps --no-build-isolation --no-index --target /stage . \
 && mkdir -p "/out/weights$site/model" "/out/code$site" /out/code/opt/venv/bin \
 && mv /stage/model/weights "/out/weights$site/model/" \
 && ls "/out/weights$site/model/weights/srgan_x4.safetensors" \
       "/out/weights$site/model/weights/srresnet_x4.safetensors" \
       "/out/weights$site/model/weights/srgan_real_x4.safetensors" \
 && mv /stage/bin/* /out/code/opt/venv/bin/ \
 && rmdir /stage/bin \
 && mv /stage/* "/out/code$site/"

FROM python AS runtime
# Settings first and layers after them: a rebuild after a code change redoes the top layer only.
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
# Healthy means ready: weights loaded and warmed up (/readyz); a draining replica turns
# unhealthy. The start period covers loading and warm-up. No curl in the image: Python's urllib,
# which fails (exit 1) on a refused connection or any non-2xx answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
CMD ["srgan", "serve", "--host", "0.0.0.0", "--port", "8000"]

COPY --from=deps /opt/venv /opt/venv
COPY --from=app /out/weights/ /
COPY --from=app /out/code/ /

# Last, so that a new revision or date changes the image's metadata and no layer.
ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="srgan-service" \
      org.opencontainers.image.description="SRGAN x4 image super-resolution HTTP service with micro-batching" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
