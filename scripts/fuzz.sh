#!/usr/bin/env bash
# Builds every cargo-fuzz target of forwarder/fuzz and runs each for
# SECONDS (default 10) on seed corpora made from the repository's own
# inputs: the example and test configs (config), the Ironcore manifests
# (manifest), the replay captures (pcap), the request lines in
# forwarder/fuzz/seeds/control (control), the golden cases' frames
# (pipeline, from scripts/gen_golden.py --fuzz-seeds). Fails on the first
# crash, hang or leak, naming the input that caused it and how to run it
# again.
#
#   scripts/fuzz.sh [SECONDS]          # every target
#   scripts/fuzz.sh SECONDS TARGET...  # some
#
# Needs cargo-fuzz (scripts/lib/deps.sh installs it) and runs on the
# stable toolchain with RUSTC_BOOTSTRAP=1 (libFuzzer's sanitizer flags).
# The corpora grow in forwarder/fuzz/corpus/TARGET (ignored by git), so a
# later run starts where this one stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds="${1:-10}"
shift || true
cd forwarder/fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(RUSTC_BOOTSTRAP=1 cargo fuzz list)
fi

# No sanitizer: the targets are safe Rust (the unsafe I/O backends are not
# on these paths), and without ASan the build and the runs take half the time.
echo "== cargo fuzz build (${targets[*]})"
if [ $# -eq 0 ]; then
  RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer none
else
  for t in "${targets[@]}"; do
    RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer none "$t"
  done
fi
bin="target/x86_64-unknown-linux-gnu/release"

seeds=$(mktemp -d /tmp/lbfwd-fuzz-seeds.XXXXXX)
# The control target's daemon directory (config, saved state), removed with
# the seeds.
export LBFWD_FUZZ_DIR=$(mktemp -d /dev/shm/lbfwd-fuzz.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$seeds" "$LBFWD_FUZZ_DIR"' EXIT
mkdir -p "$seeds"/{config,manifest,pcap,control,pipeline,parse}
cp "$root"/config/examples/*.toml "$root"/config/tests/fixtures/*.toml "$seeds/config/"
cp "$root"/forwarder/tests/golden/*.toml "$seeds/config/"
cp "$root/packaging/lbfwd.toml" "$seeds/config/packaging.toml"
cp "$root"/config/examples/*.yaml "$root"/config/tests/fixtures/*.yaml "$seeds/manifest/"
cp "$root"/forwarder/tests/golden/*.pcap "$seeds/pcap/"
cp "$root"/forwarder/fuzz/seeds/control/* "$seeds/control/"
/usr/bin/python3 "$root/scripts/gen_golden.py" --fuzz-seeds "$seeds/pipeline" >/dev/null
# The parser's seeds: each case's first frame, without the pipeline's
# framing (a setup byte, then a 2-byte length and a time step per frame).
for f in "$seeds"/pipeline/*; do
  tail -c +5 "$f" >"$seeds/parse/${f##*/}"
done

for t in "${targets[@]}"; do
  corpus="corpus/$t"
  artifacts="artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  echo "== fuzz $t for ${seconds}s"
  log="$artifacts/last-run.log"
  # -timeout: one input over 10 s is a hang; -rss_limit_mb: a leak or a
  # blow-up of memory.
  if ! "$bin/$t" "$corpus" "$seeds/$t" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "FAILED: fuzz target $t found an input that fails (see the artifact named" \
      "above in forwarder/fuzz/$artifacts); run it again with:" \
      "cd forwarder/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none $t ARTIFACT" >&2
    exit 1
  fi
  grep -E "^stat::number_of_executed_units|^Done" "$log" | tr '\n' ' '
  echo
done
echo "== fuzz: every target ran ${seconds}s without a failure"
