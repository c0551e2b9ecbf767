#!/usr/bin/env bash
# The flood test (tests/tests/flood.rs) at the highest rate this machine
# makes, on release binaries: kept-alive connections through lbfwd while
# trafgen floods the VIP with SYNs from random sources and a target joins
# the load balancer; once with the flood guard on (no connection may break,
# every stalled one must recover on its target, the guard must be engaged)
# and once with it off (connections must break: the test can fail).
#
#   scripts/flood.sh [TEST_FILTER]     # as root; needs trafgen (netsniff-ng)
#
# TEST_FILTER picks one of the two tests (e.g. `with_the_guard`); default
# both. Each prints what the flood cost the established traffic, per phase
# (latency p50/p99/max, lost and slow requests, TCP retransmissions), and
# the verdict for each connection that stalled or broke.
#
# Environment:
#   LBFWD_FLOOD_PPS      max (default here) or a rate in frames per second
#   LBFWD_FLOOD_BACKEND  af_packet (default) or af_xdp
#   LBFWD_FLOOD_CPUS     TRAFGEN_CORES:LBFWD_CORES, e.g. 0:1 (default:
#                        lbfwd's worker on the last core, trafgen on core 0)
#   LBFWD_FLOOD_LBFWD, LBFWD_FLOOD_LBCTL  prebuilt binaries (default: a
#                        release build of both, here)
#   LBFWD_NETNS_LOCK     the lock the namespace tests share (default
#                        /tmp/lbfwd-netns.lock); held only while the tests run
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "flood.sh: run as root (it creates network namespaces)" >&2
  exit 1
fi
command -v trafgen >/dev/null || { echo "flood.sh: no trafgen (Debian package netsniff-ng)" >&2; exit 1; }

FILTER="${1:-}"
export LBFWD_FLOOD_PPS="${LBFWD_FLOOD_PPS:-max}"
BACKEND="${LBFWD_FLOOD_BACKEND:-af_packet}"
case "$BACKEND" in
  af_packet|af_xdp) ;;
  *) echo "flood.sh: LBFWD_FLOOD_BACKEND must be af_packet or af_xdp, got '$BACKEND'" >&2; exit 2 ;;
esac
# One binary for both backends (as the tests' own build): with af_xdp where
# its libraries are installed.
FEATURES=()
if pkg-config --exists libxdp libbpf 2>/dev/null; then
  FEATURES=(--features lbfwd-forwarder/af_xdp)
elif [ "$BACKEND" = af_xdp ]; then
  echo "flood.sh: af_xdp needs libxdp-dev and libbpf-dev" >&2; exit 1
fi
export LBFWD_FLOOD_BACKEND="$BACKEND"
LOCK="${LBFWD_NETNS_LOCK:-/tmp/lbfwd-netns.lock}"

if [ -n "${LBFWD_FLOOD_LBFWD:-}" ]; then
  LBFWD="$(realpath "$LBFWD_FLOOD_LBFWD")"
  LBCTL="$(realpath "${LBFWD_FLOOD_LBCTL:-$(dirname "$LBFWD")/lbctl}")"
else
  echo "== building lbfwd and lbctl (release)"
  cargo build --release -p lbfwd-forwarder -p lbfwd-control --bin lbfwd --bin lbctl "${FEATURES[@]}"
  LBFWD="$(realpath "${CARGO_TARGET_DIR:-target}/release/lbfwd")"
  LBCTL="$(realpath "${CARGO_TARGET_DIR:-target}/release/lbctl")"
fi
[ -x "$LBFWD" ] && [ -x "$LBCTL" ] || { echo "flood.sh: no lbfwd/lbctl at $LBFWD, $LBCTL" >&2; exit 1; }

echo "== building the flood test"
cargo test -p lbfwd-tests --test flood --no-run

echo "== flood test: $LBFWD ($BACKEND), LBFWD_FLOOD_PPS=$LBFWD_FLOOD_PPS${LBFWD_FLOOD_CPUS:+, LBFWD_FLOOD_CPUS=$LBFWD_FLOOD_CPUS}; waiting for $LOCK"
export LBFWD_E2E_BIN="$LBFWD" LBFWD_E2E_LBCTL="$LBCTL"
flock "$LOCK" cargo test -p lbfwd-tests --test flood -- --nocapture --test-threads=1 ${FILTER:+"$FILTER"}
