#!/usr/bin/env bash
# The demo: builds a small network of namespaces, runs lbfwd, sends real
# traffic to the VIP and shows which backend answered.
#
#   scripts/demo.sh                           # as root; AF_PACKET backend
#   LBFWD_DEMO_BACKEND=af_xdp scripts/demo.sh  # AF_XDP (builds with --features af_xdp)
#
# The network (scripts/lib/topo.sh, shared with the end-to-end tests):
#
#   client ── router ── lb (lbfwd)        VIPs 203.0.113.10, 2001:db8:100::10
#                 └──── be1, be2, be3     VXLAN VNI 100, servers on the VIPs
#
# The router learns the VIPs from lbfwd over BGP (its own BIRD 2 peers with
# the BIRD that lbfwd runs) and sends VIP traffic to the lb node; lbfwd picks a backend
# (Maglev), wraps the packet in VXLAN toward it; the backend's kernel
# unwraps it and its server answers the client directly (direct server
# return). Everything is deleted on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "demo.sh: run as root (it creates network namespaces)" >&2
  exit 1
fi

. scripts/lib/deps.sh
install_deps

BACKEND="${LBFWD_DEMO_BACKEND:-af_packet}"
FEATURES=()
case "$BACKEND" in
  af_packet) ;;
  af_xdp) FEATURES=(--features lbfwd-forwarder/af_xdp) ;;
  *) echo "demo.sh: LBFWD_DEMO_BACKEND must be af_packet or af_xdp, got '$BACKEND'" >&2; exit 1 ;;
esac

echo "== building lbfwd and lbctl (release)"
cargo build --release -p lbfwd-forwarder -p lbfwd-control "${FEATURES[@]}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
LBFWD="$(realpath "$TARGET_DIR/release/lbfwd")"
LBCTL="$(realpath "$TARGET_DIR/release/lbctl")"

. scripts/lib/topo.sh
P=lbdemo
ST="$TOPO_STATE_ROOT/$P"
LBFWD_PID=

