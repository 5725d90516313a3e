# Sourced by the bench-*.sh scripts: builds the release binaries unless
# SKIP_BUILD=1, and sets SERVER and LOAD (overridable with SERVER_BIN /
# LOAD_BIN), NCPU, PIN (BENCH_PIN, default 1 on machines with 2+ CPUs:
# pin the server under test to CPU 0 and the bots to the others), and
# SIMULCAST_ARGS / SIMULCAST_SUFFIX (below).
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release -p cascade --bin cascade -p cascade-load --bin cascade-load >&2
fi
SERVER="${SERVER_BIN:-target/release/cascade}"
LOAD="${LOAD_BIN:-target/release/cascade-load}"
NCPU="$(nproc)"
PIN="${BENCH_PIN:-$([ "$NCPU" -ge 2 ] && echo 1 || echo 0)}"
# SIMULCAST=1 and MAX_LAYER=q|h|f: the Cascade side's simulcast options,
# passed to cascade-load as --simulcast / --max-layer (SIMULCAST_ARGS), and
# a suffix for result names (SIMULCAST_SUFFIX). Janus bots always publish
# one layer, whatever these say.
SIMULCAST_ARGS=()
SIMULCAST_SUFFIX=""
if [ "${SIMULCAST:-0}" = 1 ]; then
    SIMULCAST_ARGS+=(--simulcast)
    SIMULCAST_SUFFIX="-simulcast"
fi
if [ -n "${MAX_LAYER:-}" ]; then
    case "$MAX_LAYER" in
    q | h | f) ;;
    *)
        echo "MAX_LAYER must be q, h or f (got $MAX_LAYER)" >&2
        exit 1
        ;;
    esac
    SIMULCAST_ARGS+=(--max-layer "$MAX_LAYER")
    SIMULCAST_SUFFIX="$SIMULCAST_SUFFIX-max-$MAX_LAYER"
fi
