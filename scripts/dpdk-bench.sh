#!/usr/bin/env bash
# lbfwd on DPDK next to dpdk-testpmd, same machine, same run, one forwarding
# core each: testpmd `io` and `macswap` on two net_null ports
# (scripts/dpdk-ceiling.sh), then lbfwd's whole load-balancer path on two
# net_null ports (forwarder/examples/dpdk_bench.rs: parse, VIP match, filter,
# flow table, Maglev, VXLAN encapsulation, counters). The issue's target:
# lbfwd >= 0.6 of testpmd macswap.
#
# Usage: scripts/dpdk-bench.sh [JSON_OUT]
#   JSON_OUT  also write the results as one JSON object to this file
# Environment:
#   SECONDS_PER_RUN  measured seconds of each run             (default 10)
#   MAIN_CORE        core of testpmd's main lcore / lbfwd's control threads (default 0)
#   FWD_CORE         the one forwarding core (testpmd's lcore, lbfwd's worker) (default 1)
#   ROTATE_FLOWS     also run lbfwd with this many distinct flows rotated
#                    into the frames (0: skip that run)         (default 1000000)
#   MEMORY_PATH=0    skip the memory-path run at ROTATE_FLOWS flows that is
#                    printed next to the many-flow row (lbfwd-pktgen memory)
#   BENCH_ARGS       more arguments for dpdk_bench (e.g. "--lbs 100")
#   NO_BUILD=1       use the dpdk_bench binary already built
#   CARGO_TARGET_DIR where cargo builds (default: target/ of the repository)
#
# The per-CPU-second rates (packets over the CPU time the forwarding thread
# got) are the ones to compare on a machine other work shares; the ratio is
# taken on those, and on wall clock for reference.
#
# Flows: net_null hands out whatever the mbufs hold, and the worker's
# mempool cache recycles the same few dozen mbufs, so the templates written
# into the pool amount to one burst of flows, 32 (all flow-table hits in cache): the
# same I/O pattern as testpmd, the row the target is judged on. The second
# lbfwd row writes the 5-tuple of the next of ROTATE_FLOWS flows into each
# frame once the pipeline is done with it (a 16-byte store, counted against
# lbfwd), so the mbuf comes back from the pool as a frame of another flow
# and the worker's own burst path, prefetch pass included, runs on many
# flows; the flow table, the counters and the tables then miss the caches
# and the TLB as with real traffic. The window starts once every flow was
# seen. Next to it: the same pipeline on the in-process memory path
# (lbfwd-pktgen memory, same flow count, one worker on FWD_CORE): the gap
# between the two is what the DPDK I/O costs at that many flows.
#
# Needs root and Debian's
# dpdk and libdpdk-dev (DPDK 22.11); runs without hugepages.
set -euo pipefail

json_out=${1:-}
seconds=${SECONDS_PER_RUN:-10}
main_core=${MAIN_CORE:-0}
fwd_core=${FWD_CORE:-1}
rotate=${ROTATE_FLOWS:-1000000}
memory_path=${MEMORY_PATH:-1}
target_ratio=0.6
root=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
bench=$target_dir/release/examples/dpdk_bench
work=$(mktemp -d /tmp/dpdk-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 3 ]; then
    echo "dpdk-bench: SECONDS_PER_RUN must be a whole number >= 3 (got '$seconds')" >&2
    exit 2
fi
if ! [[ $rotate =~ ^[0-9]+$ ]]; then
    echo "dpdk-bench: ROTATE_FLOWS must be a whole number (got '$rotate')" >&2
    exit 2
fi
if [ "$main_core" = "$fwd_core" ]; then
    echo "dpdk-bench: MAIN_CORE and FWD_CORE must differ" >&2
    exit 2
fi
if [ -n "$json_out" ] && ! touch "$json_out" 2>/dev/null; then
    echo "dpdk-bench: cannot write $json_out" >&2
    exit 2
fi

