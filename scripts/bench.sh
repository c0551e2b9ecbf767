#!/usr/bin/env bash
# lbfwd's benchmark suite: installs what it needs, builds the release
# binaries, measures, and writes benches/results/ (results.md, results.json,
# raw.jsonl and PNG plots). Run as root from anywhere in a clone:
#
#   scripts/bench.sh            # the whole suite (about 10 minutes with the build)
#   BENCH_QUICK=1 scripts/bench.sh   # shorter windows, fewer points
#
# What it runs, in order (every measurement prints the machine it ran on):
#  1. dpdk-testpmd `io` and `macswap` on two net_null ports, one core
#     (scripts/dpdk-ceiling.sh): the I/O ceiling of one core;
#  2. the pipeline on the in-process memory path (lbfwd-pktgen memory):
#     1000 VIPs x 100 targets, Maglev M=65537, VXLAN; Mpps per core against
#     workers, frame size and flows; a mixed traffic point (IPv6, filtered,
#     fragments) and one with routing changes published during the run;
#  3. the many-flows table (section `many`, issue 18): ns per packet at 1,
#     1k, 100k and 1M established flows for 1 VIP x 100 targets (IPIP) and
#     1000 VIPs x 100 targets (VXLAN), IPv4 and IPv6, and the new-flow cost
#     (every packet a miss, p50), one worker, 64 B, BENCH_ROUNDS interleaved
#     rounds (the report shows medians); then Katran's XDP balancer on the
#     same core and the same frames (section `katran`,
#     scripts/katran-bench.sh) when KATRAN_SRC names a Katran source tree;
#     burst latency percentiles through the pipeline (lbfwd-pktgen latency);
#  4. Maglev build time and disruption (lbfwd-pktgen maglev);
#  5. the veth path: lbfwd-pktgen send -> veth -> forwarder -> veth -> sink
#     counters, for lbfwd (af_packet, af_xdp) and dpdk-testpmd io/macswap on
#     the same veths (net_af_packet, net_af_xdp);
#  6. lbfwd-pktgen report: tables and plots.
#
# Pinning (as the README tells users): workers on dedicated cores, the
# highest cores first; generator, sink and control threads on core 0. On a
# 2-core machine: generator/sink on core 0, one worker on core 1.
#
# Environment:
#   BENCH_QUICK=1        short windows and fewer points (a smoke run)
#   BENCH_SKIP_VETH=1    skip the veth section (no root/netns)
#   BENCH_SKIP_DPDK=1    skip testpmd
#   BENCH_OUT=DIR        results directory (default benches/results)
#   BENCH_NO_BUILD=1     use the release binaries already built
#   BENCH_SECTIONS="..."  sections to run (default: dpdk memory many katran latency maglev veth)
#   BENCH_ROUNDS=N       interleaved rounds of the many-flows table (default 5, quick 3)
#   BENCH_LOCK_WAIT=S    how long the veth section waits for the namespace lock
#                        (LBFWD_NETNS_LOCK, default /tmp/lbfwd-netns.lock; 300 s)
#   KATRAN_SRC=DIR       a Katran source tree (git clone of facebookincubator/katran):
#                        section `katran` measures its XDP balancer; without it
#                        the section says so and is skipped
#
# Timing on the 2-core VM (shared, load 8-10): BENCH_QUICK=1 took 4 minutes
# without the veth section (about 1.5 more with it); the whole suite about
# 12 minutes plus the release build (about 5); only the many-flows table:
# BENCH_SECTIONS=many BENCH_QUICK=1, about 2.5 minutes (5.5 with the 5
# rounds of a full run), Katran under a minute more
# (benches/README.md, "Many flows", has the figures of these runs).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"
start_time=$(date +%s)

quick=${BENCH_QUICK:-0}
out_dir=${BENCH_OUT:-$root/benches/results}
raw="$out_dir/raw.jsonl"
log_dir=$(mktemp -d /tmp/lbfwd-bench.XXXXXX)
ncores=$(nproc)
last_core=$((ncores - 1))
gen_core=0

say() { echo "== $(date +%T) $*"; }
sections=" ${BENCH_SECTIONS:-dpdk memory many katran latency maglev veth} "
want() { [[ "$sections" == *" $1 "* ]]; }
[ "${BENCH_SKIP_VETH:-0}" = 1 ] && sections=${sections/ veth / }
[ "${BENCH_SKIP_DPDK:-0}" = 1 ] && sections=${sections/ dpdk / }

