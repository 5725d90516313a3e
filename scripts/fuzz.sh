#!/usr/bin/env bash
# A long hostile-input run (issue 13): the property tests of
# tests/hostile_input.rs and the library's own (the sdpfrag parser), with far
# more cases than the default the test suite runs. Not part of CI or
# scripts/test-all.sh.
#
# Usage: scripts/fuzz.sh [CASES] [MINUTES] [-- TEST-ARGS...]
#   CASES    cases per property; default $HOSTILE_CASES, else 100000
#   MINUTES  time bound for the runs (the build is not counted); default
#            $FUZZ_MINUTES, else 60. Reaching it is no failure: it says so
#            and exits 0, having found nothing in the cases it ran.
#   TEST-ARGS go to both test binaries, e.g. `-- tokens` (libtest filters).
#
# A failing property prints its minimal failing input and the script exits
# non-zero; `PROPTEST_RNG_SEED=<seed> scripts/fuzz.sh ...` replays a run.
# Servers the properties start listen on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'fuzz: %s\n' "$*" >&2; }

cases="${HOSTILE_CASES:-100000}"
minutes="${FUZZ_MINUTES:-60}"
if [ $# -gt 0 ] && [ "$1" != "--" ]; then cases="$1"; shift; fi
if [ $# -gt 0 ] && [ "$1" != "--" ]; then minutes="$1"; shift; fi
if [ $# -gt 0 ] && [ "$1" = "--" ]; then shift; fi
case "$cases$minutes" in
  *[!0-9]*) log "CASES and MINUTES are whole numbers (got '$cases', '$minutes')"; exit 2 ;;
esac

log "building the test binaries (release)"
cargo test --release --test hostile_input --no-run
cargo test --release --lib --no-run

deadline=$(( $(date +%s) + minutes * 60 ))
export HOSTILE_CASES="$cases"
complete=1
# Each run gets what is left of the bound; 124 is `timeout`'s "time is up".
run() {
  local left=$(( deadline - $(date +%s) ))
  if [ "$left" -le 0 ]; then
    log "time bound reached, not run: $*"
    complete=0
    return 0
  fi
  log "$cases cases per property, ${left}s left: $*"
  local status=0
  timeout --signal=INT --kill-after=30 "${left}s" "$@" || status=$?
  if [ "$status" -eq 124 ]; then
    log "time bound reached during: $*"
    complete=0
    return 0
  fi
  return "$status"
}

run cargo test --release --test hostile_input -- "$@"
run cargo test --release --lib hostile -- "$@"
if [ "$complete" -eq 1 ]; then
  log "done: every property passed all $cases cases"
else
  log "stopped at the time bound: no property failed in the cases that ran"
fi
