#!/usr/bin/env bash
# Runs every test of lbfwd on a fresh Debian 12 machine, as root.
# Installs what the tests need, then: formatting, lints, unit/integration and
# end-to-end tests (network namespaces), every fuzz target built and run
# briefly, and a build of the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/deps.sh
install_deps

export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== import cycles between modules"
python3 scripts/module-cycles-test.py
# Crates whose modules must not import each other.
for src in config/src forwarder/src; do
  if ! python3 scripts/module-cycles.py "$src"; then
    echo "FAILED: the modules of $src import each other (cycles above, with the" \
      "references that make them): move the shared item down a layer" >&2
    exit 1
  fi
done
echo "== cargo clippy"
cargo clippy --workspace --all-targets --features "$LBFWD_FEATURES" -- -D warnings
echo "== cargo test"
cargo test --workspace --features "$LBFWD_FEATURES" -- --test-threads=1
echo "== fuzz targets (built, and each run for a few seconds)"
scripts/fuzz.sh 10
echo "== cargo bench --no-run"
cargo bench --workspace --no-run --features "$LBFWD_FEATURES"
echo "== all tests passed"
