#!/usr/bin/env bash
# Does memory come back after a join storm? Starts a server with defaults
# (HTTP on 127.0.0.1:$PORT, loopback only), measures its idle RSS, then
# BURSTS times: 300 participants join at once (30 rooms of 10, audio only,
# no join spacing), stay 4 s and all leave; RSS is read WAIT seconds later,
# with the peak thread count during the burst. The last line splits the
# final RSS into heap (anonymous) and the binary's code pages (file-backed)
# the joins touched.
#
#   scripts/bench-memory.sh
#   BURSTS=7 SKIP_BUILD=1 SERVER_BIN=/path/to/cascade scripts/bench-memory.sh
#
# Environment: BURSTS (3), WAIT (6 seconds), PORT (18291), SKIP_BUILD=1,
# SERVER_BIN / LOAD_BIN. Bounded: every load run has a 60 s timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh

BURSTS="${BURSTS:-3}"
WAIT="${WAIT:-6}"
PORT="${PORT:-18291}"
LOG="$(mktemp)"

"$SERVER" --http-addr "127.0.0.1:$PORT" >"$LOG" 2>&1 &
PID=$!
SAMPLER=""
cleanup() {
    [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    rm -f "$LOG" "$LOG.threads"
}
trap cleanup EXIT

for _ in $(seq 1 50); do
    grep -q "Cascade is running" "$LOG" && break
    sleep 0.1
done
grep -q "Cascade is running" "$LOG" || { cat "$LOG" >&2; echo "the server did not start" >&2; exit 1; }
sleep 2

rss_mb() { awk '/^VmRSS/{printf "%.1f", $2 / 1024}' "/proc/$PID/status"; }
threads() { ls "/proc/$PID/task" | wc -l; }
split() {
    awk '/^[0-9a-f]+-/{file = ($6 != "")} /^Rss:/{if (file) f += $2; else a += $2}
        END {printf "heap and stacks %.1f MB, code and other file pages %.1f MB", a / 1024, f / 1024}' \
        "/proc/$PID/smaps"
}

IDLE="$(rss_mb)"
echo "idle: RSS $IDLE MB, $(threads) threads ($(split))"
for i in $(seq 1 "$BURSTS"); do
    (while kill -0 "$PID" 2>/dev/null; do threads; sleep 0.05; done) >"$LOG.threads" &
    SAMPLER=$!
    timeout 60 "$LOAD" --cascade "127.0.0.1:$PORT" --scenario rooms --rooms 30 -n 10 --no-video \
        --join-interval-ms 0 --duration 3 --warmup 1 -q >/dev/null
    sleep "$WAIT"
    kill "$SAMPLER" 2>/dev/null || true
    wait "$SAMPLER" 2>/dev/null || true
    SAMPLER=""
    PEAK="$(sort -n "$LOG.threads" | tail -1)"
    echo "burst $i: RSS $(rss_mb) MB ${WAIT} s after (idle $IDLE MB), peak $PEAK threads, $(threads) now"
done
echo "after the bursts: $(split)"
