#!/usr/bin/env bash
# lbfwd's test network: one implementation shared by scripts/demo.sh and the
# end-to-end tests (tests/). Everything lives in network namespaces named
# PREFIX-ROLE; every interface is named PREFIX-xx (PREFIX: 1-8 characters of
# [a-z0-9], so names stay within the kernel's 15-character limit).
#
#   client 198.51.100.2 ──── router ──── lb (lbfwd) 10.0.2.2 / fd00:2::2
#   2001:db8:1::2            │  bridge PREFIX-br 10.0.3.1 / fd00:3::1
#                            ├── be1 10.0.3.11 / fd00:3::11  vxlan MAC 02:00:00:00:10:11
#                            ├── be2 10.0.3.12 / fd00:3::12  vxlan MAC 02:00:00:00:10:12
#                            └── be3 10.0.3.13 / fd00:3::13  vxlan MAC 02:00:00:00:10:13
#
# The router routes the VIPs (203.0.113.10, 2001:db8:100::10) to the lb node.
# lbfwd there encapsulates them in VXLAN (VNI 100) toward a backend's underlay
# address; the backend's kernel decapsulates (devices PREFIX-vx4 and
# PREFIX-vx6, one per underlay family), its servers answer from the VIP
# (bound on its loopback) straight to the client through the router: direct
# server return, never back through lbfwd.
#
# Usage: topo.sh COMMAND PREFIX [OPTIONS]
#   up PREFIX          build the network and start the servers (replaces a
#                      leftover network of the same PREFIX)
#   down PREFIX        stop every process in its namespaces, delete them
#   env PREFIX         print the network's facts as KEY=VALUE lines (MACs are
#                      read back from the namespaces)
#   config PREFIX [--backend af_packet|af_xdp|dpdk] [--underlay 4|6]
#                 [--exclude beN]... [--workers "1,2"] (default: the last core)
#                 [--idle busy|backoff] [--no-load-balancer]
#                      print the lbfwd config (TOML) for this network; with
#                      dpdk, lbfwd drives PREFIX-l0 through DPDK's
#                      net_af_packet PMD (no hugepages, idle backoff); without
#                      --idle, af_packet and af_xdp keep lbfwd's default;
#                      --no-load-balancer leaves out the load balancer `web`
#                      (both VIPs) for the caller to append its own
#   selftest PREFIX    prove the network without lbfwd: the lb namespace's own
#                      kernel VXLAN devices stand in for lbfwd, toward each
#                      backend over both underlay families
#   udp PREFIX ADDRESS PORT PAYLOAD [TIMEOUT [COUNT]]
#                      from the client, send COUNT (default 1) datagrams, each
#                      from a new source port; print each answer, "-" for
#                      none within TIMEOUT (default 2) seconds; exit 1 if any
#                      got none
#   list               print the prefixes of networks that exist now
#
# Servers on every backend (scripts/lib/topo-server.py), bound to both VIPs,
# answering with the backend's name: HTTP on TCP 80 (allowed) and 8080 (not allowed), `GET /` -> "beN\n",
# `GET /big?bytes=N` -> N bytes, header X-Backend: beN on every answer; UDP
# echo ("beN " + payload) on 1024, 1500, 2048 (allowed: 1024-2048) and 2049,
# 3000 (not allowed).
set -euo pipefail

TOPO_VNI=100
TOPO_VIP4=203.0.113.10
TOPO_VIP6=2001:db8:100::10
TOPO_CLIENT4=198.51.100.2
TOPO_CLIENT6=2001:db8:1::2
TOPO_ROUTER_C4=198.51.100.1
TOPO_ROUTER_C6=2001:db8:1::1
TOPO_ROUTER_L4=10.0.2.1
TOPO_ROUTER_L6=fd00:2::1
TOPO_LB4=10.0.2.2
TOPO_LB6=fd00:2::2
TOPO_ROUTER_B4=10.0.3.1
TOPO_ROUTER_B6=fd00:3::1
TOPO_UNDERLAY_MTU=1600
TOPO_HTTP_PORTS="80 8080"
TOPO_UDP_PORTS="1024 1500 2048 2049 3000"
TOPO_STATE_ROOT="${TOPO_STATE_ROOT:-/run/lbfwd-topo}"
TOPO_ROLES="client router lb be1 be2 be3"
TOPO_PY="${TOPO_PY:-}"
# The helpers beside this script: the backends' servers and the UDP client.
TOPO_LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOPO_SERVER="$TOPO_LIB/topo-server.py"
TOPO_UDP_CLIENT="$TOPO_LIB/topo-udp.py"

