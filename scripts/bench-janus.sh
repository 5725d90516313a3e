#!/usr/bin/env bash
# Cascade and Janus side by side: the same cascade-load bots run the same
# scenario against each SFU on loopback, and the tool prints both results
# and their ratio.
#
#   scripts/bench-janus.sh                          # 10-person meeting, 20 s
#   scripts/bench-janus.sh --scenario webinar -n 40 --duration 15
#   scripts/bench-janus.sh --json > result.json
#
# Arguments go to cascade-load (see `cascade-load --help`). Environment:
#   BENCH_PIN          1 (default with 2+ CPUs): each SFU runs on CPU
#                      $BENCH_SERVER_CPUS (default 0), the bots on the
#                      others, so neither competes with the load generator;
#                      0: everything shares every CPU
#   BENCH_WORKERS      Cascade media workers (default 1 pinned, else 2)
#   JANUS_EVENT_LOOPS  Janus event_loops, i.e. media threads (default 1
#                      pinned, else 2)
#   JANUS_PORT         Janus HTTP port on 127.0.0.1 (default 18088, away
#                      from the 8088 of a packaged janus service)
#   SIMULCAST=1        Cascade's publishers send q/h/f simulcast
#                      (cascade-load --simulcast); Janus' stay single-layer
#   MAX_LAYER=q|h|f    Cascade's subscribers ask for at most that layer
#                      (--max-layer; default f with SIMULCAST=1)
#   SKIP_BUILD=1       use the existing target/release binaries
#   SERVER_BIN, LOAD_BIN  binaries to use instead of target/release/...
#
# What it does: installs Debian's janus if missing; writes a loopback-only
# configuration from benches/janus/ into a temporary directory (HTTP
# transport on 127.0.0.1, VideoRoom as the only plugin, ICE enforced on `lo`,
# an LD_PRELOAD shim so Janus does not skip the loopback interface); starts
# Janus; runs cascade-load with --spawn-server (Cascade is started and
# stopped by the tool) and --janus; stops Janus. Everything listens on and
# talks to 127.0.0.1 only, and every wait below is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh
SERVER_PREFIX=()
LOAD_PREFIX=()
SERVER_CPUS_ARGS=()
if [ "$PIN" = 1 ]; then
    SERVER_CPUS="${BENCH_SERVER_CPUS:-0}"
    LOAD_CPUS="${BENCH_LOAD_CPUS:-1-$((NCPU - 1))}"
    SERVER_PREFIX=(taskset -c "$SERVER_CPUS")
    LOAD_PREFIX=(taskset -c "$LOAD_CPUS")
    SERVER_CPUS_ARGS=(--server-cpus "$SERVER_CPUS")
    DEFAULT_THREADS=1
else
    DEFAULT_THREADS=2
fi
WORKERS="${BENCH_WORKERS:-$DEFAULT_THREADS}"
EVENT_LOOPS="${JANUS_EVENT_LOOPS:-$DEFAULT_THREADS}"
PORT="${JANUS_PORT:-18088}"
if [ "$#" -eq 0 ]; then
    set -- --scenario meeting -n 10 --duration 20
fi

if ! command -v janus >/dev/null 2>&1; then
    echo "installing Debian janus..." >&2
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q janus >&2
fi
for tool in cc curl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "installing $tool..." >&2
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$([ "$tool" = cc ] && echo gcc || echo curl)" >&2
    fi
done

LIBDIR="$(dirname "$(dpkg -L janus | grep -m1 '/janus/plugins/libjanus_videoroom.so$')")/.."
WORK="$(mktemp -d /tmp/cascade-bench-janus.XXXXXX)"
JANUS_PID=""
cleanup() {
    if [ -n "$JANUS_PID" ] && kill -0 "$JANUS_PID" 2>/dev/null; then
        kill -TERM "$JANUS_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$JANUS_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$JANUS_PID" 2>/dev/null || true
    fi
    mkdir -p target
    cp "$WORK/janus.log" target/bench-janus.log 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/conf" "$WORK/plugins" "$WORK/transports" "$WORK/empty"
ln -s "$LIBDIR/plugins/libjanus_videoroom.so" "$WORK/plugins/"
ln -s "$LIBDIR/transports/libjanus_http.so" "$WORK/transports/"
for f in janus.jcfg janus.transport.http.jcfg janus.plugin.videoroom.jcfg; do
    sed -e "s|@CONFIG_DIR@|$WORK/conf|" -e "s|@PLUGINS_DIR@|$WORK/plugins|" \
        -e "s|@TRANSPORTS_DIR@|$WORK/transports|" -e "s|@EMPTY_DIR@|$WORK/empty|" \
        -e "s|@EVENT_LOOPS@|$EVENT_LOOPS|" -e "s|@HTTP_PORT@|$PORT|" \
        "benches/janus/$f" > "$WORK/conf/$f"
done
cc -shared -fPIC -O2 -o "$WORK/lo_shim.so" benches/janus/lo_shim.c -ldl

echo "starting janus $(janus --version 2>/dev/null | head -1 | sed 's/.*: //') on 127.0.0.1:$PORT, event_loops = $EVENT_LOOPS" >&2
LD_PRELOAD="$WORK/lo_shim.so" "${SERVER_PREFIX[@]}" janus -C "$WORK/conf/janus.jcfg" -F "$WORK/conf" \
    -L "$WORK/janus.log" -N >/dev/null 2>&1 &
JANUS_PID=$!
for i in $(seq 100); do
    if curl -sf "http://127.0.0.1:$PORT/janus/info" >/dev/null 2>&1; then
        break
    fi
    if [ "$i" = 100 ] || ! kill -0 "$JANUS_PID" 2>/dev/null; then
        echo "janus did not come up; its log:" >&2
        tail -30 "$WORK/janus.log" >&2 || true
        exit 1
    fi
    sleep 0.1
done

if [ "${#SIMULCAST_ARGS[@]}" -gt 0 ]; then
    VIDEO="cascade video: ${SIMULCAST_ARGS[*]}; janus video: single layer (the Janus bots do not simulcast)"
else
    VIDEO="video: single layer on both"
fi
echo "cascade: $WORKERS media workers; janus: event_loops = $EVENT_LOOPS; pinned: $PIN${SERVER_CPUS:+ (servers on CPU $SERVER_CPUS, bots on $LOAD_CPUS)}; $VIDEO; args: $*" >&2
"${LOAD_PREFIX[@]}" "$LOAD" --spawn-server \
    --server-bin "$SERVER" --workers "$WORKERS" "${SERVER_CPUS_ARGS[@]}" \
    --janus "http://127.0.0.1:$PORT/janus" --janus-pid "$JANUS_PID" "$@" "${SIMULCAST_ARGS[@]}"
