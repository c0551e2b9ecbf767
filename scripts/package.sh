#!/usr/bin/env bash
# Builds the Debian package target/debian/lbfwd_VERSION_amd64.deb with
# dpkg-deb: lbfwd and lbctl (with the af_xdp and dpdk backends), the
# systemd unit, the default /etc/lbfwd/lbfwd.toml (a conffile), shell
# completions and man pages generated from the CLI definitions, copyright,
# changelog, and Depends computed by dpkg-shlibdeps from the libraries the
# binaries link. Then lints it with lintian (errors fail the build).
#
#   scripts/package.sh                     # release build (LTO: slow)
#   scripts/package.sh --bin-dir target/debug   # package binaries built already
#                                          # (the tests do this; stripped either way)
#   scripts/package.sh --no-lintian
#
# Needs: cargo, dpkg-dev (dpkg-deb, dpkg-shlibdeps), binutils (strip),
# lintian, and the libraries of scripts/lib/deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bin_dir=""
lint=1
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --no-lintian) lint=0; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "package.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "package.sh: no version in Cargo.toml [workspace.package]" >&2; exit 1; }
arch=$(dpkg --print-architecture)
features="${LBFWD_FEATURES:-lbfwd-forwarder/af_xdp lbfwd-forwarder/dpdk}"

if [ -z "$bin_dir" ]; then
  echo "== cargo build --release ($features)"
  cargo build --release --locked -p lbfwd-forwarder -p lbfwd-control --bins --features "$features"
  bin_dir=target/release
fi
for b in lbfwd lbctl; do
  [ -x "$bin_dir/$b" ] || { echo "package.sh: $bin_dir/$b is missing; build it first" >&2; exit 1; }
done

out=target/debian
stage=$out/lbfwd_${version}_${arch}
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/lbfwd" \
  "$stage/usr/share/man/man1" "$stage/usr/share/doc/lbfwd/examples" \
  "$stage/usr/share/bash-completion/completions" "$stage/usr/share/zsh/vendor-completions" \
  "$stage/usr/share/fish/vendor_completions.d"

echo "== files"
for b in lbfwd lbctl; do
  install -m 0755 "$bin_dir/$b" "$stage/usr/bin/$b"
  # As dh_strip does: no debug symbols, no .comment/.note sections.
  strip --remove-section=.comment --remove-section=.note --strip-unneeded "$stage/usr/bin/$b"
done
install -m 0644 packaging/lbfwd.service "$stage/lib/systemd/system/lbfwd.service"
install -m 0644 packaging/lbfwd.toml "$stage/etc/lbfwd/lbfwd.toml"
install -m 0644 packaging/dpdk.conf "$stage/usr/share/doc/lbfwd/examples/dpdk.conf"
install -m 0644 config/examples/lbfwd.toml "$stage/usr/share/doc/lbfwd/examples/lbfwd.toml"
install -m 0644 config/examples/ironcore.yaml "$stage/usr/share/doc/lbfwd/examples/ironcore.yaml"
install -m 0644 README.md "$stage/usr/share/doc/lbfwd/README.md"
gzip -9n "$stage/usr/share/doc/lbfwd/README.md"
install -m 0644 packaging/copyright "$stage/usr/share/doc/lbfwd/copyright"
install -D -m 0644 packaging/lintian-overrides "$stage/usr/share/lintian/overrides/lbfwd"

# The default config must be one lbfwd accepts.
"$stage/usr/bin/lbfwd" check --config "$stage/etc/lbfwd/lbfwd.toml" >/dev/null

# Man pages and completions from the clap definitions.
man_tmp=$(mktemp -d)
trap 'rm -rf "$man_tmp"' EXIT
"$stage/usr/bin/lbfwd" man "$man_tmp"
"$stage/usr/bin/lbctl" man "$man_tmp"
for page in "$man_tmp"/*.1; do
  gzip -9nc "$page" > "$stage/usr/share/man/man1/$(basename "$page").gz"
done
chmod 0644 "$stage"/usr/share/man/man1/*
for b in lbfwd lbctl; do
  "$stage/usr/bin/$b" completions bash > "$stage/usr/share/bash-completion/completions/$b"
  "$stage/usr/bin/$b" completions zsh > "$stage/usr/share/zsh/vendor-completions/_$b"
  "$stage/usr/bin/$b" completions fish > "$stage/usr/share/fish/vendor_completions.d/$b.fish"
done

# changelog.Debian (one entry per version; the date of the last commit,
# so that the same commit gives the same package).
date_rfc=$(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")
cat > "$man_tmp/changelog.Debian" <<CHANGELOG
lbfwd ($version) unstable; urgency=medium

  * Package of lbfwd $version (scripts/package.sh).

 -- lbfwd maintainers <lbfwd@example.net>  $date_rfc
CHANGELOG
gzip -9nc "$man_tmp/changelog.Debian" > "$stage/usr/share/doc/lbfwd/changelog.gz"

install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
echo /etc/lbfwd/lbfwd.toml > "$stage/DEBIAN/conffiles"

echo "== dependencies (dpkg-shlibdeps)"
shl=$(mktemp -d)
mkdir -p "$shl/debian"
printf 'Source: lbfwd\n\nPackage: lbfwd\nArchitecture: any\n' > "$shl/debian/control"
shlibs=$(cd "$shl" && dpkg-shlibdeps -O "$root/$stage/usr/bin/lbfwd" "$root/$stage/usr/bin/lbctl" 2>"$shl/log") \
  || { cat "$shl/log" >&2; exit 1; }
rm -rf "$shl"
depends=${shlibs#shlibs:Depends=}
[ -n "$depends" ] || { echo "package.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: lbfwd
Version: $version
Architecture: $arch
Maintainer: lbfwd maintainers <lbfwd@example.net>
Installed-Size: $size
Depends: $depends
Recommends: bird2, keepalived
Suggests: prometheus
Section: net
Priority: optional
Description: L3 network load balancer (Maglev, IP-in-IP/GUE/VXLAN, DSR)
 lbfwd is a poll-mode packet forwarder that gives a group of network
 interfaces one stable virtual IP. Each packet for a VIP passes a
 port/protocol allow list, is mapped to one target through a Maglev
 consistent-hash table and leaves, unchanged inside, in an IP-in-IP, GUE or
 VXLAN header toward that target, which answers the client directly.
 .
 This package has the lbfwd daemon (af_packet, af_xdp, dpdk, pcap and
 memory backends), lbctl, a hardened systemd unit with sd_notify and
 watchdog, a Prometheus endpoint, man pages and shell completions.
CONTROL

(cd "$stage" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) \
  > "$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles"

deb=$out/lbfwd_${version}_${arch}.deb
echo "== dpkg-deb --build $deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
if [ "$lint" = 1 ]; then
  echo "== lintian"
  # Errors fail the build; warnings are shown.
  lintian --fail-on error --tag-display-limit 0 "$deb"
fi
echo "$deb"
