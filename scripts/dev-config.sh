#!/usr/bin/env bash
# scripts/dev-config.sh OUT — the development setup `make run` starts the daemon with, written under OUT
# (never under /etc): a bridge CNI network, a daemon config selecting it and a crictl config.
#
# A production daemon reads /etc/cni/net.d and reports NetworkReady false until a cluster CNI writes a
# config there; this network exists only for the daemon `make run` starts, so pods run out of the box.
# Files already present are kept (delete OUT to regenerate them).
#
#   OUT/crishim.toml                  the default config, with cni.conf_dir = OUT/cni/net.d
#   OUT/cni/net.d/10-crishim-dev.conflist   bridge $CRISHIM_DEV_BRIDGE, host-local $CRISHIM_DEV_SUBNET
#                                     (leases in OUT/cni/ipam), portmap, loopback; modelled on
#                                     packaging/10-crishim-bridge.conflist
#   OUT/crictl.yaml                   runtime-endpoint and image-endpoint: the default socket
#
# Environment knobs: CRISHIM_DEV_BRIDGE (default crishim-dev0), CRISHIM_DEV_SUBNET (default 10.89.0.0/16).
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 OUT" >&2; exit 2; }
out=$(realpath -m "$1")
bridge=${CRISHIM_DEV_BRIDGE:-crishim-dev0}
subnet=${CRISHIM_DEV_SUBNET:-10.89.0.0/16}
socket=/run/crishim/crishim.sock

# write_new PATH: stdin to PATH (0644) unless it exists; says what it wrote.
write_new() {
  if [[ -e $1 ]]; then cat >/dev/null; return 0; fi
  install -d -m 0755 "$(dirname "$1")"
  cat >"$1.tmp"
  chmod 0644 "$1.tmp"
  mv -f "$1.tmp" "$1"
  echo "dev-config: wrote $1"
}

write_new "$out/cni/net.d/10-crishim-dev.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "crishim-dev",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$out/cni/ipam",
        "ranges": [[{ "subnet": "$subnet" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    {
      "type": "portmap",
      "capabilities": { "portMappings": true }
    },
    {
      "type": "loopback"
    }
  ]
}
JSON

write_new "$out/crishim.toml" <<TOML
# Written by scripts/dev-config.sh for \`make run\`: the defaults of \`crishim config default\`, except
# for the development pod network below (a production node keeps cni.conf_dir = /etc/cni/net.d).
[cni]
conf_dir = "$out/cni/net.d"
TOML

write_new "$out/crictl.yaml" <<YAML
# Written by scripts/dev-config.sh: crictl --config $out/crictl.yaml (or CRI_CONFIG_FILE=...)
runtime-endpoint: unix://$socket
image-endpoint: unix://$socket
timeout: 60
YAML
