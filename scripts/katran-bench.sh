#!/usr/bin/env bash
# Katran's XDP balancer next to lbfwd on this machine, the same core and the
# same flows: compiles the balancer of a Katran source tree with clang
# -target bpf, loads it with libbpf (scripts/katran/katran_bench.c), sets
# up one VIP with REALS reals and its consistent-hashing ring (ring size
# RING_SIZE of the tree, 65537 by default) through its own maps, and times
# it with BPF_PROG_TEST_RUN, one frame per test run, on CORE: at 1, 1k,
# 100k and 1M established flows (each case with its own per-CPU LRU, room
# for twice its flows) and on new flows (an empty LRU, every packet a
# miss). The frames are lbfwd-pktgen's (`lbfwd-pktgen frames --lbs 1`:
# the flows of the many-flows table's "1 VIP x 100, IPIP, IPv4" column).
# Rounds interleave the cases; the figures are medians of the rounds.
#
# Katran's code is not part of this repository: get it yourself, e.g.
#   git clone https://github.com/facebookincubator/katran /work/katran-src
#   KATRAN_SRC=/work/katran-src scripts/katran-bench.sh
# Without KATRAN_SRC this says so and exits 0 (scripts/bench.sh runs it
# only when KATRAN_SRC is set).
#
# Environment:
#   KATRAN_SRC   the Katran source tree (required)
#   CORE         the core to run on (default: the last one)
#   ROUNDS       interleaved rounds (default 5)
#   FLOWS        established-flow cases (default 1,1000,100000,1000000)
#   REALS        reals behind the VIP (default 100)
#   KATRAN_CFLAGS  more clang flags (e.g. -DMAX_VIPS=512)
#   KATRAN_CLANG   the clang to compile it with (default: the newest installed)
#   PKTGEN       lbfwd-pktgen binary (default target/release/lbfwd-pktgen)
#   KATRAN_RAW   also append the figures to this results file (JSON lines,
#                as benches/results/raw.jsonl; scripts/bench.sh sets it)
#   LBFWD_RAW    results file whose lbfwd many-flows figures are printed
#                next to Katran's (default benches/results/raw.jsonl)
# Needs root (BPF), clang, llvm, libbpf-dev (installed with apt-get when
# missing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
if [ -z "${KATRAN_SRC:-}" ]; then
    echo "katran-bench: KATRAN_SRC is not set: no Katran source tree, nothing measured."
    echo "katran-bench: get one with: git clone https://github.com/facebookincubator/katran DIR; then KATRAN_SRC=DIR $0"
    exit 0
fi
src=$(cd "$KATRAN_SRC" && pwd)
core=${CORE:-$(( $(nproc) - 1 ))}
rounds=${ROUNDS:-5}
flows=${FLOWS:-1,1000,100000,1000000}
reals=${REALS:-100}
pktgen=${PKTGEN:-$root/target/release/lbfwd-pktgen}
lbfwd_raw=${LBFWD_RAW:-$root/benches/results/raw.jsonl}
for v in rounds reals core; do
    if ! [[ ${!v} =~ ^[0-9]+$ ]]; then
        echo "katran-bench: ${v^^} must be a whole number (got '${!v}')" >&2
        exit 2
    fi
done
if ! [[ $flows =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]]; then
    echo "katran-bench: FLOWS must be a comma list of flow counts (got '$flows')" >&2
    exit 2
fi
prog_src=
for c in katran/lib/bpf/balancer.bpf.c katran/lib/bpf/balancer_kern.c; do
    if [ -f "$src/$c" ]; then prog_src=$src/$c; break; fi
done
if [ -z "$prog_src" ]; then
    echo "katran-bench: $src is not a Katran source tree (no katran/lib/bpf/balancer.bpf.c or balancer_kern.c)" >&2
    exit 2
fi
if [ ! -x "$pktgen" ]; then
    echo "katran-bench: $pktgen not found: cargo build --release -p lbfwd-benches --bin lbfwd-pktgen (or set PKTGEN)" >&2
    exit 2
fi
if ! command -v clang >/dev/null || ! [ -e /usr/include/bpf/libbpf.h ]; then
    echo "katran-bench: installing clang, llvm and libbpf-dev" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang llvm libbpf-dev >&2
fi
# The newest clang there is: clang 14 writes the key and value types of a
# map-in-map's inner map (Katran's per-CPU LRU) as forward declarations in
# BTF, which libbpf 1.1 refuses ("can't determine key size"); Debian 12's
# clang-16 does not (apt-get install clang-16).
cc=${KATRAN_CLANG:-}
newest_clang() {
    for c in clang-19 clang-18 clang-17 clang-16 clang-15; do
        if command -v "$c" >/dev/null; then echo "$c"; return; fi
    done
}
if [ -z "$cc" ]; then
    cc=$(newest_clang)
    if [ -z "$cc" ]; then
        echo "katran-bench: installing clang-16 (clang 14's BTF for map-in-map inner maps does not load)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang-16 >&2 \
            || echo "katran-bench: clang-16 not installed; trying clang" >&2
        cc=$(newest_clang)
    fi
    cc=${cc:-clang}
fi