topo_die() { echo "topo.sh: $*" >&2; exit 1; }

topo_check_prefix() {
  [[ "${1:-}" =~ ^[a-z0-9]{1,8}$ ]] \
    || topo_die "PREFIX must be 1-8 characters of [a-z0-9], got '${1:-}'"
}

topo_python() {
  if [ -n "$TOPO_PY" ]; then echo "$TOPO_PY"
  elif [ -x /usr/bin/python3 ]; then echo /usr/bin/python3
  else command -v python3 || topo_die "python3 not found"
  fi
}

# Backend i (1-3): underlay addresses, underlay MAC, vxlan MAC.
topo_be4() { echo "10.0.3.1$1"; }
topo_be6() { echo "fd00:3::1$1"; }
topo_be_mac() { echo "02:00:00:00:03:1$1"; }
topo_be_vxmac() { echo "02:00:00:00:10:1$1"; }

# Runs a command in namespace PREFIX-ROLE.
topo_in() { local ns="$1-$2"; shift 2; ip netns exec "$ns" "$@"; }

topo_sysctl() {
  local p="$1" role="$2"; shift 2
  topo_in "$p" "$role" sysctl -qw "$@" >/dev/null
}

topo_veth() {
  # topo_veth PREFIX ROLE_A DEV_A MAC_A ROLE_B DEV_B MAC_B MTU
  local p="$1"
  ip link add "$3" netns "$p-$2" address "$4" mtu "$8" type veth \
    peer name "$6" netns "$p-$5" address "$7" mtu "$8"
  # veth's TX checksum offload would hand lbfwd (and the far side) packets
  # with partial checksums: turn it off on both ends.
  topo_in "$p" "$2" ethtool -K "$3" tx off >/dev/null
  topo_in "$p" "$5" ethtool -K "$6" tx off >/dev/null
  ip -n "$p-$2" link set "$3" up
  ip -n "$p-$5" link set "$6" up
}


topo_add_namespaces() {
  # topo_add_namespaces PREFIX ROLE...: the namespaces PREFIX-ROLE, loopback up.
  local p="$1" role; shift
  for role in "$@"; do
    ip netns add "$p-$role"
    ip -n "$p-$role" link set lo up
    # Before any device exists, so every device inherits these defaults.
    topo_sysctl "$p" "$role" net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
      net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
      net.ipv6.conf.default.router_solicitations=0 \
      net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  done
}

topo_client_link() {
  # topo_client_link PREFIX: client <-> router, with the client's default routes.
  local p="$1"
  topo_veth "$p" client "$p-c0" 02:00:00:00:01:02 router "$p-rc" 02:00:00:00:01:01 1500
  ip -n "$p-client" addr add "$TOPO_CLIENT4/24" dev "$p-c0"
  ip -n "$p-client" addr add "$TOPO_CLIENT6/64" dev "$p-c0" nodad
  ip -n "$p-router" addr add "$TOPO_ROUTER_C4/24" dev "$p-rc"
  ip -n "$p-router" addr add "$TOPO_ROUTER_C6/64" dev "$p-rc" nodad
  ip -n "$p-client" route add default via "$TOPO_ROUTER_C4"
  ip -n "$p-client" -6 route add default via "$TOPO_ROUTER_C6"
}

