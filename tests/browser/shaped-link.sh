#!/usr/bin/env bash
# Runs a command (the simulcast browser test) on a private two-host network
# with one shaped link, per shared/DESIGN.md's "Real-network conditions":
#
#   netns "<run>-srv"  10.99.0.1/30 ──veth── 10.99.0.2/30  netns "<run>-cli"
#   server, publisher,     tbf 700 kbit/s on the        the shaped subscriber
#   unshaped subscriber,   server side: the shaped      (its Chromium is
#   Firefox, the command   subscriber's downlink        started in here)
#
# The subnet exists only inside the two namespaces; nothing else is shaped
# (the kernel here has tbf and netem but no classifiers, so the one shaped
# subscriber is alone behind its own veth, and everything else talks to
# 10.99.0.1 inside the server namespace).
#
# The command runs inside the server namespace with:
#   SIMULCAST_SERVER_IP      10.99.0.1
#   SIMULCAST_CLIENT_NETNS   the shaped subscriber's namespace (for `ip netns exec`)
#   SIMULCAST_SHAPED_DEV     the shaped veth (server side), for `tc -s qdisc show`
#   SIMULCAST_SHAPING        the tbf parameters
# On exit (also on failure or a signal) every process left in either
# namespace is killed and both namespaces are deleted. Needs root.
#
# Usage: bash tests/browser/shaped-link.sh COMMAND [ARGS...]
# Environment: SHAPED_RATE (default 700kbit), SHAPED_BURST (12kb), SHAPED_LATENCY (80ms).
set -euo pipefail

if [ "$#" -eq 0 ]; then
  echo "usage: $0 COMMAND [ARGS...]" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "shaped-link.sh: needs root (ip netns, veth, tc)" >&2
  exit 1
fi

log() { echo "shaped-link.sh: $*" >&2; }

RUN_ID="$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
NS_SRV="cascade-${RUN_ID}-srv"
NS_CLI="cascade-${RUN_ID}-cli"
VETH_SRV="cs${RUN_ID}s" # interface names: at most 15 characters
VETH_CLI="cs${RUN_ID}c"
SERVER_IP=10.99.0.1
CLIENT_IP=10.99.0.2
PREFIX_LEN=30
SHAPING="rate ${SHAPED_RATE:-700kbit} burst ${SHAPED_BURST:-12kb} latency ${SHAPED_LATENCY:-80ms}"

# Kills what is left in a namespace (TERM, then KILL after at most 5 s).
kill_namespace_processes() {
  local ns="$1" pids i
  pids="$(ip netns pids "$ns" 2>/dev/null || true)"
  [ -n "$pids" ] || return 0
  log "stopping processes left in $ns: $(echo $pids)"
  kill -TERM $pids 2>/dev/null || true
  for i in $(seq 1 50); do
    pids="$(ip netns pids "$ns" 2>/dev/null || true)"
    [ -n "$pids" ] || return 0
    sleep 0.1
  done
  kill -KILL $pids 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if ip netns exec "$NS_SRV" true 2>/dev/null; then
    log "shaped link at the end: $(ip netns exec "$NS_SRV" tc -s qdisc show dev "$VETH_SRV" 2>/dev/null | tr '\n' ' ')"
  fi
  for ns in "$NS_CLI" "$NS_SRV"; do
    kill_namespace_processes "$ns"
    ip netns del "$ns" 2>/dev/null || true
  done
  log "removed $NS_SRV and $NS_CLI"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip netns add "$NS_SRV"
ip netns add "$NS_CLI"
for ns in "$NS_SRV" "$NS_CLI"; do
  ip -n "$ns" link set lo up
  # No IPv6 on the veth: its link-local address would appear a second or two
  # after the link comes up (duplicate address detection), and Chromium
  # aborts every load in flight on that address change (ERR_NETWORK_CHANGED,
  # a publisher that never joined in CI). The test uses IPv4 only.
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
done
# The pair is made inside the namespaces: nothing is added to this host's own network.
ip link add "$VETH_SRV" netns "$NS_SRV" type veth peer name "$VETH_CLI" netns "$NS_CLI"
ip -n "$NS_SRV" addr add "$SERVER_IP/$PREFIX_LEN" dev "$VETH_SRV"
ip -n "$NS_CLI" addr add "$CLIENT_IP/$PREFIX_LEN" dev "$VETH_CLI"
ip -n "$NS_SRV" link set "$VETH_SRV" up
ip -n "$NS_CLI" link set "$VETH_CLI" up
# Bounded wait for the carrier (the peer end comes up a moment later).
for _ in $(seq 1 50); do
  ip -n "$NS_CLI" link show "$VETH_CLI" | grep -q 'state UP' &&
    ip -n "$NS_SRV" link show "$VETH_SRV" | grep -q 'state UP' &&
    [ -z "$(ip -n "$NS_SRV" addr show tentative)$(ip -n "$NS_CLI" addr show tentative)" ] && break
  sleep 0.1
done
# shellcheck disable=SC2086 # SHAPING is a list of tc arguments
ip netns exec "$NS_SRV" tc qdisc add dev "$VETH_SRV" root tbf $SHAPING
log "$NS_SRV ($SERVER_IP) -> $NS_CLI ($CLIENT_IP) shaped: tbf $SHAPING"

# Not exec: the EXIT trap must run after the command. In the background with
# `wait`, so that a signal to this script runs the traps at once (bash defers
# traps while a foreground command runs).
status=0
ip netns exec "$NS_SRV" env \
  SIMULCAST_SERVER_IP="$SERVER_IP" \
  SIMULCAST_CLIENT_NETNS="$NS_CLI" \
  SIMULCAST_SHAPED_DEV="$VETH_SRV" \
  SIMULCAST_SHAPING="tbf $SHAPING" \
  "$@" &
wait "$!" || status=$?
exit "$status"