# --- dependencies and build ---------------------------------------------------
# shellcheck source=lib/deps.sh
. "$here/lib/deps.sh"
install_deps
if ! [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
  say "installing fonts-dejavu-core (plot labels)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-dejavu-core
fi

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  say "building release binaries (lbfwd with af_xdp, lbfwd-pktgen)"
  cargo build --release --features lbfwd-forwarder/af_xdp \
    -p lbfwd-forwarder --bin lbfwd -p lbfwd-benches --bin lbfwd-pktgen
fi
target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
# Run private copies: in a shared checkout another build may replace the
# binaries in the target directory (e.g. lbfwd without af_xdp) mid-run.
mkdir -p "$log_dir/bin"
cp "$target_dir/release/lbfwd-pktgen" "$target_dir/release/lbfwd" "$log_dir/bin/"
PKTGEN="$log_dir/bin/lbfwd-pktgen"
LBFWD="$log_dir/bin/lbfwd"
"$LBFWD" --version >/dev/null 2>&1 || true

mkdir -p "$out_dir"
: >"$raw"
cmd_file="$log_dir/commands.txt"
: >"$cmd_file"
note_cmd() { echo "$*" >>"$cmd_file"; }
run() { # run and remember the command for results.md
  note_cmd "$*"
  "$@"
}

if [ "$quick" = 1 ]; then
  secs=1; warm=0.5; sizes=64,512,1500; flows=1,10000,1000000; maglev_runs=2; veth_secs=4
  many_rounds=${BENCH_ROUNDS:-3}; many_secs=0.6; many_warm=0.3
else
  secs=2; warm=1; sizes=64,128,256,512,1024,1500; flows=1,100,1000,10000,100000,1000000; maglev_runs=5; veth_secs=6
  many_rounds=${BENCH_ROUNDS:-5}; many_secs=1; many_warm=0.5
fi
if ! [[ $many_rounds =~ ^[1-9][0-9]*$ ]]; then
  echo "bench.sh: BENCH_ROUNDS must be a whole number >= 1 (got '$many_rounds')" >&2
  exit 2
fi
if [ "$ncores" -ge 2 ]; then worker_counts=$(seq -s, 1 $((ncores - 1))); else worker_counts=1; fi
# Workers sweep: up to every core (core 0 shared with the system) to show scaling.
all_workers=$(seq -s, 1 "$ncores")

# --- 1. DPDK ceiling on net_null ----------------------------------------------
if want dpdk; then
  say "dpdk-testpmd io/macswap on net_null (ceiling of one core)"
  ceiling_secs=$([ "$quick" = 1 ] && echo 4 || echo 6)
  if LOG_DIR="$log_dir" MAIN_CORE=$gen_core FWD_CORE=$last_core \
      "$here/dpdk-ceiling.sh" "$ceiling_secs" io macswap | tee "$log_dir/ceiling.txt"; then
    note_cmd "MAIN_CORE=$gen_core FWD_CORE=$last_core scripts/dpdk-ceiling.sh $ceiling_secs io macswap"
    # Prefer the rate per CPU-second of the forwarding core (what our
    # Mpps/core is) when dpdk-ceiling.sh reports it; else the wall rate.
    while read -r line; do
      mode=$(awk '{print $2}' <<<"$line"); mode=${mode%:}
      wall=$(awk '{print $3}' <<<"$line")
      per_cpu=$(sed -n 's/.* \([0-9.]*\) Mpps per CPU-second.*/\1/p' <<<"$line")
      "$PKTGEN" io-record --out "$raw" --name "testpmd $mode" --path net_null --mpps "${per_cpu:-$wall}" \
        --detail "2 net_null ports, 1 forwarding core ($last_core), 64 B; ${per_cpu:+per CPU-second, }$wall Mpps wall" >/dev/null
    done < <(grep '^testpmd ' "$log_dir/ceiling.txt")
  else
    echo "dpdk-ceiling failed; continuing without the ceiling" >&2
  fi
fi

# --- 2. memory path -----------------------------------------------------------
if want memory; then
say "pipeline, memory path: the reference point and the sweeps"
common=(--out "$raw" --warmup "$warm")
common+=(--seconds "$secs")
run "$PKTGEN" memory "${common[@]}" --sweep workers --workers "$all_workers" --flows 1000000 --sizes 64
run "$PKTGEN" memory "${common[@]}" --sweep size --workers 1 --flows 1000000 --sizes "$sizes"
run "$PKTGEN" memory "${common[@]}" --sweep flows --workers 1 --flows "$flows" --sizes 64
run "$PKTGEN" memory "${common[@]}" --sweep mix --workers 1 --flows 1000000 --sizes 64 \
  --ipv6-share 0.3 --drop-share 0.1 --frag-share 0.05
# The same flows with glibc's malloc on transparent huge pages (THP is
# "madvise" on Debian; the tunable makes malloc ask for it): how much of the
# cost is TLB misses.
note_cmd "GLIBC_TUNABLES=glibc.malloc.hugetlb=1 lbfwd-pktgen memory ${common[*]} --sweep flows_thp --workers 1 --flows $flows --sizes 64"
GLIBC_TUNABLES=glibc.malloc.hugetlb=1 "$PKTGEN" memory "${common[@]}" --sweep flows_thp \
  --workers 1 --flows "$flows" --sizes 64
run "$PKTGEN" memory --out "$raw" --warmup "$warm" --seconds $((secs * 3)) --sweep churn \
  --workers 1 --flows 1000000 --sizes 64 --churn-ms 100
fi

# --- 3. the many-flows table (issue 18) ----------------------------------------
# Each round measures every configuration and family once, in the same
# order (so a slow minute of the shared machine hits one round of every
# point, not every round of one point); the report takes the medians.
many_flows=1,1000,100000,1000000
many_shapes=("--lbs 1 --targets 100 --encap ipip" "--lbs 1000 --targets 100 --encap vxlan")
if want many; then
  say "many flows: $many_rounds interleaved rounds (1 and 1000 VIPs, IPv4 and IPv6, flows $many_flows, new flows)"
  many_start=$(date +%s)
  for shape in "${many_shapes[@]}"; do
    for v6 in 0 1; do
      # shellcheck disable=SC2086 # a shape is a list of words
      note_cmd "lbfwd-pktgen memory $shape --ipv6-share $v6 --sweep many --workers 1 --flows $many_flows --sizes 64 --warmup $many_warm --seconds $many_secs  # x $many_rounds rounds"
      # shellcheck disable=SC2086
      note_cmd "lbfwd-pktgen latency $shape --ipv6-share $v6 --sweep many --flows 1000000 --rounds 0 --burst 32  # new flows, x $many_rounds rounds"
    done
  done
  for round in $(seq "$many_rounds"); do
    for shape in "${many_shapes[@]}"; do
      for v6 in 0 1; do
        # shellcheck disable=SC2086
        "$PKTGEN" memory $shape --ipv6-share "$v6" --sweep many --workers 1           --flows "$many_flows" --sizes 64 --warmup "$many_warm" --seconds "$many_secs"           --out "$raw" >/dev/null 2>"$log_dir/many.log"           || { echo "many: memory $shape ipv6 $v6 failed:" >&2; tail -5 "$log_dir/many.log" >&2; }
        # shellcheck disable=SC2086
        "$PKTGEN" latency $shape --ipv6-share "$v6" --sweep many --flows 1000000 --rounds 0           --burst 32 --out "$raw" >/dev/null 2>"$log_dir/many.log"           || { echo "many: latency $shape ipv6 $v6 failed:" >&2; tail -5 "$log_dir/many.log" >&2; }
      done
    done
    echo "   round $round of $many_rounds done ($(( $(date +%s) - many_start )) s, load average $(cut -d' ' -f1 /proc/loadavg))"
  done
fi

# --- 3b. Katran on the same core ---------------------------------------------
if want katran; then
  if [ -z "${KATRAN_SRC:-}" ]; then
    say "Katran: skipped (set KATRAN_SRC to a Katran source tree to measure it; see benches/README.md)"
  else
    say "Katran's XDP balancer from $KATRAN_SRC, BPF_PROG_TEST_RUN on core $last_core"
    note_cmd "KATRAN_SRC=... CORE=$last_core ROUNDS=$many_rounds scripts/katran-bench.sh  # results into raw.jsonl"
    KATRAN_RAW="$raw" PKTGEN="$PKTGEN" CORE=$last_core ROUNDS=$many_rounds LBFWD_RAW="$raw"       "$here/katran-bench.sh"       || echo "katran-bench.sh failed; continuing without Katran's figures" >&2
  fi
fi

# --- 4. latency ---------------------------------------------------------------
if want latency; then
  say "burst latency"
  run "$PKTGEN" latency --out "$raw" --flows 1000000 --rounds 2 --burst 32
fi

# --- 4. Maglev ----------------------------------------------------------------
if want maglev; then
  say "Maglev build time and disruption"
  run "$PKTGEN" maglev --out "$raw" --runs "$maglev_runs"
fi

# --- 5. veth path -------------------------------------------------------------
P=lbb
veth_cleanup() {
  for ns in gen lb sink; do ip netns del "$P-$ns" 2>/dev/null || true; done
}
fwd_pid=""
stop_fwd() {
  if [ -n "$fwd_pid" ] && kill -0 "$fwd_pid" 2>/dev/null; then
    kill -INT "$fwd_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$fwd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$fwd_pid" 2>/dev/null || true
  fi
  fwd_pid=""
}
trap 'stop_fwd; veth_cleanup; rm -rf /var/run/dpdk/lbb-*' EXIT

veth_setup() {
  veth_cleanup
  for ns in gen lb sink; do
    ip netns add "$P-$ns"
    ip netns exec "$P-$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$P-$ns" link set lo up
  done
  ip link add "$P-g0" netns "$P-gen" type veth peer name "$P-l0" netns "$P-lb"
  ip link add "$P-l1" netns "$P-lb" type veth peer name "$P-s0" netns "$P-sink"
  for pair in gen:g0 lb:l0 lb:l1 sink:s0; do
    ns=${pair%%:*}; dev=$P-${pair#*:}
    ip -n "$P-$ns" link set "$dev" up
    ip netns exec "$P-$ns" ethtool -K "$dev" gro off gso off tso off >/dev/null 2>&1 || true
  done
  ip -n "$P-lb" addr add 10.255.0.2/24 dev "$P-l1"
  ip -n "$P-sink" addr add 10.255.0.1/24 dev "$P-s0"
}

mac_of() { ip -n "$P-$1" -br link show dev "$P-$2" | awk '{print $3}'; }

# One measurement: the forwarder already runs; send for veth_secs, count at
# the sink over the middle of it, record.
veth_measure() { # NAME PATH DETAIL
  local name=$1 path=$2 detail=$3 l0mac
  l0mac=$(mac_of lb l0)
  ip netns exec "$P-sink" taskset -c $gen_core "$PKTGEN" count --dev "$P-s0" \
    --warmup 1.5 --seconds $((veth_secs - 3)) >"$log_dir/count.json" &
  local count_pid=$!
  ip netns exec "$P-gen" "$PKTGEN" send --dev "$P-g0" --dst-mac "$l0mac" --core $gen_core \
    --lbs "$veth_lbs" --targets "$veth_targets" --flows "$veth_flows" --size 64 \
    --seconds "$veth_secs" >"$log_dir/send.json"
  wait "$count_pid"
  local got offered
  got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mpps"])' "$log_dir/count.json")
  offered=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mpps"])' "$log_dir/send.json")
  echo "   $name on $path: $got Mpps at the sink (offered $offered)"
  "$PKTGEN" io-record --out "$raw" --name "$name" --path "$path" --mpps "$got" \
    --offered "$offered" --detail "$detail" >/dev/null
}

veth_lbs=100; veth_targets=10; veth_flows=10000
veth_section() {
  say "veth path: generator on core $gen_core, forwarder on core $last_core"
  veth_setup
  s0mac=$(mac_of sink s0)
  note_cmd "veth: ip netns exec $P-gen lbfwd-pktgen send --dev $P-g0 --core $gen_core --lbs $veth_lbs --targets $veth_targets --flows $veth_flows --size 64; sink: ip netns exec $P-sink lbfwd-pktgen count --dev $P-s0 (rx_packets)"
  # The generator alone: the same sender straight into the sink's veth (no
  # forwarder): the most any forwarder on this path can be offered.
  ip netns exec "$P-sink" taskset -c $gen_core "$PKTGEN" count --dev "$P-s0" \
    --warmup 1.5 --seconds $((veth_secs - 3)) >"$log_dir/count.json" &
  count_pid=$!
  ip netns exec "$P-lb" "$PKTGEN" send --dev "$P-l1" --dst-mac "$(mac_of sink s0)" --core $gen_core \
    --lbs "$veth_lbs" --targets "$veth_targets" --flows "$veth_flows" --size 64 \
    --seconds "$veth_secs" >"$log_dir/send.json" || true
  wait "$count_pid" || true
  if got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mpps"])' "$log_dir/count.json") \
     && offered=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mpps"])' "$log_dir/send.json"); then
    echo "   generator alone into the sink's veth: $got Mpps (sent $offered)"
    "$PKTGEN" io-record --out "$raw" --name "generator alone" --path "veth" --mpps "$got" \
      --offered "$offered" --detail "lbfwd-pktgen send on core $gen_core straight into the sink's veth, no forwarder" >/dev/null
  fi
  note_cmd "ip netns exec $P-lb lbfwd-pktgen send --dev $P-l1 --core $gen_core ...  # the generator alone, straight to the sink"

  for backend in af_packet af_xdp; do
    rundir="$log_dir/run-$backend"; mkdir -p "$rundir"
    "$PKTGEN" config --backend "$backend" --ingress "$P-l0" --egress "$P-l1" --workers "$last_core" \
      --next-hop-mac "$s0mac" --run-dir "$rundir" --lbs "$veth_lbs" --targets "$veth_targets" \
      --flow-capacity 65536 >"$rundir/lbfwd.toml"
    ip netns exec "$P-lb" "$LBFWD" run --config "$rundir/lbfwd.toml" >"$rundir/log" 2>&1 &
    fwd_pid=$!
    sleep 3
    if ! kill -0 "$fwd_pid" 2>/dev/null; then
      echo "lbfwd run ($backend) did not start:" >&2; tail -20 "$rundir/log" >&2; fwd_pid=""; continue
    fi
    note_cmd "lbfwd-pktgen config --backend $backend --ingress $P-l0 --egress $P-l1 --workers $last_core --lbs $veth_lbs --targets $veth_targets ... > lbfwd.toml; ip netns exec $P-lb lbfwd run --config lbfwd.toml"
    veth_measure "lbfwd $backend" "veth $backend" \
      "lbfwd run, $veth_lbs VIPs x $veth_targets targets, VXLAN, worker on core $last_core, $veth_flows flows, 64 B" \
      || echo "   lbfwd $backend: measurement failed" >&2
    stop_fwd
    tail -5 "$rundir/log" | sed 's/^/   lbfwd: /'
  done
  if [ "${BENCH_SKIP_DPDK:-0}" != 1 ]; then
    for pmd in af_packet af_xdp; do
      for mode in io macswap; do
        prefix="lbb-$pmd-$mode"
        vdevs=(--vdev "net_${pmd}0,iface=$P-l0" --vdev "net_${pmd}1,iface=$P-l1")
        ip netns exec "$P-lb" dpdk-testpmd -l "$gen_core,$last_core" --main-lcore $gen_core \
          --no-huge -m 1024 --no-shconf --no-pci --file-prefix "$prefix" "${vdevs[@]}" \
          --log-level=lib.eal:warning -- --forward-mode="$mode" --nb-cores=1 --burst=32 \
          --total-num-mbufs=16384 --stats-period=1 --auto-start </dev/null \
          >"$log_dir/testpmd-$pmd-$mode.log" 2>&1 &
        fwd_pid=$!
        sleep 4
        if ! kill -0 "$fwd_pid" 2>/dev/null; then
          echo "testpmd $mode on net_$pmd did not start:" >&2
          tail -20 "$log_dir/testpmd-$pmd-$mode.log" >&2; fwd_pid=""; continue
        fi
        note_cmd "ip netns exec $P-lb dpdk-testpmd -l $gen_core,$last_core --no-huge --vdev net_${pmd}0,iface=$P-l0 --vdev net_${pmd}1,iface=$P-l1 -- --forward-mode=$mode --nb-cores=1"
        veth_measure "testpmd $mode" "veth $pmd" "dpdk-testpmd net_$pmd, forwarding core $last_core, 64 B" \
          || echo "   testpmd $mode on net_$pmd: measurement failed" >&2
        stop_fwd
        rm -rf "/var/run/dpdk/$prefix"
      done
    done
  fi
  veth_cleanup
}
if want veth; then
  # A failure here (no AF_XDP on this kernel, a PMD missing) must not cost
  # the rest of the results. The section makes network namespaces and
  # veths: it holds the namespace lock the tests take (only while it runs),
  # and is skipped when the lock stays busy for BENCH_LOCK_WAIT seconds.
  lock=${LBFWD_NETNS_LOCK:-/tmp/lbfwd-netns.lock}
  lock_wait=${BENCH_LOCK_WAIT:-300}
  (
    if ! flock -w "$lock_wait" 9; then
      echo "veth section skipped: $lock still busy after ${lock_wait}s" >&2
      exit 1
    fi
    veth_section
  ) 9>"$lock" || echo "veth section failed; see above (results so far are kept)" >&2
fi

# --- 6. report ----------------------------------------------------------------
say "report"
cmd_text=$(sed -e "s#$log_dir/bin/##g" -e "s#$root/##g" "$cmd_file")
"$PKTGEN" report --in "$raw" --out-dir "$out_dir" --commands "$cmd_text"
elapsed=$(( $(date +%s) - start_time ))
say "done in ${elapsed}s; results in $out_dir (logs in $log_dir)"
