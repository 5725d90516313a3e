#!/usr/bin/env bash
# Runs the browser tests (tests/browser/):
#   e2e        e2e.test.mjs: three headless Chromium participants join one
#              room through the bundled client served by a real Cascade
#              server, and must see and hear each other. In a private network
#              namespace that has only loopback, so every ICE candidate pair
#              is 127.0.0.1 <-> 127.0.0.1 and no traffic leaves the machine.
#   reach      reach.test.mjs: two Chromium pages forced to relay
#              (`&relay=1`) play each other through a Debian coturn the test
#              starts, with the TURN credentials Cascade minted; a wrong
#              secret gets none; two pages play over https/wss against
#              --tls-self-signed. Same loopback-only namespace as e2e.
#   simulcast  simulcast.test.mjs (then ICE-TCP with UDP dropped by nftables
#              in the client namespace): a simulcast publisher, an unshaped and a
#              700 kbit/s-shaped Chromium subscriber, and a Firefox
#              subscriber, on two private network namespaces joined by a veth
#              pair (shaped-link.sh sets them up and always removes them).
#              Needs root.
# All run (even when one fails); the exit status is non-zero if any failed. The tests start and always stop the server themselves.
#
# Expects target/release/cascade (builds it with `cargo build --release` only
# if it is missing) and installs Chromium, Firefox ESR and the node packages
# and coturn when absent (scripts/install-test-deps.sh).
#
# Environment: CASCADE_BIN overrides the server binary; E2E_ARTIFACTS the
# directory for screenshots and logs (default: target/); BROWSER_TESTS the
# tests to run (default "e2e reach simulcast").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

export CASCADE_BIN="${CASCADE_BIN:-$ROOT/target/release/cascade}"
export E2E_ARTIFACTS="${E2E_ARTIFACTS:-$ROOT/target}"
TESTS="${BROWSER_TESTS:-e2e reach simulcast}"

if [ ! -x "$CASCADE_BIN" ]; then
  echo "run.sh: $CASCADE_BIN missing, building it" >&2
  cargo build --release
fi

bash "$ROOT/scripts/install-test-deps.sh"
mkdir -p "$E2E_ARTIFACTS"

# Runs a test file in a fresh network namespace with only loopback up.
run_on_loopback() {
  # Root can unshare a network namespace directly; anyone else needs a user namespace too.
  local ns
  if [ "$(id -u)" -eq 0 ]; then
    ns=(unshare --net)
  else
    ns=(unshare --map-root-user --net)
  fi
  "${ns[@]}" bash -c 'ip link set lo up && exec node --test --test-reporter=spec "$@"' \
    run.sh "$ROOT/tests/browser/$1.test.mjs"
}

run_simulcast() {
  bash "$ROOT/tests/browser/shaped-link.sh" \
    node --test --test-reporter=spec "$ROOT/tests/browser/simulcast.test.mjs"
}

failed=()
for t in $TESTS; do
  case "$t" in
    e2e | reach) run_on_loopback "$t" || failed+=("$t") ;;
    simulcast) run_simulcast || failed+=(simulcast) ;;
    *) echo "run.sh: unknown browser test \"$t\" (e2e, reach, simulcast)" >&2; exit 2 ;;
  esac
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "run.sh: failed: ${failed[*]}" >&2
  exit 1
fi
