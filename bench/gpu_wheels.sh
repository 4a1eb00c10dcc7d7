#!/usr/bin/env bash
# Downloads, HERE (with network), the service's pure-Python dependencies that the GPU box's image lacks,
# as wheels for its Python 3.12 on x86-64, into build/gpu-wheels (ignored by git). Carry that folder to
# the GPU box; bench/run_gpu.sh installs from it without a network. The image already has torch (CUDA),
# numpy, pillow, safetensors, httpx, h11, anyio, click, prometheus-client and typing-extensions.
# (fastapi 0.165 imports opentelemetry-api unconditionally; a rehearsal in a venv holding only the
# image's packages found that.)
#
# Versions are those this repository is tested with; pydantic-core is the one binary wheel. torchvision
# (optional: JPEG output encoded on the GPU by nvJPEG) must match the box's torch, 2.11.0+cu130: PyPI's
# 0.26.0 wheel is that build (torch==2.11.0, version 0.26.0+cu130, libnvjpeg.so.13 bundled), 7.5 MB.
# imagecodecs (libpng for 16-bit PNG, imported by the service's decoder) is the largest, 26 MB.
#
#   bash bench/gpu_wheels.sh [DEST]           # the service's wheels (bench/run_gpu.sh), ~53 MB
#   bash bench/gpu_wheels.sh DEST --train     # what `srgan train` needs: no imagecodecs, no torchvision,
#                                             # so the training data fits beside it in one 64 MiB carry
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${1:-build/gpu-wheels}"
serving=(imagecodecs==2026.10.10 torchvision==0.26.0)
[[ "${2:-}" == "--train" ]] && serving=()
mkdir -p "$dest"
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$dest" \
    fastapi==0.165.0 starlette==1.10.0 annotated-doc==0.0.7 uvicorn==0.54.0 \
    pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2 \
    pydantic-settings==2.14.1 python-dotenv==1.2.2 python-multipart==0.0.34 \
    opentelemetry-api==1.45.2 tqdm==4.70.1 "${serving[@]}"
du -sh "$dest"
