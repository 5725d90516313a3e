#!/usr/bin/env bash
# How much a burst of joins delays media already flowing on the same worker.
#
# Starts Cascade (1 worker) on loopback, runs cascade-load's 4 meetings of 10
# (the bots join 10 ms apart, so the later rooms join while the first ones
# already send), then reads the server's forward-delay histogram for the
# whole run, joins included, and prints how many datagrams were forwarded
# more than 5 / 10 / 25 / 100 ms after they arrived. cascade-load's own
# figures cover only the window after the joins.
#
#   scripts/bench-joins.sh             # 3 runs
#   RUNS=5 scripts/bench-joins.sh
#
# Environment: RUNS (3), PORT (HTTP port on 127.0.0.1, 18180), SKIP_BUILD=1,
# SERVER_BIN / LOAD_BIN, BENCH_PIN (1 with 2+ CPUs: server on CPU 0, bots on
# the others). Loopback only; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-3}"
PORT="${PORT:-18180}"
# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh
server_prefix=() load_prefix=()
if [ "$PIN" = 1 ]; then
    server_prefix=(taskset -c 0)
    load_prefix=(taskset -c "1-$((NCPU - 1))")
fi

server_pid=""
metrics=$(mktemp)
cleanup() {
    if [ -n "$server_pid" ]; then
        kill -INT "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}
trap 'cleanup; rm -f "$metrics"' EXIT

for run in $(seq 1 "$RUNS"); do
    "${server_prefix[@]}" "$SERVER" --http-addr "127.0.0.1:$PORT" --media-addr 127.0.0.1 \
        --workers 1 >/dev/null 2>&1 &
    server_pid=$!
    for _ in $(seq 1 50); do
        curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    summary=$("${load_prefix[@]}" "$LOAD" --cascade "127.0.0.1:$PORT" --server-pid "$server_pid" \
        --scenario rooms --rooms 4 -n 10 --join-interval-ms 10 --duration 5 --quiet)
    curl -sf --max-time 5 "http://127.0.0.1:$PORT/metrics" >"$metrics"
    cleanup
    server_pid=""
    joins=$(grep -E "join p50 / p95 / p99" <<<"$summary" | sed 's/ \+/ /g')
    python3 - "$run" "$joins" "$metrics" <<'EOF'
import re, sys
buckets = {}
for line in open(sys.argv[3]):
    m = re.match(r'cascade_worker_forward_delay_seconds_bucket\{.*le="([^"]+)".*\} (\d+)', line)
    if m:
        le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
        buckets[le] = buckets.get(le, 0) + int(m.group(2))
total = buckets[float("inf")]
late = "  ".join(f">{int(le * 1000)} ms: {total - buckets[le]}" for le in (0.005, 0.01, 0.025, 0.1))
print(f"run {sys.argv[1]}: {total} datagrams, forwarded late {late};{sys.argv[2]}")
EOF
done
