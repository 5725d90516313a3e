#!/usr/bin/env bash
# WHIP/WHEP interop tests against independent WebRTC stacks (tests/interop/):
# aiortc (PyPI, in a venv) and GStreamer webrtcbin (Debian, via python3-gi)
# publish and watch through a real Cascade server, with headless Chromium
# (the bundled client) on the other end of the simulcast tests; decoded
# frames are counted on the receiving side. Also checks the HTTP semantics
# (statuses, ETag, CORS, bearer token, Link headers).
#
# Idempotent: installs only what is missing —
#   - Debian packages for GStreamer/webrtcbin/libnice and their typelibs
#     (apt-get update once, only when something is missing; needs root)
#   - target/interop-venv from tests/interop/requirements.txt (pinned), made
#     again when requirements.txt changes
#   - Chromium and tests/browser/node_modules (playwright-core) for the
#     simulcast tests' browser roles, through scripts/install-test-deps.sh
# and builds target/release/cascade only if it is missing.
#
# Everything runs in a private network namespace with only loopback, so every
# ICE candidate is 127.0.0.1; a PID namespace too, so no process outlives the
# run. The tests start and always stop the servers themselves.
#
# Environment: CASCADE_BIN overrides the server binary; INTEROP_ARTIFACTS the
# log directory (default target/interop); INTEROP_ONLY a regex of test names;
# INTEROP_BROWSER=0 leaves out the tests with headless Chromium.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

CASCADE_BIN="${CASCADE_BIN:-$ROOT/target/release/cascade}"
ARTIFACTS="${INTEROP_ARTIFACTS:-$ROOT/target/interop}"
VENV="$ROOT/target/interop-venv"
REQ="$ROOT/tests/interop/requirements.txt"
GST_PY=/usr/bin/python3

log() { echo "interop/run.sh: $*" >&2; }

if [ ! -x "$CASCADE_BIN" ]; then
  log "$CASCADE_BIN missing, building it"
  cargo build --release --bin cascade
fi

# --- Debian packages -------------------------------------------------------
DEB_PACKAGES=(
  python3-gi
  gir1.2-gstreamer-1.0
  gir1.2-gst-plugins-base-1.0
  gir1.2-gst-plugins-bad-1.0
  gir1.2-nice-0.1
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad
  gstreamer1.0-nice
)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  # apt's own temporary files go to a private directory: other jobs on a
  # shared machine may clean /tmp while dpkg unpacks.
  mkdir -p "$ROOT/target"
  aptdir="$(mktemp -d "$ROOT/target/interop-apt.XXXXXX")"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update
  TMPDIR="$aptdir" timeout 900 apt-get install -y --no-install-recommends "${missing[@]}"
  rm -rf "$aptdir"
else
  log "Debian GStreamer packages present"
fi

# --- Python venv for aiortc -----------------------------------------------
want_hash="$(sha256sum "$REQ" | cut -d' ' -f1)"
have_hash="$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)"
if [ "$want_hash" != "$have_hash" ] || ! "$VENV/bin/python" -c 'import aiortc, av, websockets' 2>/dev/null; then
  log "creating $VENV from $REQ"
  rm -rf "$VENV"
  PY=python3
  if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
    log "python3 lacks venv/ensurepip; using Debian's python3-venv"
    if ! dpkg-query -W -f='${Status}' python3-venv 2>/dev/null | grep -q "install ok installed"; then
      timeout 300 apt-get update && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y python3-venv
    fi
    PY=/usr/bin/python3
  fi
  "$PY" -m venv "$VENV"
  timeout 600 "$VENV/bin/pip" install --quiet --disable-pip-version-check --only-binary=av -r "$REQ"
  echo "$want_hash" > "$VENV/.requirements.sha256"
else
  log "venv $VENV up to date"
fi

# --- Chromium + playwright-core for the browser roles (chromium_peer.mjs) --
# scripts/install-test-deps.sh (the browser tests' installer) only when
# something is missing; INTEROP_BROWSER=0 leaves the Chromium tests out.
if [ "${INTEROP_BROWSER:-1}" != "0" ]; then
  if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || [ ! -d "$ROOT/tests/browser/node_modules/playwright-core" ] \
      || ! command -v node >/dev/null; then
    log "Chromium or tests/browser/node_modules missing: scripts/install-test-deps.sh"
    bash "$ROOT/scripts/install-test-deps.sh"
  else
    log "Chromium and playwright-core present"
  fi
fi

mkdir -p "$ARTIFACTS"

# --- run, in private net + pid namespaces -------------------------------
if [ "$(id -u)" -eq 0 ]; then
  ns=(unshare --net --pid --fork --kill-child)
else
  ns=(unshare --map-root-user --net --pid --fork --kill-child)
fi

args=(--cascade "$CASCADE_BIN" --logs "$ARTIFACTS")
if [ -n "${INTEROP_ONLY:-}" ]; then args+=(--only "$INTEROP_ONLY"); fi

set +e
INTEROP_GST_PYTHON="$GST_PY" timeout --kill-after=10 900 "${ns[@]}" \
  bash -c 'ip link set lo up && exec "$@"' run.sh \
  "$VENV/bin/python" "$ROOT/tests/interop/interop.py" "${args[@]}"
rc=$?
set -e
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "interop: 0 passed, 1 failed (run timed out)"
fi
if [ "$rc" -ne 0 ]; then
  log "failed (exit $rc); logs in $ARTIFACTS"
fi
exit "$rc"
