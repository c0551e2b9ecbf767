#!/usr/bin/env bash
# Two lbfwd appliances in ECMP behind a BGP router: the test network of the
# BGP announcement (tests/tests/bgp.rs). Reuses topo.sh's pieces (veth pairs,
# the backends' servers and VXLAN devices); namespaces are PREFIX-ROLE.
#
#   client 198.51.100.2 ── router ──┬── segment PREFIX-bl 10.0.2.0/24, fd00:2::/64
#   2001:db8:1::2          BIRD 2   │     router .1   lb1 .2   lb2 .3
#                          AS 65000 │     (lbfwd + its own BIRD, AS 65001)
#                                   └── bridge PREFIX-br 10.0.3.1: be1, be2, be3
#
# The router learns the VIPs (203.0.113.10/32, 2001:db8:100::10/128) from
# both appliances over BGP (one IPv4 and one IPv6 session each, BFD on) and
# installs them into its kernel as ECMP routes (`merge paths on`), hashed on
# the L4 five-tuple (fib_multipath_hash_policy=1, IPv4 and IPv6). The lb
# segment is a bridge, so an appliance's link going down is silent to the
# router: only BFD (or the hold time) tells it.
#
# Usage: topo-ecmp.sh COMMAND PREFIX [ARGS]
#   up PREFIX             build the network, start the servers and the router's BIRD
#   down PREFIX           stop every process in its namespaces, delete them
#   env PREFIX            the network's facts as KEY=VALUE lines
#   config PREFIX N       the lbfwd config of appliance N (1 or 2), with [bgp]
#   routes PREFIX         the router's kernel routes of both VIPs (`ip route`)
#   birdc PREFIX ARGS...  birdc on the router's BIRD
set -euo pipefail

ECMP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=topo.sh
. "$ECMP_DIR/topo.sh"

ECMP_ROLES="client router lb1 lb2 be1 be2 be3"
ECMP_ROUTER_ASN=65000
ECMP_LB_ASN=65001
ecmp_lb4() { echo "10.0.2.$(( $1 + 1 ))"; }
ecmp_lb6() { echo "fd00:2::$(( $1 + 1 ))"; }

ecmp_namespaces() {
  ip netns list 2>/dev/null | awk '{print $1}' \
    | grep -E "^$1-(client|router|lb[12]|be[0-9])\$" || true
}

