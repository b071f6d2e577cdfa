#!/usr/bin/env bash
# scripts/containerd.sh — containerd from Debian, beside CriShim, for `make bench-compare` (1.7, Debian 13)
# and `make interop` (2.1, Debian forky). Never touches the host's /etc/containerd, /run/containerd or
# /var/lib/containerd, and installs nothing through apt.
#
#   containerd.sh install VERSION
#       Unpacks Debian's containerd .deb (exact version, fetched with `apt-get download` from the
#       suite that `make deps` added, pinned to -1) into /opt/crishim/containerd-VERSION. Its binaries
#       only need the system libc (>= 2.34), so no loader patching. Quiet and quick when present.
#   containerd.sh run VERSION DIR REGISTRY CNI_CONF_DIR [RUNC]
#       Writes DIR/config.toml and runs containerd in the foreground (this process becomes containerd)
#       on DIR/containerd.sock with root DIR/root and state DIR/state; its CRI plugin uses RUNC
#       (default /opt/crishim/runc/bin/runc, make deps' runc 1.3) with its root in DIR/runc, the CNI
#       plugins in /usr/lib/cni with the networks in CNI_CONF_DIR, and pulls from REGISTRY (host:port)
#       over plain HTTP; its sandbox image is REGISTRY/pause:3.10. The shims put their sockets
#       in /run/containerd/s whatever the config says, so containerd runs in a private mount namespace
#       with a private tmpfs on /run: its shims, runc state and sockets never reach the host's /run.
#
# VERSION is 1.7 or 2.1 (Debian's 1.7.24 and 2.1.9). DIR must exist and be owned by the caller.
set -euo pipefail

declare -A DEB_VERSION=( [1.7]="1.7.24~ds1-6+deb13u1" [2.1]="2.1.9+ds1-5" )
declare -A DEB_SUITE=(   [1.7]=trixie                   [2.1]=forky )
DEB_DIR=/var/cache/crishim/debs

die() { echo "containerd.sh: $*" >&2; exit 1; }

version_known() { [[ -n ${DEB_VERSION[$1]:-} ]] || die "unknown containerd version '$1' (one of: ${!DEB_VERSION[*]})"; }
prefix_of() { printf '/opt/crishim/containerd-%s' "$1"; }

# The stamp names the exact package, so a changed DEB_VERSION rebuilds the prefix.
stamp_line() { printf 'containerd=%s suite=%s' "${DEB_VERSION[$1]}" "${DEB_SUITE[$1]}"; }

install_prefix() {
  local version=$1 prefix
  version_known "$version"
  prefix=$(prefix_of "$version")
  if [[ -f $prefix/.crishim-stamp && "$(cat "$prefix/.crishim-stamp")" == "$(stamp_line "$version")" ]] \
     && "$prefix/usr/bin/containerd" --version >/dev/null 2>&1; then
    return 0
  fi
  [[ $(id -u) -eq 0 ]] || die "must run as root"
  local debs=$DEB_DIR/containerd-$version
  rm -rf "$debs"
  mkdir -p "$debs"
  echo "containerd.sh: fetching containerd ${DEB_VERSION[$version]} from Debian ${DEB_SUITE[$version]} (not installed)" >&2
  (cd "$debs" && apt-get -q -o APT::Sandbox::User=root download "containerd=${DEB_VERSION[$version]}" >&2) \
    || die "apt-get download containerd=${DEB_VERSION[$version]} failed: run make deps first (it adds the ${DEB_SUITE[$version]} source)"
  local tmp
  tmp=$(mktemp -d "$prefix.tmp.XXXXXX")
  dpkg-deb -x "$debs"/containerd_*.deb "$tmp"
  chmod 0755 "$tmp"
  "$tmp/usr/bin/containerd" --version >&2 || die "the unpacked containerd does not run on this libc"
  stamp_line "$version" >"$tmp/.crishim-stamp"
  rm -rf "$prefix"
  mv "$tmp" "$prefix"
}

# config_toml DIR REGISTRY CNI_CONF_DIR RUNC: version 2 of the config format, which 1.7 reads and
# 2.x migrates. NRI is off (it would listen on /var/run/nri). Sockets, root, state, the opt plugin's
# dir and runc's root are under DIR; libcni keeps its result cache in /var/lib/cni (no setting).
config_toml() {
  local dir=$1 registry=$2 cni_conf_dir=$3 runc=$4
  cat <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "$dir/containerd.sock"

[ttrpc]
  address = "$dir/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$registry/pause:3.10"
  netns_mounts_under_state_dir = true
  enable_selinux = false
  # As CriShim clamps it: root here may lack CAP_SYS_RESOURCE, so nothing goes below the daemon's own score.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$runc"
        Root = "$dir/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$cni_conf_dir"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
EOF
}

hosts_toml() {
  cat <<EOF
server = "http://$1"

[host."http://$1"]
  capabilities = ["pull", "resolve"]
EOF
}

run_containerd() {
  [[ $# -ge 4 ]] || die "usage: containerd.sh run VERSION DIR REGISTRY CNI_CONF_DIR [RUNC]"
  local version=$1 dir=$2 registry=$3 cni_conf_dir=$4 runc=${5:-/opt/crishim/runc/bin/runc}
  version_known "$version"
  local prefix
  prefix=$(prefix_of "$version")
  [[ -x $prefix/usr/bin/containerd ]] || die "$prefix is missing: run containerd.sh install $version"
  [[ -d $dir ]] || die "$dir does not exist"
  [[ -x $runc ]] || die "$runc is missing: run make deps"
  install -d -m 0700 "$dir/root" "$dir/state" "$dir/runc" "$dir/opt" "$dir/certs.d/$registry"
  hosts_toml "$registry" >"$dir/certs.d/$registry/hosts.toml"
  config_toml "$dir" "$registry" "$cni_conf_dir" "$runc" >"$dir/config.toml"
  chmod 0600 "$dir/config.toml"
  # PATH: the shim (found next to containerd) and the criu wrapper of make deps (CRIU_FAULT).
  # unshare and sh exec in turn, so the caller's child process is containerd itself.
  exec unshare --mount --propagation private -- sh -c 'mount -t tmpfs -o mode=0755,size=64m tmpfs /run && exec "$@"' sh \
    env "PATH=$prefix/usr/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    "$prefix/usr/bin/containerd" --config "$dir/config.toml"
}

case "${1:-}" in
  install) [[ $# -eq 2 ]] || die "usage: containerd.sh install VERSION"; install_prefix "$2" ;;
  run) shift; run_containerd "$@" ;;
  *) die "usage: containerd.sh install VERSION | run VERSION DIR REGISTRY CNI_CONF_DIR [RUNC]" ;;
esac