topo_backends() {
  # topo_backends PREFIX VIP4S VIP6S FAMILIES: the router's bridge PREFIX-br
  # and the backends be1..be3 on it, each with the VIPs (space-separated
  # lists) on its loopback and a VXLAN device per underlay family in
  # FAMILIES ("4 6" or "4").
  local p="$1" vip4s="$2" vip6s="$3" families="$4" i ns a f under rp
  ip -n "$p-router" link add "$p-br" address 02:00:00:00:03:01 mtu "$TOPO_UNDERLAY_MTU" type bridge
  ip -n "$p-router" addr add "$TOPO_ROUTER_B4/24" dev "$p-br"
  ip -n "$p-router" addr add "$TOPO_ROUTER_B6/64" dev "$p-br" nodad
  ip -n "$p-router" link set "$p-br" up
  for i in 1 2 3; do
    ns="$p-be$i"
    topo_sysctl "$p" "be$i" net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
    topo_veth "$p" router "$p-rb$i" "02:00:00:00:03:a$i" "be$i" "$p-b0" "$(topo_be_mac "$i")" "$TOPO_UNDERLAY_MTU"
    ip -n "$p-router" link set "$p-rb$i" master "$p-br"
    ip -n "$ns" addr add "$(topo_be4 "$i")/24" dev "$p-b0"
    ip -n "$ns" addr add "$(topo_be6 "$i")/64" dev "$p-b0" nodad
    ip -n "$ns" route add default via "$TOPO_ROUTER_B4"
    ip -n "$ns" -6 route add default via "$TOPO_ROUTER_B6"
    # The VIPs on the loopback: the backend accepts them but, with
    # arp_ignore/arp_announce (and IPv6 answering NS only for addresses on
    # the asking interface), never claims them on the wire.
    for a in $vip4s; do ip -n "$ns" addr add "$a/32" dev lo; done
    for a in $vip6s; do ip -n "$ns" addr add "$a/128" dev lo nodad; done
    # One VXLAN device per underlay family (same VNI and port is allowed
    # across families). The decapsulated frame must be addressed to the
    # device's MAC: that MAC is the backend's `mac` in lbfwd's config.
    # Decapsulated packets arrive on vxN, replies leave through b0.
    rp=("net.ipv4.conf.$p-b0.rp_filter=0")
    for f in $families; do
      case "$f" in 4) under="$(topo_be4 "$i")" ;; 6) under="$(topo_be6 "$i")" ;; *) topo_die "backends: family must be 4 or 6, got '$f'" ;; esac
      ip -n "$ns" link add "$p-vx$f" address "$(topo_be_vxmac "$i")" mtu 1500 type vxlan \
        id "$TOPO_VNI" dstport 4789 local "$under" nolearning
      ip -n "$ns" link set "$p-vx$f" up
      rp+=("net.ipv4.conf.$p-vx$f.rp_filter=0")
    done
    topo_sysctl "$p" "be$i" "${rp[@]}"
  done
}

topo_up() {
  local p="$1" i ns
  topo_down "$p" quiet
  local st="$TOPO_STATE_ROOT/$p"
  mkdir -p "$st"

  topo_add_namespaces "$p" $TOPO_ROLES
  topo_sysctl "$p" router net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0
  # The lb node forwards nothing itself: with AF_PACKET its kernel sees a copy
  # of the VIP traffic and must neither route it a second time nor answer it.
  topo_sysctl "$p" lb net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0

  topo_client_link "$p"

  # router <-> lb (the underlay MTU leaves room for the VXLAN header)
  topo_veth "$p" router "$p-rl" 02:00:00:00:02:01 lb "$p-l0" 02:00:00:00:02:02 "$TOPO_UNDERLAY_MTU"
  ip -n "$p-router" addr add "$TOPO_ROUTER_L4/24" dev "$p-rl"
  ip -n "$p-router" addr add "$TOPO_ROUTER_L6/64" dev "$p-rl" nodad
  ip -n "$p-lb" addr add "$TOPO_LB4/24" dev "$p-l0"
  ip -n "$p-lb" addr add "$TOPO_LB6/64" dev "$p-l0" nodad
  ip -n "$p-lb" route add default via "$TOPO_ROUTER_L4"
  ip -n "$p-lb" -6 route add default via "$TOPO_ROUTER_L6"
  ip -n "$p-router" route add "$TOPO_VIP4/32" via "$TOPO_LB4"
  ip -n "$p-router" -6 route add "$TOPO_VIP6/128" via "$TOPO_LB6"

  topo_backends "$p" "$TOPO_VIP4" "$TOPO_VIP6" "4 6"

  topo_start_servers "$p"
}

