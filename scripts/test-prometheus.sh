#!/usr/bin/env bash
# A real Prometheus server scrapes a running Cascade, and what it stored is
# read back through Prometheus' HTTP API:
#   - the target is up and Cascade's own series (build info, worker readiness,
#     loop iterations) are there with the values Cascade exports;
#   - activity shows up: a WebSocket client joins a room and sends a bad
#     message, and Prometheus reports the participant and the counted error;
#   - every query of the Grafana dashboard is valid PromQL for this
#     Prometheus, and the alert rules (grafana/alerts.yml) load and evaluate.
#
# Installs Debian's `prometheus` when missing (needs root for apt-get).
# Starts Cascade and Prometheus on 127.0.0.1 only, stops both on any exit,
# and gives up after a bounded time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"

log() { printf 'test-prometheus: %s\n' "$*" >&2; }

missing=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
command -v python3 >/dev/null || missing+=(python3)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update
  timeout 600 apt-get install -y --no-install-recommends "${missing[@]}"
fi

log "static checks of grafana/ (promtool)"
promtool check rules grafana/alerts.yml
promtool check config grafana/prometheus.yml

cargo build --release --bin cascade
CASCADE_BIN="$ROOT/target/release/cascade"

WORK="$(mktemp -d)"
CASCADE_PID=""
PROM_PID=""
cleanup() {
  local status=$?
  [ -n "$PROM_PID" ] && kill "$PROM_PID" 2>/dev/null && wait "$PROM_PID" 2>/dev/null
  [ -n "$CASCADE_PID" ] && kill -INT "$CASCADE_PID" 2>/dev/null && wait "$CASCADE_PID" 2>/dev/null
  if [ "$status" -ne 0 ]; then
    log "failed; last lines of the logs:"
    tail -n 20 "$WORK/cascade.log" "$WORK/prometheus.log" 2>/dev/null >&2 || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Cascade on an ephemeral port; its first stdout line names the address.
RUST_LOG=cascade=info "$CASCADE_BIN" --http-addr 127.0.0.1:0 --workers 2 \
  >"$WORK/cascade.out" 2>"$WORK/cascade.log" &
CASCADE_PID=$!
CASCADE_ADDR=""
for _ in $(seq 1 100); do
  CASCADE_ADDR="$(sed -n 's|.*open http://\([0-9.:]*\)/.*|\1|p' "$WORK/cascade.out" | head -n1)"
  [ -n "$CASCADE_ADDR" ] && break
  kill -0 "$CASCADE_PID" 2>/dev/null || { log "cascade exited"; exit 1; }
  sleep 0.1
done
[ -n "$CASCADE_ADDR" ] || { log "cascade did not start"; exit 1; }
log "cascade at $CASCADE_ADDR"

PROM_PORT="$(free_port)"
cp grafana/alerts.yml "$WORK/alerts.yml"
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - alerts.yml
scrape_configs:
  - job_name: cascade
    static_configs:
      - targets: ["$CASCADE_ADDR"]
EOF
prometheus --config.file="$WORK/prometheus.yml" \
  --storage.tsdb.path="$WORK/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" \
  >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
log "prometheus at 127.0.0.1:$PROM_PORT"

timeout 120 python3 - "http://127.0.0.1:$PROM_PORT" "$CASCADE_ADDR" \
  grafana/dashboards/cascade.json <<'PY'
import base64, json, os, socket, sys, time, urllib.parse, urllib.request

prom, cascade, dashboard_path = sys.argv[1:]

def fail(message):
    print(f"test-prometheus: FAIL: {message}", file=sys.stderr)
    sys.exit(1)

def api(path, **params):
    url = f"{prom}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)

def query(expr):
    body = api("/api/v1/query", query=expr)
    if body.get("status") != "success":
        fail(f"query {expr!r}: {body.get('error')}")
    return body["data"]["result"]

def wait_for(what, check, limit=40):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    fail(f"timed out waiting for {what}")

def scalar(expr):
    result = query(expr)
    return float(result[0]["value"][1]) if result else None

wait_for("prometheus to be ready",
         lambda: urllib.request.urlopen(f"{prom}/-/ready", timeout=2).status == 200)

# 1. Cascade is scraped and its own series are stored.
wait_for("the cascade target to be up", lambda: scalar('up{job="cascade"}') == 1.0)
build = wait_for("cascade_build_info", lambda: query("cascade_build_info"))
print(f"test-prometheus: cascade_build_info {build[0]['metric']}")
if build[0]["metric"].get("job") != "cascade" or float(build[0]["value"][1]) != 1.0:
    fail(f"unexpected cascade_build_info {build}")
wait_for("two ready workers", lambda: scalar("sum(cascade_worker_ready)") == 2.0)
wait_for("worker loops to be seen running",
         lambda: (scalar("sum(rate(cascade_worker_loop_iterations_total[5s]))") or 0) > 0)

# 2. Activity shows up: a WebSocket client joins and sends a bad message.
def ws_connect(addr):
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            fail("websocket handshake: connection closed")
        head += chunk
    if b" 101 " not in head.split(b"\r\n")[0]:
        fail(f"websocket handshake: {head!r}")
    return sock

def ws_send(sock, text):
    data = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])  # FIN + text
    if len(data) < 126:
        header += bytes([0x80 | len(data)])
    else:
        header += bytes([0x80 | 126]) + len(data).to_bytes(2, "big")
    sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

