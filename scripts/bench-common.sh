# Sourced by the bench-*.sh scripts: builds the release binaries unless
# SKIP_BUILD=1, and sets SERVER and LOAD (overridable with SERVER_BIN /
# LOAD_BIN), NCPU, and PIN (BENCH_PIN, default 1 on machines with 2+ CPUs:
# pin the server under test to CPU 0 and the bots to the others).
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release -p cascade --bin cascade -p cascade-load --bin cascade-load >&2
fi
SERVER="${SERVER_BIN:-target/release/cascade}"
LOAD="${LOAD_BIN:-target/release/cascade-load}"
NCPU="$(nproc)"
PIN="${BENCH_PIN:-$([ "$NCPU" -ge 2 ] && echo 1 || echo 0)}"