work=$(mktemp -d /tmp/katran-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
started=$(date +%s)

echo "katran-bench: compiling $prog_src ($cc -O2 -target bpf)" >&2
# shellcheck disable=SC2086 # KATRAN_CFLAGS is a list of words
"$cc" -O2 -g -target bpf -D__TARGET_ARCH_x86 \
    -I"$src" -I"$src/katran/lib/bpf" -I"$src/katran/lib/linux_includes" \
    -idirafter "/usr/include/$(gcc -dumpmachine)" \
    -Wno-unused-value -Wno-pointer-sign -Wno-compare-distinct-pointer-types \
    ${KATRAN_CFLAGS:-} -c "$prog_src" -o "$work/balancer.o" 2>"$work/clang.log" || {
    echo "katran-bench: compiling Katran's balancer failed:" >&2
    tail -n 30 "$work/clang.log" >&2
    exit 1
}
gcc -O2 -Wall -I"$src" "$here/katran/katran_bench.c" -lbpf -o "$work/katran_bench" 2>"$work/gcc.log" || {
    echo "katran-bench: compiling the harness failed:" >&2
    tail -n 30 "$work/gcc.log" >&2
    exit 1
}
most=$(tr ',' '\n' <<<"$flows" | sort -n | tail -1)
"$pktgen" frames --lbs 1 --targets "$reals" --encap ipip --flows "$most" --size 64 \
    --out "$work/frames.bin" >&2

echo "katran-bench: BPF_PROG_TEST_RUN on core $core, $rounds rounds, flows $flows and new flows ($most)" >&2
"$work/katran_bench" "$work/balancer.o" "$work/frames.bin" "$core" "$rounds" "$flows" "$reals" \
    | tee "$work/out.txt" >&2

# The empty program's cost: its p50 (taken from new-flow p50s) and mean
# (taken from the established-flow means).
baseline=$(awk '/^baseline/ { sub(/ns=/, "", $2); print $2 }' "$work/out.txt")
baseline_mean=$(awk '/^baseline/ { sub(/mean_ns=/, "", $3); print $3 }' "$work/out.txt")
case_name="1 VIP x $reals reals, IPIP, IPv4"
detail="BPF_PROG_TEST_RUN, one frame per run, core $core, mean over the round less the empty program's mean ($baseline_mean ns); new flows: p50 less the empty program's p50 ($baseline ns); $(basename "$prog_src")"
if [ -n "${KATRAN_RAW:-}" ]; then
    while read -r _ fl rd mean p50 _; do
        fl=${fl#flows=}; rd=${rd#round=}; mean=${mean#mean_ns=}; p50=${p50#p50_ns=}
        # New flows: the p50, as lbfwd's new-flow figure; established: the mean.
        if [ "$fl" = 0 ]; then raw_ns=$p50; base=$baseline; else raw_ns=$mean; base=$baseline_mean; fi
        ns=$(awk -v a="$raw_ns" -v b="$base" 'BEGIN { printf "%.1f", a - b }')
        "$pktgen" per-packet-record --out "$KATRAN_RAW" --name katran --case "$case_name" \
            --flows "$fl" --ns "$ns" --raw-ns "$raw_ns" --baseline-ns "$base" --round "$rd" \
            --detail "$detail" >/dev/null
    done < <(grep '^case ' "$work/out.txt")
fi

# The table: Katran's medians next to lbfwd's (from LBFWD_RAW, if there).
python3 - "$work/out.txt" "$lbfwd_raw" "$baseline" "$baseline_mean" "$reals" <<'PY'
import json, statistics, sys
out, raw, reals = sys.argv[1], sys.argv[2], int(sys.argv[5])
baseline, baseline_mean = float(sys.argv[3]), float(sys.argv[4])
kat = {}
for line in open(out):
    if not line.startswith("case "):
        continue
    f = dict(kv.split("=") for kv in line.split()[1:])
    flows = int(f["flows"])
    v = float(f["p50_ns"]) - baseline if flows == 0 else float(f["mean_ns"]) - baseline_mean
    kat.setdefault(flows, []).append(v)
ours = {}
try:
    for line in open(raw):
        r = json.loads(line)
        if r.get("sweep") != "many" or r.get("lbs") != 1 or r.get("ipv6_share", 0) >= 0.5:
            continue
        if r["kind"] == "throughput":
            ours.setdefault(r["flows"], []).append(r["ns_per_packet"])
        elif r["kind"] == "latency" and r["phase"] == "miss":
            ours.setdefault(0, []).append(r["packet_ns"][0])
except FileNotFoundError:
    pass
med = lambda v: statistics.median(v) if v else None
print(f"\nKatran (1 VIP x {reals} reals, IPv4, one frame per BPF_PROG_TEST_RUN, mean of each round,")
print(f"new flows p50; an empty program's cost taken out: {baseline_mean:.0f} ns mean, {baseline:.0f} ns p50)")
print(f"next to lbfwd (1 VIP x {reals} targets, IPIP, IPv4, memory path, from {raw}):")
print(f"{'flows':>22} {'Katran ns':>10} {'lbfwd ns':>9} {'Katran / lbfwd':>15}")
for flows in sorted(kat, key=lambda x: (x == 0, x)):
    k, o = med(kat[flows]), med(ours.get(flows, []))
    name = "new flows (p50)" if flows == 0 else str(flows)
    ratio = f"{k / o:.2f}" if o else "-"
    ours_ns = "-" if o is None else f"{o:.0f}"
    print(f"{name:>22} {k:>10.0f} {ours_ns:>9} {ratio:>15}")
PY
echo "katran-bench: done in $(( $(date +%s) - started )) s" >&2