topo_start_servers() {
  local p="$1" i py st="$TOPO_STATE_ROOT/$1"
  py="$(topo_python)"
  for i in 1 2 3; do
    rm -f "$st/be$i.ready"
    ip netns exec "$p-be$i" "$py" "$TOPO_SERVER" "be$i" "$st/be$i.ready" \
      "$TOPO_VIP4,$TOPO_VIP6" "${TOPO_HTTP_PORTS// /,}" "${TOPO_UDP_PORTS// /,}" \
      </dev/null >"$st/be$i.log" 2>&1 &
    echo $! >"$st/be$i.pid"
  done
  for i in 1 2 3; do
    local tries=0
    while [ ! -e "$st/be$i.ready" ]; do
      tries=$((tries + 1))
      if [ $tries -gt 100 ] || ! kill -0 "$(cat "$st/be$i.pid")" 2>/dev/null; then
        cat "$st/be$i.log" >&2 || true
        topo_die "the servers of be$i did not start (log above)"
      fi
      sleep 0.1
    done
  done
}

topo_namespaces() {
  ip netns list 2>/dev/null | awk '{print $1}' \
    | grep -E "^$1-(client|router|lb|be[0-9])\$" || true
}

topo_down() {
  local p="$1" ns pids st="$TOPO_STATE_ROOT/$1"
  for ns in $(topo_namespaces "$p"); do
    # Every process in these namespaces was started by us (servers, lbfwd,
    # clients): end them by id, then delete the namespace.
    pids="$(ip netns pids "$ns" 2>/dev/null || true)"
    if [ -n "$pids" ]; then
      kill $pids 2>/dev/null || true
      for _ in 1 2 3 4 5 6 7 8 9 10; do
        pids="$(ip netns pids "$ns" 2>/dev/null || true)"
        [ -z "$pids" ] && break
        sleep 0.1
      done
      [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || true
  done
  if [ -d "$st" ]; then rm -rf "$st"; fi
  if [ "${2:-}" != quiet ]; then
    [ -z "$(topo_namespaces "$p")" ] || topo_die "could not delete every namespace of $p"
  fi
}

topo_mac() { ip -n "$1" -br link show dev "$2" | awk '{print $3}'; }

topo_env() {
  local p="$1" i
  [ -n "$(topo_namespaces "$p")" ] || topo_die "no network with prefix $p (run: topo.sh up $p)"
  cat <<EOF
PREFIX=$p
STATE_DIR=$TOPO_STATE_ROOT/$p
NS_CLIENT=$p-client
NS_ROUTER=$p-router
NS_LB=$p-lb
NS_BE1=$p-be1
NS_BE2=$p-be2
NS_BE3=$p-be3
VNI=$TOPO_VNI
VIP4=$TOPO_VIP4
VIP6=$TOPO_VIP6
CLIENT_DEV=$p-c0
CLIENT_IP4=$TOPO_CLIENT4
CLIENT_IP6=$TOPO_CLIENT6
LB_DEV=$p-l0
LB_IP4=$TOPO_LB4
LB_IP6=$TOPO_LB6
LB_MAC=$(topo_mac "$p-lb" "$p-l0")
ROUTER_LB_DEV=$p-rl
NEXT_HOP_MAC=$(topo_mac "$p-router" "$p-rl")
ROUTER_LB_IP4=$TOPO_ROUTER_L4
ROUTER_LB_IP6=$TOPO_ROUTER_L6
UNDERLAY_MTU=$TOPO_UNDERLAY_MTU
HTTP_PORT=80
HTTP_PORT_BLOCKED=8080
UDP_PORT_FIRST=1024
UDP_PORT_LAST=2048
UDP_PORTS_ALLOWED=1024,1500,2048
UDP_PORTS_BLOCKED=2049,3000
BACKENDS=be1,be2,be3
EOF
  for i in 1 2 3; do
    echo "BE${i}_DEV=$p-b0"
    echo "BE${i}_IP4=$(topo_be4 "$i")"
    echo "BE${i}_IP6=$(topo_be6 "$i")"
    echo "BE${i}_VX4=$p-vx4"
    echo "BE${i}_VX6=$p-vx6"
    echo "BE${i}_VXMAC=$(topo_mac "$p-be$i" "$p-vx4")"
  done
}

# The lbfwd configuration for this network.
topo_config() {
  local p="$1"; shift
  local backend=af_packet underlay=4 workers exclude=" " idle="" web=yes i
  workers="$(( $(nproc) - 1 ))"  # the last core: the first one keeps the rest of the system
  while [ $# -gt 0 ]; do
    case "$1" in
      --backend) backend="$2"; shift 2 ;;
      --underlay) underlay="$2"; shift 2 ;;
      --exclude) exclude+="$2 "; shift 2 ;;
      --workers) workers="$2"; shift 2 ;;
      --idle) idle="$2"; shift 2 ;;
      --no-load-balancer) web=no; shift ;;
      *) topo_die "config: unknown option '$1'" ;;
    esac
  done
  case "$underlay" in 4|6) ;; *) topo_die "config: --underlay must be 4 or 6, got '$underlay'" ;; esac
  case "$backend" in
    af_packet|af_xdp|dpdk) ;;
    *) topo_die "config: --backend must be af_packet, af_xdp or dpdk, got '$backend'" ;;
  esac
  case "$idle" in
    ""|busy|backoff) ;;
    *) topo_die "config: --idle must be busy or backoff, got '$idle'" ;;
  esac
  if [ "$backend" = dpdk ] && [ -n "$idle" ] && [ "$idle" != backoff ]; then
    topo_die "config: dpdk on a veth runs with --idle backoff only"
  fi
  local st="$TOPO_STATE_ROOT/$p"
  [ -n "$(topo_namespaces "$p")" ] || topo_die "no network with prefix $p (run: topo.sh up $p)"
  echo "# lbfwd config for the namespace network '$p' (scripts/lib/topo.sh)."
  if [ "$backend" = dpdk ]; then
    # DPDK's net_af_packet PMD on the lb node's veth: a real DPDK port on a
    # kernel interface, without hugepages. The kernel keeps its own copy of
    # every frame, so ARP/NDP and ping of the lb node's addresses still
    # work. Idle backoff: a polling worker must not starve a small machine.
    cat <<EOF