sock = ws_connect(cascade)
ws_send(sock, '{"type":"join","version":1,"room":"prometheus-check","name":"probe"}')
ws_send(sock, "{nope")
wait_for("the participant in Prometheus",
         lambda: scalar("sum(cascade_media_participants)") == 1.0)
wait_for("the bad message counted in Prometheus",
         lambda: scalar('sum(cascade_signal_errors_total{code="bad_message"})') == 1.0)
wait_for("the join request counted in Prometheus",
         lambda: scalar('sum(cascade_signal_requests_total{kind="join"})') == 1.0)
wait_for("the open ws session in Prometheus",
         lambda: scalar('sum(cascade_signal_active_sessions{kind="ws"})') == 1.0)
sock.close()
wait_for("the participant gone again",
         lambda: scalar("sum(cascade_media_participants)") == 0.0)
wait_for("the leave counted",
         lambda: scalar('sum(cascade_media_leaves_total{reason="left"})') == 1.0)

# 3. Every dashboard query is valid PromQL here.
with open(dashboard_path) as f:
    dashboard = json.load(f)
exprs = []
def collect(panels):
    for p in panels:
        exprs.extend(t["expr"] for t in p.get("targets", []) if t.get("expr"))
        collect(p.get("panels", []))
collect(dashboard["panels"])
if len(exprs) < 30:
    fail(f"only {len(exprs)} dashboard queries found")
for expr in exprs:
    promql = (expr.replace("$__rate_interval", "1m").replace("$__range", "5m")
                  .replace("$instance", ".*"))
    query(promql)
print(f"test-prometheus: {len(exprs)} dashboard queries are valid PromQL")
rx = scalar('sum(cascade_worker_received_datagrams_total{instance=~".*"})')
if rx is None:
    fail("dashboard metric cascade_worker_received_datagrams_total has no data")

# 4. The alert rules loaded and evaluate without errors.
def rules_healthy():
    groups = api("/api/v1/rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    if len(rules) < 5:
        return False
    bad = [r["name"] for r in rules if r.get("health") != "ok"]
    if bad:
        return False
    return rules
rules = wait_for("alert rules evaluated with health ok", rules_healthy)
firing = [r["name"] for r in rules if r.get("state") == "firing"]
if "CascadeDown" in firing or "CascadeWorkerNotReady" in firing:
    fail(f"alerts firing on a healthy server: {firing}")
print(f"test-prometheus: {len(rules)} alert rules loaded and healthy")
PY

log "passed"