stop_lbfwd() {
  # Stops lbfwd with SIGTERM (it prints its final counters) and shows its
  # output; returns lbfwd's exit status.
  local rc=0
  [ -n "$LBFWD_PID" ] || return 0
  if kill -0 "$LBFWD_PID" 2>/dev/null; then
    kill -TERM "$LBFWD_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$LBFWD_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$LBFWD_PID" 2>/dev/null; then
      echo "lbfwd did not stop within 10 s of SIGTERM; killing it"
      kill -KILL "$LBFWD_PID" 2>/dev/null || true
    fi
  fi
  wait "$LBFWD_PID" 2>/dev/null || rc=$?
  LBFWD_PID=
  return $rc
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_lbfwd >/dev/null 2>&1 || true
  echo "== tearing down the network"
  topo_down "$P" quiet || true
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building the network (namespaces $P-client, -router, -lb, -be1..3)"
topo_up "$P"
eval "$(topo_env "$P" | sed 's/^/T_/')"
cat <<EOF
   client   $T_CLIENT_IP4, $T_CLIENT_IP6
   lb node  $T_LB_IP4, $T_LB_IP6 on $T_LB_DEV (MAC $T_LB_MAC), next hop MAC $T_NEXT_HOP_MAC
   be1      underlay $T_BE1_IP4, $T_BE1_IP6, VXLAN MAC $T_BE1_VXMAC
   be2      underlay $T_BE2_IP4, $T_BE2_IP6, VXLAN MAC $T_BE2_VXMAC
   be3      underlay $T_BE3_IP4, $T_BE3_IP6, VXLAN MAC $T_BE3_VXMAC
   VIPs     $T_VIP4, $T_VIP6 (TCP 80 and UDP 1024-2048 allowed)
EOF

echo "== the router learns the VIPs over BGP: its own BIRD 2 (AS 65000) peers with lbfwd's (AS 65001)"
# topo.sh gives the router static routes to the VIPs; here BGP replaces them.
ip -n "$P-router" route del "$T_VIP4/32" 2>/dev/null || true
ip -n "$P-router" -6 route del "$T_VIP6/128" 2>/dev/null || true
cat >"$ST/router-bird.conf" <<EOF
router id $T_ROUTER_LB_IP4;
protocol device { scan time 5; }
protocol kernel { ipv4 { import none; export where source = RTS_BGP; }; merge paths on; }
protocol kernel { ipv6 { import none; export where source = RTS_BGP; }; merge paths on; }
protocol bfd { interface "$T_ROUTER_LB_DEV" { min rx interval 100 ms; min tx interval 100 ms; }; }
template bgp lbfwd { local as 65000; direct; hold time 9; keepalive time 3; bfd on; }
protocol bgp lb_v4 from lbfwd { neighbor $T_LB_IP4 as 65001; ipv4 { import all; export none; }; }
protocol bgp lb_v6 from lbfwd { neighbor $T_LB_IP6 as 65001; ipv6 { import all; export none; }; }
EOF
ip netns exec "$P-router" bird -f -c "$ST/router-bird.conf" -s "$ST/router-bird.ctl" -P "$ST/router-bird.pid" \
  </dev/null >"$ST/router-bird.log" 2>&1 &
ROUTER_BIRD="birdc -s $ST/router-bird.ctl"

CONFIG="$ST/lbfwd.toml"
topo_config "$P" --backend "$BACKEND" >"$CONFIG"
cat >>"$CONFIG" <<EOF

[bgp]
asn = 65001
router_id = "$T_LB_IP4"
shutdown_delay_s = 1

[[bgp.peer]]
address = "$T_ROUTER_LB_IP4"
asn = 65000
bfd = true

[[bgp.peer]]
address = "$T_ROUTER_LB_IP6"
asn = 65000
bfd = true
EOF
echo "== lbfwd check --config $CONFIG"
"$LBFWD" check --config "$CONFIG"

echo "== starting lbfwd ($BACKEND) in namespace $P-lb"
ip netns exec "$P-lb" "$LBFWD" run --config "$CONFIG" >"$ST/lbfwd.log" 2>&1 &
LBFWD_PID=$!
ready=
for _ in $(seq 150); do
  if ! kill -0 "$LBFWD_PID" 2>/dev/null; then
    rc=0; wait "$LBFWD_PID" || rc=$?; LBFWD_PID=
    echo
    echo "demo.sh: FAILED: \`lbfwd run\` exited with status $rc before forwarding anything. Its output:"
    sed 's/^/    /' "$ST/lbfwd.log"
    exit 1
  fi
  if [ -n "$(topo_in "$P" client curl -s --max-time 1 "http://$T_VIP4/" 2>/dev/null)" ]; then
    ready=1
    break
  fi
  sleep 0.2
done
if [ -z "$ready" ]; then
  echo "demo.sh: FAILED: lbfwd runs but the VIP did not answer within 30 s. Its output so far:"
  sed 's/^/    /' "$ST/lbfwd.log"
  echo "   the router's BGP sessions:"
  $ROUTER_BIRD show protocols 2>&1 | sed 's/^/    /' || true
  exit 1
fi

echo "== the router's routes to the VIPs, learned from lbfwd over BGP (birdc show route)"
$ROUTER_BIRD show route "$T_VIP4/32" all | sed 's/^/   /'
$ROUTER_BIRD show route "$T_VIP6/128" | sed 's/^/   /'
echo "== lbctl announce (lbfwd's side: per VIP, per peer)"
"$LBCTL" --socket "$ST/lbfwd.sock" announce | sed 's/^/   /'

failed=0
declare -A count=()
echo "== 12 HTTP requests from the client to http://$T_VIP4/ and 4 to http://[$T_VIP6]/, each a new connection"
for i in $(seq 16); do
  if [ "$i" -le 12 ]; then url="http://$T_VIP4/"; else url="http://[$T_VIP6]/"; fi
  who="$(topo_in "$P" client curl -sS -g --max-time 3 -H 'Connection: close' "$url" 2>&1)" || { who="FAILED ($who)"; failed=1; }
  printf '   request %2d  %-28s answered by %s\n' "$i" "$url" "$who"
  count[$who]=$(( ${count[$who]:-0} + 1 ))
done
printf '   per backend:'; for k in "${!count[@]}"; do printf ' %s=%s' "$k" "${count[$k]}"; done; echo

echo "== UDP: 3 datagrams to $T_VIP4:1500 (allowed), each from a new source port"
topo_udp "$P" "$T_VIP4" 1500 "hello from the demo" 2 3 | sed 's/^/   answer: /' || failed=1
echo "== UDP: 1 datagram to $T_VIP4:3000 (not in the load balancer's ports)"
if got="$(topo_udp "$P" "$T_VIP4" 3000 "should be dropped" 1 1)"; then
  echo "   answered: $got  (unexpected: lbfwd should drop it)"; failed=1
else
  echo "   no answer (dropped by lbfwd's port filter)"
fi

echo "== ping $T_VIP4 (ICMP echo to a VIP is dropped by default)"
if topo_in "$P" client ping -n -c 3 -i 0.2 -W 1 "$T_VIP4" | sed -n 's/^\(.*packets transmitted.*\)$/   \1/p'; then
  echo "   answered (unexpected)"; failed=1
else
  echo "   no answer, as expected"
fi
echo "== ping the lb node's own address $T_LB_IP4 (host path: answered by its kernel)"
topo_in "$P" client ping -n -c 2 -i 0.2 -W 1 "$T_LB_IP4" | sed -n 's/^\(.*packets transmitted.*\)$/   \1/p' || failed=1

echo "== counters"
if "$LBCTL" --socket "$ST/lbfwd.sock" stats 2>/dev/null; then :; else
  echo "   (lbctl stats is not available; lbfwd prints its final counters when it stops)"
fi
echo "== stopping lbfwd (SIGTERM); its output:"
rc=0; stop_lbfwd || rc=$?
sed 's/^/   /' "$ST/lbfwd.log"
[ "$rc" = 0 ] || { echo "demo.sh: lbfwd exited with status $rc after SIGTERM (expected 0)"; failed=1; }

if [ "$failed" != 0 ]; then
  echo "demo.sh: FAILED: see above"
  exit 1
fi
echo "== demo done: every request answered through lbfwd by the backend shown, the dropped ones were dropped"
