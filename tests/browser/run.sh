#!/usr/bin/env bash
# Runs the browser end-to-end test (tests/browser/e2e.test.mjs): three headless
# Chromium participants join one room through the bundled client served by a
# real Cascade server, and must see and hear each other.
#
# Expects target/release/cascade (builds it with `cargo build --release` only
# if it is missing) and installs Chromium / playwright-core when absent.
# Everything runs in a private network namespace that has only loopback, so
# every ICE candidate pair is 127.0.0.1 <-> 127.0.0.1 and no traffic leaves
# the machine. The test starts and always stops the server itself.
#
# Environment: CASCADE_BIN overrides the server binary; E2E_ARTIFACTS the
# directory for the screenshot and logs (default: target/).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

export CASCADE_BIN="${CASCADE_BIN:-$ROOT/target/release/cascade}"
export E2E_ARTIFACTS="${E2E_ARTIFACTS:-$ROOT/target}"

if [ ! -x "$CASCADE_BIN" ]; then
  echo "run.sh: $CASCADE_BIN missing, building it" >&2
  cargo build --release
fi

bash "$ROOT/scripts/install-test-deps.sh"
mkdir -p "$E2E_ARTIFACTS"

# Root can unshare a network namespace directly; anyone else needs a user namespace too.
if [ "$(id -u)" -eq 0 ]; then
  ns=(unshare --net)
else
  ns=(unshare --map-root-user --net)
fi

exec "${ns[@]}" bash -c 'ip link set lo up && exec node --test --test-reporter=spec "$@"' \
  run.sh "$ROOT/tests/browser/e2e.test.mjs"
