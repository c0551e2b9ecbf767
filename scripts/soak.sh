#!/usr/bin/env bash
# The soak: lbfwd in the namespace network of scripts/lib/topo.sh under real
# traffic and constant change, for SECONDS (default 60).
#
#   scripts/soak.sh [SECONDS]          # as root
#
# Traffic from the client (scripts/lib/soak.py): HTTP on fresh connections
# and on 12 kept-alive connections (each lives 10-40 s, one GET every
# ~250 ms), UDP datagrams each from a new socket, to three load balancers:
# `web` (both VIPs, selector app=web), `api` (203.0.113.11, a
# load_balancer_routing) and `tmp` (an address from the pool, every
# interface), which comes and goes. Every ~100 ms one random change: a valid
# one (labels, weights, drains, interface state, `tmp` added or deleted,
# pool edits, api's routing, `lbctl apply`, a new config file and `lbctl
# reload`), checked against lbfwd's own routing afterwards, or an invalid
# one, which must be refused with its exit code and error and leave `lbctl
# export` as it was. Every ~20 s lbfwd is killed with SIGKILL and started
# again: `lbctl export` must print what it printed before, and every
# worker's flow table must have been re-attached from its file (`[flow]
# persist`), so that no flow pinned to a target other than its Maglev pick
# moves.
#
# It asserts: no request to a target that stayed live fails, also across a
# restart after routing changes (the precise rule is at the top of
# scripts/lib/soak.py), every invalid change is refused, export is
# unchanged by restarts, the flow tables survive them; prints a summary and
# exits 1 if any of them was violated. The network is deleted on every exit.
#
# Environment:
#   LBFWD_SOAK_PREFIX   namespace prefix (1-8 of [a-z0-9]; default soak)
#   LBFWD_SOAK_LBFWD, LBFWD_SOAK_LBCTL  prebuilt binaries (default: a debug
#                       `cargo build` of both)
#   LBFWD_SOAK_BACKEND  af_packet (default) or af_xdp
#   LBFWD_SOAK_SEED     the random seed (default: from the clock; printed)
#   LBFWD_SOAK_RESTART_EVERY  mean seconds between kill -9 restarts (20)
#   LBFWD_SOAK_PERSIST  1 (default) or 0: lbfwd with `[flow] persist = false`,
#                       to see the judge catch the flows a restart re-maps
#                       (the run then fails)
#   LBFWD_SOAK_LOG_DIR  where lbfwd's log, the servers' accept logs, every
#                       change (events.jsonl) and summary.json are kept
#                       (default /tmp/lbfwd-soak-PREFIX)
# Run it under `flock /tmp/lbfwd-netns.lock` when other namespace tests may
# run on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-60}"
[[ "$DURATION" =~ ^[0-9]+$ ]] && [ "$DURATION" -ge 5 ] \
  || { echo "soak.sh: SECONDS must be an integer of at least 5, got '$DURATION'" >&2; exit 2; }
if [ "$(id -u)" != 0 ]; then
  echo "soak.sh: run as root (it creates network namespaces)" >&2
  exit 1
fi

P="${LBFWD_SOAK_PREFIX:-soak}"
BACKEND="${LBFWD_SOAK_BACKEND:-af_packet}"
SEED="${LBFWD_SOAK_SEED:-$(( $(date +%s) % 100000 ))}"
RESTART_EVERY="${LBFWD_SOAK_RESTART_EVERY:-20}"
PERSIST="${LBFWD_SOAK_PERSIST:-1}"
case "$PERSIST" in
  1) PERSIST_ARGS=() ;;
  0) PERSIST_ARGS=(--no-persist) ;;
  *) echo "soak.sh: LBFWD_SOAK_PERSIST must be 0 or 1, got '$PERSIST'" >&2; exit 2 ;;
esac
LOG_DIR="${LBFWD_SOAK_LOG_DIR:-/tmp/lbfwd-soak-$P}"
case "$BACKEND" in
  af_packet) FEATURES=() ;;
  af_xdp) FEATURES=(--features lbfwd-forwarder/af_xdp) ;;
  *) echo "soak.sh: LBFWD_SOAK_BACKEND must be af_packet or af_xdp, got '$BACKEND'" >&2; exit 2 ;;
esac

if [ -n "${LBFWD_SOAK_LBFWD:-}" ]; then
  LBFWD="$(realpath "$LBFWD_SOAK_LBFWD")"
  LBCTL="$(realpath "${LBFWD_SOAK_LBCTL:-$(dirname "$LBFWD")/lbctl}")"
