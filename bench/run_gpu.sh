#!/usr/bin/env bash
# The single device command for the GPU benchmark on an H100/H200 (about 9 minutes, under the 10-minute
# limit of one device call):
#
#   bash bench/run_gpu.sh [extra bench.gpu_bench flags]      # results in $OUT (or ./gpu-bench-out)
#
# Installs nothing from a network (the GPU box has none). The box's image has torch with CUDA, numpy,
# pillow, safetensors, httpx and prometheus-client, so every model section runs as is. The service
# section (`srgan serve` on the GPU) also needs fastapi, uvicorn, pydantic(-settings), python-multipart
# and imagecodecs: run bench/gpu_wheels.sh here first and carry build/gpu-wheels; without it that section
# records an import error and the rest still runs.
#
# Writes to $OUT: gpu_bench.json, gpu_bench.md (tables for docs/BENCHMARKS.md), env.txt, log.txt.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out="${OUT:-$PWD/gpu-bench-out}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python="${PYTHON:-python3}"

wheels="${WHEELHOUSE:-build/gpu-wheels}"
if compgen -G "$wheels/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/srgan-site "$wheels"/*.whl && export PYTHONPATH="/tmp/srgan-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    "$python" - <<'EOF'
import importlib
import torch

print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
for name in ("fastapi", "uvicorn", "pydantic", "pydantic_settings", "multipart", "png", "httpx",
             "prometheus_client", "safetensors", "PIL", "triton", "torchvision"):
    try:
        module = importlib.import_module(name)
        print("ok", name, getattr(module, "__version__", ""))
    except Exception as exc:
        print("MISSING", name, type(exc).__name__, exc)
EOF
} >"$out/env.txt" 2>&1
cat "$out/env.txt"

timeout 570 "$python" -m bench.gpu_bench --out "$out" --budget-s 520 "$@" 2>&1 | tee "$out/log.txt"
exit "${PIPESTATUS[0]}"