[dataplane]
backend = "dpdk"
interfaces = ["net_af_packet0"]
workers = [$workers]
idle = "backoff"

[dataplane.dpdk]
no_huge = true
memory_mb = 512
vdevs = ["net_af_packet0,iface=$p-l0"]
EOF
  else
    cat <<EOF
[dataplane]
backend = "$backend"
interfaces = ["$p-l0"]
workers = [$workers]
EOF
    [ -z "$idle" ] || echo "idle = \"$idle\""
  fi
  cat <<EOF

[underlay]
encap = "vxlan"
source_ipv4 = "$TOPO_LB4"
source_ipv6 = "$TOPO_LB6"
next_hop_mac = "$(topo_mac "$p-router" "$p-rl")"
mtu = $TOPO_UNDERLAY_MTU

[control]
socket = "$st/lbfwd.sock"
state_dir = "$st/state"

[[pool]]
name = "public"
addresses = ["203.0.113.0/28", "2001:db8:100::/120"]

[[network]]
name = "net-$p"
vni = $TOPO_VNI
EOF
  for i in 1 2 3; do
    case "$exclude" in *" be$i "*) continue ;; esac
    local ul
    if [ "$underlay" = 4 ]; then ul="$(topo_be4 "$i")"; else ul="$(topo_be6 "$i")"; fi
    cat <<EOF

[[network_interface]]
name = "be$i"
uid = "00000000-0000-4000-8000-00000000000$i"
network = "net-$p"
labels = { app = "web" }
ips = ["10.1.0.1$i"]
underlay = "$ul"
mac = "$(topo_mac "$p-be$i" "$p-vx4")"
state = "Available"
EOF
  done
  [ "$web" = yes ] || return 0
  cat <<EOF

[[load_balancer]]
name = "web"
type = "Public"
ip_families = ["IPv4", "IPv6"]
ips = ["$TOPO_VIP4", "$TOPO_VIP6"]
network = "net-$p"
network_interface_selector = { match_labels = { app = "web" } }
ports = [ { protocol = "TCP", port = 80 },
          { protocol = "UDP", port = 1024, end_port = 2048 } ]
EOF
}

# --- self-test: the lb namespace's kernel stands in for lbfwd ---------------

topo_st_fail() { echo "topo.sh selftest: FAIL: $*" >&2; exit 1; }
topo_st_ok() { echo "  ok: $*"; }

