#!/usr/bin/env bash
# Cascade's key load measurements on this machine, each a short cascade-load
# run against a server the tool starts itself (loopback only, bounded):
#
#   cpu       webinar, 1 publisher -> 200 viewers, video only, 1 worker:
#             server CPU per forwarded ~1200-byte video packet
#   memory    10-person meeting: server RSS per participant
#   capacity  many 10-person meetings, 1 and 2 workers, rising load: the
#             highest forwarding rate with no loss and no stall
#   latency   4 such meetings, about half the 1-worker capacity, 3 runs
#   simulcast the 10-person meeting twice, 1 worker: publishers sending one
#             layer, then q/h/f simulcast (subscribers asking for at most
#             MAX_LAYER, default f): server CPU per forwarded packet of each
#
#   scripts/bench-cascade.sh            # everything (~11 minutes)
#   scripts/bench-cascade.sh cpu memory # some of it
#   SIMULCAST=1 MAX_LAYER=h scripts/bench-cascade.sh memory latency
#
# Results: one JSON per run in target/bench/, and a table at the end.
# Environment: DURATION (window seconds, default 15), SKIP_BUILD=1,
# SIMULCAST=1 (every run but `simulcast`'s: publishers send q/h/f simulcast;
# result names end in -simulcast), MAX_LAYER=q|h|f (subscribers ask for at
# most that layer; names end in -max-LAYER),
# QUIET_WAIT (seconds to wait for an idle machine before each run, 120),
# SERVER_BIN / LOAD_BIN (binaries to use instead of target/release/...),
# BENCH_PIN (1, the default with 2+ CPUs: 1-worker runs put the server on
# CPU 0 and the bots on the other CPUs, so the two do not compete; 0: no
# pinning). 2-worker runs are never pinned: they need every CPU.
#
# The bots share the machine with the server; each run reports the cores
# the server, the load generator and everything else used. Numbers taken
# while other work runs ("other load" well above 0) are not comparable.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-15}"
QUIET_WAIT="${QUIET_WAIT:-120}"
OUT=target/bench
mkdir -p "$OUT"
if [ "$#" -eq 0 ]; then
    set -- cpu memory capacity latency simulcast
fi
# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh

# Waits (bounded) until the machine is mostly idle: under 0.3 busy cores
# over 2 seconds.
wait_quiet() {
    local waited=0
    while [ "$waited" -lt "$QUIET_WAIT" ]; do
        local a b
        a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat)
        sleep 2
        b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat)
        if [ $((b - a)) -lt 60 ]; then
            return 0
        fi
        waited=$((waited + 2))
    done
    echo "warning: the machine stayed busy; measuring anyway" >&2
}

# measure NAME WORKERS ARGS...: one measured run, JSON kept in
# target/bench/NAME.json. A 1-worker server is pinned to CPU 0 and the
# bots to the rest (unless BENCH_PIN=0).
measure() {
    local name="$1" workers="$2"
    shift 2
    local prefix=() pin_args=()
    if [ "$PIN" = 1 ] && [ "$workers" = 1 ]; then
        prefix=(taskset -c "1-$((NCPU - 1))")
        pin_args=(--server-cpus 0)
    fi
    wait_quiet
    echo "== $name: ${prefix[*]} cascade-load --spawn-server --workers $workers ${pin_args[*]} $*" >&2
    "${prefix[@]}" "$LOAD" --spawn-server --server-bin "$SERVER" --workers "$workers" "${pin_args[@]}" \
        --duration "$DURATION" --json "$@" > "$OUT/$name.json"
}

# run NAME WORKERS ARGS...: measure, with SIMULCAST / MAX_LAYER applied.
run() {
    local name="$1"
    shift
    measure "$name$SIMULCAST_SUFFIX" "$@" "${SIMULCAST_ARGS[@]}"
}

