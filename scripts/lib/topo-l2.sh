#!/usr/bin/env bash
# Two lbfwd appliances on one layer-2 segment, VRRP (keepalived) picking the
# one that answers ARP/NDP for the VIPs: the test network of the layer-2
# announcement (tests/tests/l2.rs). Reuses topo.sh's and topo-ecmp.sh's
# pieces; namespaces are PREFIX-ROLE.
#
#   client 198.51.100.2 ── router ──┬── segment PREFIX-bl 10.0.2.0/24, fd00:2::/64
#   2001:db8:1::2                   │     router .1   lb1 .2   lb2 .3
#                                   │     (lbfwd [l2] + keepalived each)
#                                   └── bridge PREFIX-br 10.0.3.1: be1, be2, be3
#
# VIPs: 203.0.113.10 and 2001:db8:100::10, which the router reaches on-link
# over the segment (`ip route add VIP dev PREFIX-bl`: it asks ARP/NDP for
# the VIP itself), and, MetalLB's classic case, 10.0.2.100 and fd00:2::100
# from a pool inside the segment's own subnet. No BGP anywhere.
#
# Usage: topo-l2.sh COMMAND PREFIX [ARGS]
#   up PREFIX                 build the network and start the servers
#   down PREFIX               stop every process in its namespaces, delete them
#   env PREFIX                the network's facts as KEY=VALUE lines
#   config PREFIX N [BACKEND] the lbfwd config of appliance N (1 or 2), with [l2],
#                             on BACKEND: af_packet, af_xdp or dpdk (default:
#                             $LBFWD_L2_BACKEND, else af_packet)
#   keepalived PREFIX N LBCTL start keepalived on appliance N (config from
#                             config/examples/keepalived/, notify calling LBCTL)
set -euo pipefail

L2_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=topo-ecmp.sh
. "$L2_DIR/topo-ecmp.sh"

L2_SEG4=10.0.2.100
L2_SEG6=fd00:2::100
L2_VRID=51
L2_METRICS_PORT=9464

l2_up() {
  local p="$1" st="$TOPO_STATE_ROOT/$1" n
  ecmp_down "$p" quiet
  mkdir -p "$st/lb1" "$st/lb2"
  topo_add_namespaces "$p" $ECMP_ROLES
  topo_sysctl "$p" router net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0
  for n in 1 2; do
    topo_sysctl "$p" "lb$n" net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0
  done
  topo_client_link "$p"
  ecmp_segment "$p"
  # The VIPs outside the segment's subnet are on-link: the router asks
  # the segment for them (ARP/NDP), and whoever answers gets the traffic.
  ip -n "$p-router" route add "$TOPO_VIP4/32" dev "$p-bl"
  ip -n "$p-router" -6 route add "$TOPO_VIP6/128" dev "$p-bl"
  # The backends (as in topo.sh), each owning all four VIPs; IPv4 underlay.
  topo_backends "$p" "$TOPO_VIP4 $L2_SEG4" "$TOPO_VIP6 $L2_SEG6" "4"
  # The servers listen on all four VIPs.
  TOPO_VIP4="$TOPO_VIP4,$L2_SEG4" TOPO_VIP6="$TOPO_VIP6,$L2_SEG6" topo_start_servers "$p"
}

l2_env() {
  local p="$1" n
  [ -n "$(ecmp_namespaces "$p")" ] || topo_die "no L2 network with prefix $p (run: topo-l2.sh up $p)"
  cat <<EOF
PREFIX=$p
STATE_DIR=$TOPO_STATE_ROOT/$p
VIP4=$TOPO_VIP4
VIP6=$TOPO_VIP6
SEG_VIP4=$L2_SEG4
SEG_VIP6=$L2_SEG6
ROUTER_DEV=$p-bl
ROUTER_MAC=$(topo_mac "$p-router" "$p-bl")
LB_DEV=$p-l0
BACKENDS=be1,be2,be3
METRICS=127.0.0.1:$L2_METRICS_PORT
EOF
  for n in 1 2; do
    echo "LB${n}_IP4=$(ecmp_lb4 "$n")"
    echo "LB${n}_MAC=$(topo_mac "$p-lb$n" "$p-l0")"
    echo "LB${n}_SOCKET=$TOPO_STATE_ROOT/$p/lb$n/lbfwd.sock"
  done
}