topo_curl() {
  # topo_curl PREFIX URL -> body (one request, its own connection)
  topo_in "$1" client curl -sS -g --max-time 5 -H 'Connection: close' "$2"
}

topo_udp() {
  # topo_udp PREFIX VIP PORT PAYLOAD [TIMEOUT [COUNT]] -> one answer per line
  # ("-": none); exit status 1 if any datagram got no answer.
  topo_in "$1" client "$(topo_python)" "$TOPO_UDP_CLIENT" "$2" "$3" "$4" "${5:-2}" "${6:-1}"
}

topo_rx_bytes() { topo_in "$1" "$2" cat "/sys/class/net/$3/statistics/rx_bytes"; }

# Points the lb namespace's VIP routes at kernel VXLAN devices toward backend
# I, over underlay family FAM (4 or 6).
topo_st_route() {
  local p="$1" i="$2" fam="$3" remote local
  ip -n "$p-lb" link del "$p-sv" 2>/dev/null || true
  if [ "$fam" = 4 ]; then remote="$(topo_be4 "$i")"; local="$TOPO_LB4"
  else remote="$(topo_be6 "$i")"; local="$TOPO_LB6"; fi
  ip -n "$p-lb" link add "$p-sv" mtu 1500 type vxlan id "$TOPO_VNI" dstport 4789 \
    local "$local" remote "$remote" nolearning
  ip -n "$p-lb" link set "$p-sv" up
  ip -n "$p-lb" route replace "$TOPO_VIP4/32" dev "$p-sv"
  ip -n "$p-lb" -6 route replace "$TOPO_VIP6/128" dev "$p-sv"
  ip -n "$p-lb" neigh replace "$TOPO_VIP4" lladdr "$(topo_be_vxmac "$i")" nud permanent dev "$p-sv"
  ip -n "$p-lb" -6 neigh replace "$TOPO_VIP6" lladdr "$(topo_be_vxmac "$i")" nud permanent dev "$p-sv"
}