for what in "$@"; do
    case "$what" in
    cpu)
        run cpu-webinar-200 1 --scenario webinar -n 200 --no-audio --join-interval-ms 10
        ;;
    memory)
        run memory-meeting-10 1 --scenario meeting -n 10
        ;;
    capacity)
        for workers in 1 2; do
            for rooms in 2 4 6 8; do
                run "capacity-w$workers-rooms$rooms" "$workers" --scenario rooms \
                    --rooms "$rooms" -n 10 --join-interval-ms 10
            done
        done
        ;;
    latency)
        # Half the 1-worker capacity; three runs, since the tail varies.
        for repeat in 1 2 3; do
            run "latency-w1-rooms4-run$repeat" 1 --scenario rooms --rooms 4 -n 10 \
                --join-interval-ms 10
        done
        ;;
    simulcast)
        # Same scenario, same bots; only how publishers send video differs.
        layer="${MAX_LAYER:-f}"
        measure simulcast-meeting-10-single 1 --scenario meeting -n 10
        measure "simulcast-meeting-10-qhf-max-$layer" 1 --scenario meeting -n 10 \
            --simulcast --max-layer "$layer"
        ;;
    *)
        echo "unknown measurement $what (cpu, memory, capacity, latency, simulcast)" >&2
        exit 1
        ;;
    esac
done

python3 - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
rows = []
for name in sorted(os.listdir(out)):
    if not name.endswith(".json") or name.startswith("janus"):
        continue
    with open(os.path.join(out, name)) as f:
        r = json.load(f)
    if "target" not in r:
        continue
    s = r.get("server") or {}
    lat = r.get("latency_ms") or {}
    rows.append((name[:-5], r["packets_per_second"], r["loss_ratio"] * 100,
                 r["bots_failed"] + r["bots_incomplete"] + r["streams_stalled"],
                 lat.get("p50", 0), lat.get("p99", 0), s.get("cpu_us_per_packet", 0),
                 s.get("cores", 0), s.get("rss_per_participant_kib", 0),
                 r.get("loadgen_cores") or 0, r.get("background_cores") or 0))
print(f"{'run':<34} {'fwd pkt/s':>9} {'loss %':>7} {'bad':>4} {'p50 ms':>7} {'p99 ms':>7} "
      f"{'µs/pkt':>7} {'srv cores':>9} {'KiB/part':>8} {'bots':>5} {'other':>5}")
for r in rows:
    print(f"{r[0]:<34} {r[1]:>9.0f} {r[2]:>7.3f} {r[3]:>4} {r[4]:>7.2f} {r[5]:>7.2f} "
          f"{r[6]:>7.2f} {r[7]:>9.2f} {r[8]:>8.0f} {r[9]:>5.2f} {r[10]:>5.2f}")

# How the video was sent and what subscribers got, for runs that differ
# from single-layer. Under simulcast the server receives every layer that
# is asked for (dynacast stops the rest) and forwards one per subscriber,
# so its CPU per forwarded packet includes the layers nobody gets.
runs = {}
for name in sorted(os.listdir(out)):
    if name.endswith(".json") and not name.startswith("janus"):
        with open(os.path.join(out, name)) as f:
            r = json.load(f)
        if "target" in r:
            runs[name[:-5]] = r
sim = {n: r for n, r in runs.items() if r.get("simulcast") or r.get("max_layer")}
if sim:
    print()
    print(f"{'run':<34} {'video':<10} {'sent pkt/s':>10} {'fwd pkt/s':>9} {'µs/pkt':>7} "
          f"{'q / h / f received %':>21} {'switch':>6} {'unclean':>7} {'stopped':>7}")
    for n in sorted(set(sim) | {n for n in runs if n.endswith("-single")}):
        r = runs[n]
        video = ("q/h/f" if r.get("simulcast") else "1 layer") + \
            (f" ≤{r['max_layer']}" if r.get("max_layer") else "")
        shares = " / ".join(f"{l['share'] * 100:.0f}" for l in r.get("layers") or []) or "-"
        s = r.get("server") or {}
        print(f"{n:<34} {video:<10} {r['sent_packets_per_second']:>10.0f} "
              f"{r['packets_per_second']:>9.0f} {s.get('cpu_us_per_packet', 0):>7.2f} "
              f"{shares:>21} {r.get('layer_switches', 0):>6} "
              f"{r.get('unclean_layer_switches', 0):>7} {r.get('layers_stopped', 0):>7}")
    single = runs.get("simulcast-meeting-10-single", {}).get("server") or {}
    for n, r in sorted(sim.items()):
        s = r.get("server") or {}
        if n.startswith("simulcast-meeting-10-qhf") and single and s:
            print(f"{n}: {s['cpu_us_per_packet'] / single['cpu_us_per_packet']:.2f}x "
                  "the single-layer CPU per forwarded packet")
EOF