l2_config() {
  local p="$1" n="$2" st="$TOPO_STATE_ROOT/$1" i
  case "$n" in 1|2) ;; *) topo_die "config: appliance must be 1 or 2, got '$n'" ;; esac
  # The dataplane backend: af_packet (default), af_xdp, or dpdk (DPDK's
  # net_af_packet PMD on the veth, no hugepages: the kernel keeps the veth,
  # so keepalived runs on it as on the other backends).
  local backend="${3:-${LBFWD_L2_BACKEND:-af_packet}}" port="$p-l0" extra=""
  case "$backend" in
    af_packet|af_xdp) ;;
    dpdk)
      port="net_af_packet0"
      extra="
[dataplane.dpdk]
no_huge = true
memory_mb = 512
vdevs = [\"net_af_packet0,iface=$p-l0\"]
"
      ;;
    *) topo_die "config: the backend must be af_packet, af_xdp or dpdk, got '$backend'" ;;
  esac
  cat <<EOF
# lbfwd config of appliance lb$n of the L2 network '$p' (scripts/lib/topo-l2.sh).
[dataplane]
backend = "$backend"
interfaces = ["$port"]
workers = [$(( $(nproc) - 1 ))]
idle = "backoff"
$extra

[underlay]
encap = "vxlan"
source_ipv4 = "$(ecmp_lb4 "$n")"
next_hop_mac = "$(topo_mac "$p-router" "$p-bl")"
mtu = $TOPO_UNDERLAY_MTU

[control]
socket = "$st/lb$n/lbfwd.sock"
state_dir = "$st/lb$n/state"

# Each appliance in its own namespace: the same address on both.
[metrics]
listen = "127.0.0.1:$L2_METRICS_PORT"

# keepalived decides (notify master/backup/fault: lbctl announce on|off).
[announce]
initial = "off"

[l2]
interfaces = ["$port"]

# MetalLB's classic case: addresses inside the segment's own subnet.
[[pool]]
name = "segment"
addresses = ["$L2_SEG4/32", "$L2_SEG6/128"]

[[pool]]
name = "public"
addresses = ["$TOPO_VIP4/32", "$TOPO_VIP6/128"]
EOF
  ecmp_config_backends "$p"
  cat <<EOF

[[load_balancer]]
name = "local"
type = "Public"
ip_families = ["IPv4", "IPv6"]
network = "net-$p"
network_interface_selector = { match_labels = { app = "web" } }
ports = [ { protocol = "TCP", port = 80 } ]
EOF
}

# keepalived for appliance N: the shipped example
# (config/examples/keepalived/) with this network's names and paths.
l2_keepalived() {
  local p="$1" n="$2" lbctl="$3" st="$TOPO_STATE_ROOT/$1" ex self peer prio
  ex="$(cd "$L2_DIR/../../config/examples/keepalived" && pwd)"
  case "$n" in 1) prio=150 ;; 2) prio=100 ;; *) topo_die "keepalived: N must be 1 or 2" ;; esac
  self="$(ecmp_lb4 "$n")"
  peer="$(ecmp_lb4 "$(( 3 - n ))")"
  sed -e "s|interface l0 |interface $p-l0 |" -e "s|priority 150 |priority $prio |" \
      -e "s|unicast_src_ip 10.0.2.2 |unicast_src_ip $self |" \
      -e "s|^        10.0.2.3 |        $peer |" \
      -e "s|/run/lbfwd/lbfwd.sock|$st/lb$n/lbfwd.sock|g" -e "s|/usr/bin/lbctl|$lbctl|g" \
      -e "s|/etc/keepalived/|$ex/|g" \
      "$ex/keepalived.conf" >"$st/lb$n/keepalived.conf"
  ip netns exec "$p-lb$n" keepalived --dont-fork --log-console --log-detail --vrrp \
    --use-file "$st/lb$n/keepalived.conf" --pid "$st/lb$n/keepalived.pid" \
    --vrrp_pid "$st/lb$n/keepalived-vrrp.pid" </dev/null >"$st/lb$n/keepalived.log" 2>&1 &
  echo $! >"$st/lb$n/keepalived.main"
}

l2_main() {
  [ "$(id -u)" = 0 ] || topo_die "must run as root (network namespaces)"
  local cmd="${1:-}"
  case "$cmd" in
    up) topo_check_prefix "${2:-}"; l2_up "$2" ;;
    down) topo_check_prefix "${2:-}"; ecmp_down "$2" ;;
    env) topo_check_prefix "${2:-}"; l2_env "$2" ;;
    config) topo_check_prefix "${2:-}"; l2_config "$2" "${3:-}" "${4:-}" ;;
    keepalived) topo_check_prefix "${2:-}"; l2_keepalived "$2" "${3:-}" "${4:?LBCTL path}" ;;
    *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then l2_main "$@"; fi