ecmp_down() {
  local p="$1" ns pids
  for ns in $(ecmp_namespaces "$p"); do
    # Every process in these namespaces is ours (servers, BIRDs, lbfwd,
    # clients): end them by id, then delete the namespace.
    pids="$(ip netns pids "$ns" 2>/dev/null || true)"
    if [ -n "$pids" ]; then
      kill $pids 2>/dev/null || true
      for _ in $(seq 30); do
        pids="$(ip netns pids "$ns" 2>/dev/null || true)"
        [ -z "$pids" ] && break
        sleep 0.1
      done
      [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "${TOPO_STATE_ROOT:?}/$p"
  if [ "${2:-}" != quiet ]; then
    [ -z "$(ecmp_namespaces "$p")" ] || topo_die "could not delete every namespace of $p"
  fi
}

ecmp_router_bird_conf() {
  local p="$1" n
  cat <<EOF
# The top-of-rack router of the ECMP test network (scripts/lib/topo-ecmp.sh).
router id $TOPO_ROUTER_L4;
timeformat protocol iso long;
log stderr all;
protocol device { scan time 2; }
protocol direct { ipv4; ipv6; interface "$p-bl"; }
protocol kernel k4 {
  ipv4 { import none; export where source = RTS_BGP; };
  merge paths on;
}
protocol kernel k6 {
  ipv6 { import none; export where source = RTS_BGP; };
  merge paths on;
}
protocol bfd {
  interface "$p-bl" { min rx interval 100 ms; min tx interval 100 ms; multiplier 5; };
}
template bgp appliance {
  local as $ECMP_ROUTER_ASN;
  direct;
  hold time 9; keepalive time 3;
  connect retry time 2; connect delay time 1; error wait time 1, 4; error forget time 10;
  bfd on;
}
EOF
  for n in 1 2; do
    cat <<EOF
protocol bgp lb${n}_v4 from appliance {
  neighbor $(ecmp_lb4 "$n") as $ECMP_LB_ASN;
  ipv4 { import all; export none; };
}
protocol bgp lb${n}_v6 from appliance {
  neighbor $(ecmp_lb6 "$n") as $ECMP_LB_ASN;
  ipv6 { import all; export none; };
}
EOF
  done
}

ecmp_segment() {
  # ecmp_segment PREFIX: the appliances' segment, a bridge PREFIX-bl in the
  # router (the ToR's VLAN), with lb1 and lb2 on it.
  local p="$1" n ns
  ip -n "$p-router" link add "$p-bl" address 02:00:00:00:02:01 mtu "$TOPO_UNDERLAY_MTU" type bridge
  ip -n "$p-router" addr add "$TOPO_ROUTER_L4/24" dev "$p-bl"
  ip -n "$p-router" addr add "$TOPO_ROUTER_L6/64" dev "$p-bl" nodad
  ip -n "$p-router" link set "$p-bl" up
  for n in 1 2; do
    ns="$p-lb$n"
    topo_veth "$p" router "$p-rl$n" "02:00:00:00:02:a$n" "lb$n" "$p-l0" "02:00:00:00:02:0$(( n + 1 ))" "$TOPO_UNDERLAY_MTU"
    ip -n "$p-router" link set "$p-rl$n" master "$p-bl"
    ip -n "$ns" addr add "$(ecmp_lb4 "$n")/24" dev "$p-l0"
    ip -n "$ns" addr add "$(ecmp_lb6 "$n")/64" dev "$p-l0" nodad
    ip -n "$ns" route add default via "$TOPO_ROUTER_L4"
    ip -n "$ns" -6 route add default via "$TOPO_ROUTER_L6"
  done
}

ecmp_up() {
  local p="$1" st="$TOPO_STATE_ROOT/$1" n
  ecmp_down "$p" quiet
  mkdir -p "$st/lb1" "$st/lb2"
  topo_add_namespaces "$p" $ECMP_ROLES
  topo_sysctl "$p" router net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0 \
    net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1
  for n in 1 2; do
    # Keep the IPv6 address when the link goes down (a test takes it down
    # and up again), as IPv4 does.
    topo_sysctl "$p" "lb$n" net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0 \
      net.ipv6.conf.all.keep_addr_on_down=1 net.ipv6.conf.default.keep_addr_on_down=1
  done
  topo_client_link "$p"
  ecmp_segment "$p"
  topo_backends "$p" "$TOPO_VIP4" "$TOPO_VIP6" "4 6"
  topo_start_servers "$p"

  # The router's BIRD: learns the VIPs from the appliances.
  ecmp_router_bird_conf "$p" >"$st/router-bird.conf"
  ip netns exec "$p-router" env TZ=UTC bird -f -c "$st/router-bird.conf" -s "$st/router-bird.ctl" \
    -P "$st/router-bird.pid" </dev/null >"$st/router-bird.log" 2>&1 &
  for _ in $(seq 100); do
    birdc -s "$st/router-bird.ctl" show status >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$st/router-bird.log" >&2
  topo_die "the router's BIRD did not start (log above)"
}

ecmp_env() {
  local p="$1" n
  [ -n "$(ecmp_namespaces "$p")" ] || topo_die "no ECMP network with prefix $p (run: topo-ecmp.sh up $p)"
  cat <<EOF
PREFIX=$p
STATE_DIR=$TOPO_STATE_ROOT/$p
VIP4=$TOPO_VIP4
VIP6=$TOPO_VIP6
ROUTER_BIRD_SOCKET=$TOPO_STATE_ROOT/$p/router-bird.ctl
LB_DEV=$p-l0
BACKENDS=be1,be2,be3
EOF
  for n in 1 2; do
    echo "LB${n}_IP4=$(ecmp_lb4 "$n")"
    echo "LB${n}_IP6=$(ecmp_lb6 "$n")"
    echo "LB${n}_SOCKET=$TOPO_STATE_ROOT/$p/lb$n/lbfwd.sock"
  done
}

ecmp_config() {
  local p="$1" n="$2" st="$TOPO_STATE_ROOT/$1" i
  case "$n" in 1|2) ;; *) topo_die "config: appliance must be 1 or 2, got '$n'" ;; esac
  cat <<EOF
