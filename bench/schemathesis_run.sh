#!/usr/bin/env bash
# Schema-driven fuzzing of the HTTP API: no request that /openapi.json allows (or nearly allows) may
# produce a 5xx other than the documented 503/504.
#
# Starts `srgan serve` on 127.0.0.1 with tiny random weights (fast on a CPU), points schemathesis at its
# /openapi.json with the `not_a_server_error` check, a bounded number of examples per operation and a
# time budget, then stops the server and counts unhandled errors in its log.
#
#   bench/schemathesis_run.sh                        # 25 examples per operation, at most 180 s
#   MAX_EXAMPLES=10 MAX_TIME=60 bench/schemathesis_run.sh
#
# Needs `pip install schemathesis` (a test tool, not a project dependency). Exit status: schemathesis's.
set -euo pipefail

cd "$(dirname "$0")/.."
MAX_EXAMPLES="${MAX_EXAMPLES:-25}"
MAX_TIME="${MAX_TIME:-180}"
SEED="${SEED:-1}"
PYTHON="${PYTHON:-python}"

work="$(mktemp -d)"
server_pid=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$PYTHON" -c "import sys; from pathlib import Path; from bench.serving import write_tiny_weights; \
write_tiny_weights(Path(sys.argv[1]))" "$work/weights"
port="$("$PYTHON" -c "from bench.serving import free_port; print(free_port())")"
base="http://127.0.0.1:$port"

SRGAN_DEVICE=cpu SRGAN_WEIGHTS_DIR="$work/weights" SRGAN_TILE=16 SRGAN_MAX_INPUT_PIXELS=65536 SRGAN_TILE_PAD=4 SRGAN_MAX_BATCH=4 \
    SRGAN_REQUEST_TIMEOUT_S=30 SRGAN_MAX_UPLOAD_BYTES=2000000 \
    "$PYTHON" -m app.cli serve --host 127.0.0.1 --port "$port" >"$work/server.log" 2>&1 &
server_pid=$!

for _ in $(seq 1 300); do
    if curl -fsS "$base/readyz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then cat "$work/server.log"; exit 1; fi
    sleep 0.2
done
curl -fsS "$base/readyz" >/dev/null

status=0
schemathesis run "$base/openapi.json" \
    --checks not_a_server_error \
    --max-examples "$MAX_EXAMPLES" \
    --max-time "$MAX_TIME" \
    --seed "$SEED" \
    --workers 1 \
    --request-timeout 60 \
    --generation-database none \
    --suppress-health-check all \
    --no-color \
    --report-dir "$work/report" || status=$?

echo "server: $(grep -c ' -> ' "$work/server.log" || true) requests logged;" \
    "unhandled errors: $(grep -c 'unhandled error' "$work/server.log" || true);" \
    "responses by status: $(grep -o ' -> [0-9]*' "$work/server.log" | sort | uniq -c | tr -s ' \n' ' ')"
exit "$status"
