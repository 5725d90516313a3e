#!/usr/bin/env bash
# The whole Cascade test suite, as the README promises and CI runs it.
#
# Works on a fresh machine with only the Rust toolchain: installs what the
# browser test needs (Debian chromium, node packages) and Debian prometheus
# when missing. Every server it starts listens on 127.0.0.1 only and is
# stopped at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "format and lints"
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings

step "unit, simulation and loopback tests"
cargo test --release --workspace

step "Prometheus scrapes a running Cascade (Debian prometheus, installed if missing)"
bash scripts/test-prometheus.sh

step "WHIP/WHEP interop with aiortc and GStreamer webrtcbin (private loopback-only network namespace)"
cargo build --release --bin cascade
bash tests/interop/run.sh

step "browser end-to-end (headless Chromium, private loopback-only network namespace)"
cargo build --release --bin cascade
bash tests/browser/run.sh

step "all tests passed"