topo_selftest() {
  local p="$1" i fam got
  [ -n "$(topo_namespaces "$p")" ] || topo_die "no network with prefix $p (run: topo.sh up $p)"
  echo "topology self-test of $p (the lb namespace's kernel VXLAN stands in for lbfwd)"

  # Without anything on the lb node, the VIP is unreachable: nothing on the
  # way answers for it.
  got="$(topo_in "$p" client curl -sS --max-time 2 "http://$TOPO_VIP4/" 2>/dev/null || true)"
  [ -z "$got" ] || topo_st_fail "VIP answered without a load balancer: '$got'"
  if topo_in "$p" client ping -c 2 -i 0.2 -W 1 "$TOPO_VIP4" >/dev/null 2>&1; then
    topo_st_fail "ping to $TOPO_VIP4 was answered without a load balancer"
  fi
  topo_st_ok "nothing answers for the VIP while the lb node does not forward"

  topo_sysctl "$p" lb net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  for i in 1 2 3; do
    for fam in 4 6; do
      topo_st_route "$p" "$i" "$fam"
      got="$(topo_curl "$p" "http://$TOPO_VIP4/")" || topo_st_fail "HTTP to $TOPO_VIP4 via be$i (underlay IPv$fam)"
      [ "$got" = "be$i" ] || topo_st_fail "HTTP $TOPO_VIP4 via be$i (underlay IPv$fam) answered '$got'"
      got="$(topo_curl "$p" "http://[$TOPO_VIP6]/")" || topo_st_fail "HTTP to $TOPO_VIP6 via be$i (underlay IPv$fam)"
      [ "$got" = "be$i" ] || topo_st_fail "HTTP $TOPO_VIP6 via be$i (underlay IPv$fam) answered '$got'"
      got="$(topo_curl "$p" "http://$TOPO_VIP4:8080/")" || topo_st_fail "HTTP to $TOPO_VIP4:8080 via be$i"
      [ "$got" = "be$i" ] || topo_st_fail "HTTP $TOPO_VIP4:8080 via be$i answered '$got'"
      for port in $TOPO_UDP_PORTS; do
        got="$(topo_udp "$p" "$TOPO_VIP4" "$port" "hello$port" || true)"
        [ "$got" = "be$i hello$port" ] || topo_st_fail "UDP $TOPO_VIP4:$port via be$i (underlay IPv$fam) answered '$got'"
        got="$(topo_udp "$p" "$TOPO_VIP6" "$port" "hello$port" || true)"
        [ "$got" = "be$i hello$port" ] || topo_st_fail "UDP [$TOPO_VIP6]:$port via be$i (underlay IPv$fam) answered '$got'"
      done
      topo_in "$p" client ping -c 1 -W 2 "$TOPO_VIP4" >/dev/null \
        || topo_st_fail "an encapsulated echo request did not reach be$i (underlay IPv$fam)"
      topo_st_ok "be$i, underlay IPv$fam: HTTP (80, 8080), UDP ($TOPO_UDP_PORTS) and ping on both VIPs answered by be$i"
    done
  done

  # Direct server return: a 4 MB answer reaches the client while the lb
  # node receives only the client's side of the connection.
  topo_st_route "$p" 2 4
  local lb0 lb1 c0 c1 size=4000000
  lb0="$(topo_rx_bytes "$p" lb "$p-l0")"; c0="$(topo_rx_bytes "$p" client "$p-c0")"
  got="$(topo_in "$p" client curl -sS --max-time 20 -o /dev/null -w '%{size_download} %header{x-backend}' \
    "http://$TOPO_VIP4/big?bytes=$size")" || topo_st_fail "download through be2"
  [ "$got" = "$size be2" ] || topo_st_fail "download through be2: '$got'"
  lb1="$(topo_rx_bytes "$p" lb "$p-l0")"; c1="$(topo_rx_bytes "$p" client "$p-c0")"
  [ $((c1 - c0)) -ge $size ] || topo_st_fail "client received $((c1 - c0)) bytes for a $size byte answer"
  [ $((lb1 - lb0)) -lt $((size / 4)) ] \
    || topo_st_fail "the lb node received $((lb1 - lb0)) bytes during a $size byte answer: replies go through it"
  topo_st_ok "direct server return: client got $((c1 - c0)) bytes, the lb node only $((lb1 - lb0))"

  # Restore the lb node for lbfwd.
  ip -n "$p-lb" link del "$p-sv"
  topo_sysctl "$p" lb net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0
  got="$(topo_in "$p" client curl -sS --max-time 2 "http://$TOPO_VIP4/" 2>/dev/null || true)"
  [ -z "$got" ] || topo_st_fail "VIP still answered after the stand-in was removed: '$got'"

  # The lb node's own address: ARP/NDP and ping from the router and client.
  ip -n "$p-router" neigh flush dev "$p-rl"
  topo_in "$p" router ping -c 1 -W 2 "$TOPO_LB4" >/dev/null || topo_st_fail "ping $TOPO_LB4 from the router"
  topo_in "$p" router ping -c 1 -W 2 "$TOPO_LB6" >/dev/null || topo_st_fail "ping $TOPO_LB6 from the router"
  topo_in "$p" client ping -c 1 -W 2 "$TOPO_LB4" >/dev/null || topo_st_fail "ping $TOPO_LB4 from the client"
  ip -n "$p-router" neigh show "$TOPO_LB4" dev "$p-rl" | grep -qi "$(topo_mac "$p-lb" "$p-l0")" \
    || topo_st_fail "the router did not learn the lb node's MAC by ARP"
  topo_st_ok "the lb node's own addresses answer ARP/NDP and ping"
  echo "topology self-test of $p: PASS"
}

topo_main() {
  local cmd="${1:-}"
  [ "$(id -u)" = 0 ] || topo_die "must run as root (network namespaces)"
  case "$cmd" in
    up) topo_check_prefix "${2:-}"; topo_up "$2" ;;
    down) topo_check_prefix "${2:-}"; topo_down "$2" ;;
    env) topo_check_prefix "${2:-}"; topo_env "$2" ;;
    config) topo_check_prefix "${2:-}"; local p="$2"; shift 2; topo_config "$p" "$@" ;;
    selftest) topo_check_prefix "${2:-}"; topo_selftest "$2" ;;
    udp) topo_check_prefix "${2:-}"; shift; topo_udp "$@" ;;
    list) ip netns list 2>/dev/null | awk '{print $1}' | sed -n 's/-client$//p' ;;
    *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

# Sourced (by demo.sh): define the functions only.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then topo_main "$@"; fi
