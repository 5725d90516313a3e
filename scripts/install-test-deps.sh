#!/usr/bin/env bash
# Installs what the browser tests (tests/browser/) need. Idempotent: each step
# runs only when its result is missing, so calling it again is cheap.
#   - Debian's Chromium at /usr/bin/chromium (playwright never downloads a browser here)
#   - Debian's firefox-esr at /usr/bin/firefox-esr (the simulcast test's Firefox subscriber)
#   - iproute2 (`ip netns`, veth pairs, `tc` shaping for the simulcast test)
#   - coturn (the TURN relay test: started by the test, never as a service)
#   - nftables (the ICE-TCP test drops all UDP in the client namespace)
#   - tests/browser/node_modules (playwright-core and puppeteer-core, pinned by package-lock.json)
# Needs root for apt-get, and Node.js >= 20 with npm on PATH.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Debian package -> a file it installs.
declare -A DEBIAN_PACKAGES=(
  [chromium]=/usr/bin/chromium
  [firefox-esr]=/usr/bin/firefox-esr
  [iproute2]=/usr/sbin/tc
  [coturn]=/usr/bin/turnserver
  [nftables]=/usr/sbin/nft
)
missing=()
for pkg in "${!DEBIAN_PACKAGES[@]}"; do
  if [ -x "${DEBIAN_PACKAGES[$pkg]}" ]; then
    echo "install-test-deps: ${DEBIAN_PACKAGES[$pkg]} present" >&2
  else
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-test-deps: installing Debian ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y "${missing[@]}"
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "install-test-deps: node and npm are required (Node.js >= 20)" >&2
  exit 1
fi

node_modules="$ROOT/tests/browser/node_modules"
if [ ! -d "$node_modules/playwright-core" ] || [ ! -d "$node_modules/puppeteer-core" ]; then
  echo "install-test-deps: npm ci in tests/browser" >&2
  # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD / PUPPETEER_SKIP_DOWNLOAD: the -core
  # packages download nothing themselves; this only guards against a future
  # dependency that would try.
  (cd "$ROOT/tests/browser" &&
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund)
else
  echo "install-test-deps: tests/browser/node_modules present" >&2
fi
