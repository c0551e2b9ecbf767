#!/usr/bin/env bash
# The DPDK I/O ceiling of this machine: dpdk-testpmd forwarding between two
# net_null ports on ONE forwarding core, without hugepages, in `io` mode
# (receive and send back, nothing touched) and `macswap` mode (swap the MAC
# addresses of every frame: one write per packet). Prints the forwarded rate
# in Mpps for each mode; the benchmark suite compares lbfwd to it.
#
# Usage: scripts/dpdk-ceiling.sh [SECONDS] [MODE...]
#   SECONDS  measurement time per mode (default 10)
#   MODE     testpmd forwarding modes (default: io macswap)
# Environment:
#   MAIN_CORE  core of testpmd's main (control) lcore   (default 0)
#   FWD_CORE   core of the one forwarding lcore         (default 1)
#   MBUFS      mbufs in testpmd's pool                   (default 16384)
#   BURST      packets per burst                         (default 32)
#   TESTPMD    testpmd binary                            (default dpdk-testpmd)
#
# Output: one line per mode, e.g.
#   testpmd io: 23.80 Mpps (2 ports x net_null, 1 core, burst 32, 9 samples)
# and the raw log of each run under ${LOG_DIR:-/tmp}/dpdk-ceiling-MODE.log.
#
# net_null's frames are 64 bytes of zeros, received without a copy
# (copy=0) and freed on transmit: the rate is what one core can move
# through DPDK's ethdev and mempool, the upper bound for any forwarder.
# Needs root (or the capabilities EAL wants) and Debian's dpdk (dpdk-testpmd).
set -euo pipefail

seconds=${1:-10}
shift || true
modes=("$@")
[ ${#modes[@]} -eq 0 ] && modes=(io macswap)
main_core=${MAIN_CORE:-0}
fwd_core=${FWD_CORE:-1}
mbufs=${MBUFS:-16384}
burst=${BURST:-32}
testpmd=${TESTPMD:-dpdk-testpmd}
log_dir=${LOG_DIR:-/tmp}

if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 3 ]; then
    echo "dpdk-ceiling: SECONDS must be a whole number >= 3 (got '$seconds')" >&2
    exit 2
fi
if ! command -v "$testpmd" >/dev/null; then
    echo "dpdk-ceiling: $testpmd not found; install it (Debian: apt-get install dpdk)" >&2
    exit 2
fi
if [ "$main_core" = "$fwd_core" ]; then
    echo "dpdk-ceiling: MAIN_CORE and FWD_CORE must differ (testpmd forwards on a worker lcore)" >&2
    exit 2
fi

run_mode() {
    local mode=$1
    local prefix="dpdk-ceiling-$$-$mode"
    local log="$log_dir/dpdk-ceiling-$mode.log"
    # testpmd prints port statistics every second until SIGINT; each
    # display has one "Rx-pps:" line per port.
    timeout -s INT "$((seconds + 5))" "$testpmd" \
        -l "$main_core,$fwd_core" --main-lcore "$main_core" \
        --no-huge -m 1024 --no-shconf --no-pci --file-prefix "$prefix" \
        --vdev net_null0,copy=0 --vdev net_null1,copy=0 \
        --log-level=lib.eal:warning \
        -- --forward-mode="$mode" --nb-cores=1 --burst="$burst" \
        --total-num-mbufs="$mbufs" --stats-period=1 --auto-start \
        </dev/null >"$log" 2>&1 || true
    rm -rf "/var/run/dpdk/$prefix"
    if ! grep -q "Rx-pps:" "$log"; then
        echo "dpdk-ceiling: testpmd ($mode) printed no statistics; see $log:" >&2
        tail -n 20 "$log" >&2
        return 1
    fi
    # Sum the ports' Rx-pps per display; skip the first two displays (start
    # up) and the last (cut by the signal); average the rest.
    awk -v mode="$mode" -v burst="$burst" '
        /Port statistics =+/ { if (n_ports > 0) { samples[++n] = sum }; sum = 0; n_ports = 0; next }
        /Rx-pps:/ { sum += $2; n_ports++ }
        END {
            if (n_ports > 0) samples[++n] = sum
            total = 0; used = 0
            for (i = 3; i < n; i++) { total += samples[i]; used++ }
            if (used == 0) { print "dpdk-ceiling: too few samples for " mode > "/dev/stderr"; exit 1 }
            printf "testpmd %s: %.2f Mpps (2 ports x net_null, 1 core, burst %d, %d samples)\n",
                mode, total / used / 1e6, burst, used
        }' "$log"
}

version=$(dpkg-query -W -f '${Version}' dpdk 2>/dev/null || pkg-config --modversion libdpdk 2>/dev/null || echo unknown)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "dpdk-testpmd (DPDK $version) on $cpu; main lcore $main_core, forwarding lcore $fwd_core; ${seconds}s per mode"
status=0
for mode in "${modes[@]}"; do
    run_mode "$mode" || status=1
done
exit $status
