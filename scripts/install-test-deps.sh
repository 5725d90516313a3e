#!/usr/bin/env bash
# Installs what the browser end-to-end test (tests/browser/) needs. Idempotent:
# each step runs only when its result is missing, so calling it again is cheap.
#   - Debian's Chromium at /usr/bin/chromium (playwright never downloads a browser here)
#   - tests/browser/node_modules (playwright-core, pinned by package-lock.json)
# Needs root for apt-get, and Node.js >= 20 with npm on PATH.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ ! -x /usr/bin/chromium ]; then
  echo "install-test-deps: installing Debian chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y chromium
else
  echo "install-test-deps: /usr/bin/chromium present" >&2
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "install-test-deps: node and npm are required (Node.js >= 20)" >&2
  exit 1
fi

if [ ! -d "$ROOT/tests/browser/node_modules" ]; then
  echo "install-test-deps: npm ci in tests/browser" >&2
  # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core downloads nothing itself,
  # this only guards against a future dependency that would try.
  (cd "$ROOT/tests/browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
else
  echo "install-test-deps: tests/browser/node_modules present" >&2
fi