if [ "${NO_BUILD:-0}" != 1 ]; then
    echo "dpdk-bench: building dpdk_bench (release, --features dpdk)" >&2
    (cd "$root" && cargo build --release -p lbfwd-forwarder --features dpdk --example dpdk_bench)
    if [ "$rotate" -gt 0 ] && [ "$memory_path" = 1 ]; then
        echo "dpdk-bench: building lbfwd-pktgen (release) for the memory path" >&2
        (cd "$root" && cargo build --release -p lbfwd-benches --bin lbfwd-pktgen)
    fi
fi
if [ ! -x "$bench" ]; then
    echo "dpdk-bench: $bench not found (build it, or unset NO_BUILD)" >&2
    exit 2
fi

# testpmd io and macswap: one forwarding lcore on FWD_CORE.
MAIN_CORE=$main_core FWD_CORE=$fwd_core LOG_DIR=$work \
    "$root/scripts/dpdk-ceiling.sh" "$seconds" io macswap | tee "$work/testpmd.txt"

# lbfwd: the worker pinned to FWD_CORE; EAL's main lcore and the measuring
# thread sleep on the process's other allowed core.
run_lbfwd() {
    local name=$1
    shift
    # shellcheck disable=SC2086 # BENCH_ARGS is a list of words
    taskset -c "$main_core,$fwd_core" "$bench" --core "$fwd_core" --seconds "$seconds" \
        --json "$work/$name.json" "$@" ${BENCH_ARGS:-} 2>"$work/$name.log" | tee "$work/$name.txt" || {
        echo "dpdk-bench: dpdk_bench ($name) failed:" >&2
        tail -n 20 "$work/$name.log" >&2
        return 1
    }
}
run_lbfwd lbfwd
if [ "$rotate" -gt 0 ]; then
    run_lbfwd lbfwd-flows --rotate-flows "$rotate"
fi
# The memory path at the same flow count, same configuration (1000 LBs x
# 100 targets, VXLAN, 64 B), one worker on FWD_CORE.
mem_mpps=
if [ "$rotate" -gt 0 ] && [ "$memory_path" = 1 ]; then
    if [ -x "$target_dir/release/lbfwd-pktgen" ]; then
        # shellcheck disable=SC2086 # BENCH_ARGS is a list of words
        if "$target_dir/release/lbfwd-pktgen" memory --workers 1 --cores "$fwd_core" --flows "$rotate" \
            --sizes 64 --seconds "$seconds" --warmup 1 --sweep dpdk-memory ${BENCH_ARGS:-} \
            >"$work/memory.json" 2>"$work/memory.log"; then
            mem_mpps=$(python3 -c 'import json,sys; print("%.2f" % json.loads(open(sys.argv[1]).readline())["mpps_per_core"])' "$work/memory.json")
        else
            echo "dpdk-bench: lbfwd-pktgen memory failed:" >&2
            tail -n 5 "$work/memory.log" >&2
        fi
    else
        echo "dpdk-bench: no lbfwd-pktgen release binary; the memory path is not shown" >&2
    fi
fi

# "NAME: W Mpps wall clock, C Mpps per CPU-second ..." -> W and C.
rate() { # FILE NAME FIELD(1: wall, 2: cpu)
    awk -v name="$2" -v field="$3" '
        index($0, name ": ") == 1 {
            sub(/^[^:]*: /, "")
            split($0, parts, " Mpps ")
            wall = parts[1]
            sub(/^.*clock, /, "", parts[2]); cpu = parts[2]
            print (field == 1 ? wall : cpu); exit
        }' "$1"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "n/a") printf "%.2f", a / b; else print "n/a" }'; }

io_wall=$(rate "$work/testpmd.txt" "testpmd io" 1)
io_cpu=$(rate "$work/testpmd.txt" "testpmd io" 2)
ms_wall=$(rate "$work/testpmd.txt" "testpmd macswap" 1)
ms_cpu=$(rate "$work/testpmd.txt" "testpmd macswap" 2)
lb_wall=$(rate "$work/lbfwd.txt" "lbfwd full LB" 1)
lb_cpu=$(rate "$work/lbfwd.txt" "lbfwd full LB" 2)
for v in io_wall io_cpu ms_wall ms_cpu lb_wall lb_cpu; do
    if [ -z "${!v}" ]; then
        echo "dpdk-bench: no rate for $v in the runs' output" >&2
        exit 1
    fi
