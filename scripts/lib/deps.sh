# Sourced by scripts: installs the Debian packages lbfwd's build, tests and
# demo need, once per machine.

# Cargo features the scripts build with (the system libraries below back them).
LBFWD_FEATURES="${LBFWD_FEATURES:-lbfwd-forwarder/af_xdp lbfwd-forwarder/dpdk}"

LBFWD_DEBS=(
  build-essential pkg-config clang llvm
  iproute2 iputils-ping ethtool tcpdump socat curl ncat netsniff-ng
  tshark python3 python3-scapy fonts-dejavu-core
  libbpf-dev libxdp-dev
  dpdk dpdk-dev libdpdk-dev
  # BGP announcement: lbfwd runs BIRD 2 under setpriv (util-linux); the
  # tests' router runs BIRD 2 too.
  bird2 util-linux
  # Layer-2 announcement: the tests' appliances run keepalived (VRRP), the
  # router asks with arping and ndisc6.
  keepalived arping ndisc6
  prometheus lintian strace dpkg-dev binutils man-db systemd
  # scripts/gen_golden.py checks its XXH3 against the reference xxhsum
  # (the fuzz seeds of scripts/fuzz.sh come from it).
  xxhash
)

install_deps() {
  local missing=()
  for p in "${LBFWD_DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # tshark asks whether non-root users may capture; answer no.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
  fi
  # The fuzz targets (scripts/fuzz.sh): cargo-fuzz from crates.io, with
  # the versions of its own lock file.
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz --version "^0.13"
  fi
}
