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
#   testpmd io: 23.80 Mpps wall clock, 31.20 Mpps per CPU-second of the
#   forwarding core (...)
# and the raw log of each run under ${LOG_DIR:-/tmp}/dpdk-ceiling-MODE.log.
# The wall-clock rate is packets over the measured time; the per-CPU-second
# rate (packets / CPU time of the forwarding thread) is the one to compare
# on a machine where other processes share the core.
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

# CPU ticks (user + system) of testpmd's forwarding thread, or nothing.
worker_ticks() {
    local pid=$1 t
    for t in /proc/"$pid"/task/*; do
        if [ "$(cat "$t/comm" 2>/dev/null)" = "rte-worker-$fwd_core" ]; then
            awk '{print $14 + $15}' "$t/stat" 2>/dev/null
            return
        fi
    done
}

run_mode() {
    local mode=$1
    local prefix="dpdk-ceiling-$$-$mode"
    local log="$log_dir/dpdk-ceiling-$mode.log"
    # Non-interactive testpmd keeps forwarding until SIGINT only with a
    # stats period; its own periodic displays are not used (on some
    # machines they come every other period). stdout line-buffered, so the
    # start of forwarding shows in the log when it happens.
    stdbuf -oL -eL "$testpmd" \
        -l "$main_core,$fwd_core" --main-lcore "$main_core" \
        --no-huge -m 1024 --no-shconf --no-pci --file-prefix "$prefix" \
        --vdev net_null0,copy=0 --vdev net_null1,copy=0 \
        --log-level=lib.eal:warning \
        -- --forward-mode="$mode" --nb-cores=1 --burst="$burst" \
        --total-num-mbufs="$mbufs" --stats-period=1 --auto-start \
        </dev/null >"$log" 2>&1 &
    local pid=$!
    local waited=0
    while ! grep -q "packet forwarding - ports=" "$log" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null || [ $waited -ge 600 ]; then
            kill -INT "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            rm -rf "/var/run/dpdk/$prefix"
            echo "dpdk-ceiling: testpmd ($mode) did not start forwarding; see $log:" >&2
            tail -n 20 "$log" >&2
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    local t0 t1
    t0=$(date +%s.%N)
    sleep "$seconds"
    kill -INT "$pid"
    t1=$(date +%s.%N)
    # The forwarding thread stops at SIGINT and lives (blocked) until the
    # process exits: its last CPU time is the whole forwarding time.
    local ticks="" t
    while kill -0 "$pid" 2>/dev/null; do
        t=$(worker_ticks "$pid")
        [ -n "$t" ] && ticks=$t
        sleep 0.05
    done
    wait "$pid" 2>/dev/null || true
    rm -rf "/var/run/dpdk/$prefix"
    # Packets: testpmd's accumulated forward statistics (all ports).
    # Wall clock: packets / time from the start of forwarding to SIGINT.
    # CPU: packets / CPU seconds of the forwarding thread, a figure that
    # holds when other processes share the core.
    awk -v mode="$mode" -v burst="$burst" -v ticks="${ticks:-0}" -v hz="$(getconf CLK_TCK)" \
        -v t0="$t0" -v t1="$t1" '
        /Accumulated forward statistics/ { acc = 1; next }
        acc && /RX-packets:/ { packets = $2; acc = 0 }
        END {
            wall = t1 - t0
            if (packets == 0) { print "dpdk-ceiling: no forward statistics for " mode > "/dev/stderr"; exit 1 }
            cpu = "n/a"
            if (ticks > 0) cpu = sprintf("%.2f", packets / (ticks / hz) / 1e6)
            printf "testpmd %s: %.2f Mpps wall clock, %s Mpps per CPU-second of the forwarding core (%d packets, %.2f s wall, %.2f s CPU; 2 ports x net_null, 1 core, burst %d)\n",
                mode, packets / wall / 1e6, cpu, packets, wall, ticks / hz, burst
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