done
ratio_wall=$(ratio "$lb_wall" "$ms_wall")
ratio_cpu=$(ratio "$lb_cpu" "$ms_cpu")
if [ "$rotate" -gt 0 ]; then
    fl_wall=$(rate "$work/lbfwd-flows.txt" "lbfwd full LB" 1)
    fl_cpu=$(rate "$work/lbfwd-flows.txt" "lbfwd full LB" 2)
fi
meets=$(awk -v r="$ratio_cpu" -v t="$target_ratio" 'BEGIN { print (r != "n/a" && r + 0 >= t) ? "true" : "false" }')

cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
cores=$(nproc --all)
kernel=$(uname -r)
load=$(cut -d' ' -f1 /proc/loadavg)
dpdk_version=$(dpkg-query -W -f '${Version}' dpdk 2>/dev/null || pkg-config --modversion libdpdk 2>/dev/null || echo unknown)

echo
echo "DPDK $dpdk_version on $cpu_model, $cores cores, kernel $kernel, load average $load"
echo "2 x net_null (copy=0, 64-byte frames), one forwarding core ($fwd_core), ${seconds}s per run"
printf '%-34s %14s %20s\n' "forwarder" "Mpps (wall)" "Mpps per CPU-second"
printf '%-34s %14s %20s\n' "testpmd io" "$io_wall" "$io_cpu"
printf '%-34s %14s %20s\n' "testpmd macswap" "$ms_wall" "$ms_cpu"
printf '%-34s %14s %20s\n' "lbfwd full LB" "$lb_wall" "$lb_cpu"
if [ "$rotate" -gt 0 ]; then
    printf '%-34s %14s %20s\n' "lbfwd full LB, $rotate flows" "$fl_wall" "$fl_cpu"
    if [ -n "$mem_mpps" ]; then
        printf '%-34s %14s %20s\n' "  same flows, memory path" "-" "$mem_mpps"
    fi
fi
printf '%-34s %14s %20s\n' "lbfwd / testpmd macswap" "$ratio_wall" "$ratio_cpu"
echo "target: lbfwd >= $target_ratio x testpmd macswap per CPU-second: $([ "$meets" = true ] && echo met || echo NOT met)"

if [ -n "$json_out" ]; then
    esc() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
    num() { if [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; then echo "$1"; else echo null; fi; }
    flows_json=null
    flows_row=
    if [ "$rotate" -gt 0 ]; then
        flows_json=$(cat "$work/lbfwd-flows.json")
        flows_row=",
    {\"name\": \"lbfwd full LB, $rotate flows\", \"mpps\": $(num "$fl_wall"), \"mpps_per_cpu_second\": $(num "$fl_cpu")},
    {\"name\": \"lbfwd memory path, $rotate flows\", \"mpps\": null, \"mpps_per_cpu_second\": $(num "$mem_mpps")}"
    fi
    cat >"$json_out" <<EOF
{
  "kind": "dpdk_bench",
  "machine": {"cpu": "$(esc "$cpu_model")", "cores": $cores, "kernel": "$(esc "$kernel")", "load_avg_1m": $(num "$load")},
  "dpdk": "$(esc "$dpdk_version")",
  "path": "net_null",
  "forwarding_core": $fwd_core,
  "seconds": $seconds,
  "rates": [
    {"name": "testpmd io", "mpps": $(num "$io_wall"), "mpps_per_cpu_second": $(num "$io_cpu")},
    {"name": "testpmd macswap", "mpps": $(num "$ms_wall"), "mpps_per_cpu_second": $(num "$ms_cpu")},
    {"name": "lbfwd full LB", "mpps": $(num "$lb_wall"), "mpps_per_cpu_second": $(num "$lb_cpu")}$flows_row
  ],
  "ratio_vs_macswap": {"wall": $(num "$ratio_wall"), "per_cpu_second": $(num "$ratio_cpu")},
  "target_ratio": $target_ratio,
  "meets_target": $meets,
  "lbfwd": $(cat "$work/lbfwd.json"),
  "lbfwd_rotated_flows": $flows_json
}
EOF
    echo "dpdk-bench: wrote $json_out" >&2
fi
