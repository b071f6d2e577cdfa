#!/usr/bin/env bash
# scripts/build-deb.sh BINARY OUTDIR — the crishim .deb from a Native AOT build (`make publish`'s
# out/aot/crishim), with dpkg-deb only: no network, no debhelper. Prints the .deb's path.
#
#   /usr/bin/crishim                                0755  the daemon
#   /etc/crishim/crishim.toml                       0644  conffile: `crishim config default`
#   /lib/systemd/system/crishim.service             0644  packaging/crishim.service (Type=notify), ExecStart=/usr/bin/crishim
#   /usr/share/crishim/10-crishim-bridge.conflist   0644  postinst copies it to /etc/cni/net.d if that has no config
#   /usr/share/crishim/crictl.yaml                  0644  postinst copies it to /etc/crictl.yaml if absent
#   /usr/share/man/man8/crishim.8.gz                0644  packaging/crishim.8
# postrm purge removes the two copies only if unchanged (their checksums are written into it here).
set -euo pipefail

[[ $# -eq 2 ]] || { echo "usage: $0 BINARY OUTDIR" >&2; exit 2; }
binary=$1 outdir=$2
repo=$(cd "$(dirname "$0")/.." && pwd)
packaging=$repo/packaging

[[ -x $binary ]] || { echo "build-deb: $binary is not an executable (run make publish)" >&2; exit 1; }
# "crishim 1.2.3 (CRI v1)"
version=$("$binary" version | awk '{ print $2 }')
[[ $version =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || { echo "build-deb: '$binary --version' gave no version" >&2; exit 1; }
arch=$(dpkg --print-architecture)

stage=$(mktemp -d "${TMPDIR:-/tmp}/crishim-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
umask 022
root=$stage/root
install -D -m 0755 "$binary" "$root/usr/bin/crishim"
install -d -m 0755 "$root/etc/crishim"
"$binary" config default >"$root/etc/crishim/crishim.toml"
chmod 0644 "$root/etc/crishim/crishim.toml"
install -d -m 0755 "$root/lib/systemd/system"
sed 's|^ExecStart=/usr/local/bin/crishim|ExecStart=/usr/bin/crishim|' "$packaging/crishim.service" >"$root/lib/systemd/system/crishim.service"
chmod 0644 "$root/lib/systemd/system/crishim.service"
grep -q '^ExecStart=/usr/bin/crishim$' "$root/lib/systemd/system/crishim.service" || { echo "build-deb: no ExecStart to rewrite in crishim.service" >&2; exit 1; }
install -D -m 0644 "$packaging/10-crishim-bridge.conflist" "$root/usr/share/crishim/10-crishim-bridge.conflist"
install -D -m 0644 "$packaging/deb/crictl.yaml" "$root/usr/share/crishim/crictl.yaml"
install -d -m 0755 "$root/usr/share/man/man8"
gzip -9n <"$packaging/crishim.8" >"$root/usr/share/man/man8/crishim.8.gz"
chmod 0644 "$root/usr/share/man/man8/crishim.8.gz"

install -d -m 0755 "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" "$packaging/deb/control" >"$root/DEBIAN/control"
echo /etc/crishim/crishim.toml >"$root/DEBIAN/conffiles"
install -m 0755 "$packaging/deb/postinst" "$root/DEBIAN/postinst"
sed -e "s/@CONFLIST_SHA256@/$(sha256sum <"$packaging/10-crishim-bridge.conflist" | cut -d' ' -f1)/" \
    -e "s/@CRICTL_SHA256@/$(sha256sum <"$packaging/deb/crictl.yaml" | cut -d' ' -f1)/" \
    "$packaging/deb/postrm" >"$root/DEBIAN/postrm"
chmod 0755 "$root/DEBIAN/postrm"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control" "$root/DEBIAN/conffiles"

mkdir -p "$outdir"
deb=$outdir/crishim_${version}_${arch}.deb
# gzip: the AOT binary is most of it, and xz would make this the slowest step of make test.
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >&2
echo "$deb"