else
  echo "== building lbfwd and lbctl"
  cargo build -p lbfwd-forwarder -p lbfwd-control --bin lbfwd --bin lbctl "${FEATURES[@]}"
  LBFWD="$(realpath "${CARGO_TARGET_DIR:-target}/debug/lbfwd")"
  LBCTL="$(realpath "${CARGO_TARGET_DIR:-target}/debug/lbctl")"
fi
[ -x "$LBFWD" ] && [ -x "$LBCTL" ] || { echo "soak.sh: no lbfwd/lbctl at $LBFWD, $LBCTL" >&2; exit 1; }

. scripts/lib/topo.sh
topo_check_prefix "$P"
ST="$TOPO_STATE_ROOT/$P"
PY="$(topo_python)"

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -d "$ST" ]; then
    rm -rf "$LOG_DIR"
    mkdir -p "$LOG_DIR"
    cp -a "$ST"/*.log "$ST"/*.jsonl "$ST"/*.json "$ST"/*.toml "$LOG_DIR"/ 2>/dev/null || true
  fi
  topo_down "$P" quiet || true
  [ -z "$(topo_namespaces "$P")" ] || { echo "soak.sh: namespaces of $P are left behind" >&2; rc=1; }
  [ "$rc" = 0 ] || echo "soak.sh: FAILED (exit $rc); logs in $LOG_DIR" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building the network $P (scripts/lib/topo.sh)"
topo_up "$P"
eval "$(topo_env "$P" | sed 's/^/T_/')"

# The soak's load balancers take more addresses than topo.sh's one VIP: the
# router sends the whole public range to the lb node, each backend holds
# them on its loopback.
ip -n "$P-router" route add 203.0.113.0/28 via "$T_LB_IP4"
ip -n "$P-router" -6 route add 2001:db8:100::/120 via "$T_LB_IP6"
UDP_ADDRS="$T_VIP6"
for a in $(seq 8 15); do
  UDP_ADDRS+=",203.0.113.$a"
done
NIC_ARGS=()
for i in 1 2 3; do
  ns="$P-be$i"
  for a in $(seq 8 15); do
    [ "203.0.113.$a" = "$T_VIP4" ] || ip -n "$ns" addr add "203.0.113.$a/32" dev lo
  done
  rm -f "$ST/be$i.soak-ready"
  ip netns exec "$ns" "$PY" scripts/lib/soak-server.py "be$i" "$ST/be$i.soak-ready" "$ST/be$i.accept.log" \
    81 1100 "$UDP_ADDRS" </dev/null >"$ST/be$i.soak-server.log" 2>&1 &
  vx="T_BE${i}_VXMAC"; ul="T_BE${i}_IP4"
  NIC_ARGS+=(--nic "be$i,00000000-0000-4000-8000-00000000000$i,${!ul},${!vx}")
done
for i in 1 2 3; do
  for _ in $(seq 100); do [ -e "$ST/be$i.soak-ready" ] && break; sleep 0.1; done
  [ -e "$ST/be$i.soak-ready" ] || { cat "$ST/be$i.soak-server.log" >&2; echo "soak.sh: the soak server of be$i did not start" >&2; exit 1; }
done

# The appliance part of topo.sh's config (everything before the desired
# state), with a flow table small enough for the test machine; soak.py
# writes the desired state after it.
topo_config "$P" --backend "$BACKEND" --idle backoff --no-load-balancer \
  | sed '/^\[\[pool\]\]/,$d' >"$ST/appliance.toml"
printf '[flow]\ncapacity = 65536\n' >>"$ST/appliance.toml"
[ "$PERSIST" = 1 ] || printf 'persist = false\n' >>"$ST/appliance.toml"

echo "== soak: $DURATION s, seed $SEED, backend $BACKEND, a restart every ~$RESTART_EVERY s, flow persist $PERSIST"
rc=0
ip netns exec "$P-client" "$PY" scripts/lib/soak.py --seconds "$DURATION" --prefix "$P" \
  --lbfwd "$LBFWD" --lbctl "$LBCTL" --appliance "$ST/appliance.toml" --config "$ST/lbfwd.toml" \
  --socket "$ST/lbfwd.sock" --run-dir "$ST" --network "net-$P" --vni "$T_VNI" "${NIC_ARGS[@]}" \
  --seed "$SEED" --restart-every "$RESTART_EVERY" "${PERSIST_ARGS[@]}" || rc=$?
exit "$rc"