# lbfwd config of appliance lb$n of the ECMP network '$p' (scripts/lib/topo-ecmp.sh).
[dataplane]
backend = "af_packet"
interfaces = ["$p-l0"]
workers = [$(( $(nproc) - 1 ))]
idle = "backoff"

[underlay]
encap = "vxlan"
source_ipv4 = "$(ecmp_lb4 "$n")"
source_ipv6 = "$(ecmp_lb6 "$n")"
next_hop_mac = "$(topo_mac "$p-router" "$p-bl")"
mtu = $TOPO_UNDERLAY_MTU

[control]
socket = "$st/lb$n/lbfwd.sock"
state_dir = "$st/lb$n/state"

[bgp]
asn = $ECMP_LB_ASN
router_id = "$(ecmp_lb4 "$n")"
shutdown_delay_s = 3
# BFD: lbfwd gone is noticed after 3 x 100 ms (the default 5 x 100 ms
# leaves less margin under the test's one-second bound on a loaded machine).
bfd_multiplier = 3

[[bgp.peer]]
address = "$TOPO_ROUTER_L4"
asn = $ECMP_ROUTER_ASN
bfd = true

[[bgp.peer]]
address = "$TOPO_ROUTER_L6"
asn = $ECMP_ROUTER_ASN
bfd = true

[[pool]]
name = "public"
addresses = ["203.0.113.0/28", "2001:db8:100::/120"]
bgp = { communities = ["$ECMP_LB_ASN:100"] }
EOF
  ecmp_config_backends "$p"
}

# The backends' network, their three interfaces and the load balancer "web"
# (TCP/80 on both VIPs): the part of an appliance's config that both
# two-appliance networks (this one and topo-l2.sh's) share.
ecmp_config_backends() {
  local p="$1" i
  cat <<EOF

[[network]]
name = "net-$p"
vni = $TOPO_VNI
EOF
  for i in 1 2 3; do
    cat <<EOF

[[network_interface]]
name = "be$i"
uid = "00000000-0000-4000-8000-00000000000$i"
network = "net-$p"
labels = { app = "web" }
underlay = "$(topo_be4 "$i")"
mac = "$(topo_mac "$p-be$i" "$p-vx4")"
EOF
  done
  cat <<EOF

[[load_balancer]]
name = "web"
type = "Public"
ip_families = ["IPv4", "IPv6"]
ips = ["$TOPO_VIP4", "$TOPO_VIP6"]
network = "net-$p"
network_interface_selector = { match_labels = { app = "web" } }
ports = [ { protocol = "TCP", port = 80 } ]
EOF
}

ecmp_main() {
  [ "$(id -u)" = 0 ] || topo_die "must run as root (network namespaces)"
  local cmd="${1:-}"
  case "$cmd" in
    up) topo_check_prefix "${2:-}"; ecmp_up "$2" ;;
    down) topo_check_prefix "${2:-}"; ecmp_down "$2" ;;
    env) topo_check_prefix "${2:-}"; ecmp_env "$2" ;;
    config) topo_check_prefix "${2:-}"; ecmp_config "$2" "${3:-}" ;;
    routes)
      topo_check_prefix "${2:-}"
      ip -n "$2-router" route show "$TOPO_VIP4/32"
      ip -n "$2-router" -6 route show "$TOPO_VIP6/128"
      ;;
    birdc) topo_check_prefix "${2:-}"; local p="$2"; shift 2
      birdc -s "$TOPO_STATE_ROOT/$p/router-bird.ctl" "$@" ;;
    *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then ecmp_main "$@"; fi
