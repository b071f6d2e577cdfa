#!/bin/bash
# Runs an installed critest (cri-tools' conformance suite; not built here) against a private crishim.
# The images critest pulls are served offline: `make test-images TEST_IMAGES_FLAGS=--critest` pushes
# stand-ins under their upstream paths to 127.0.0.1:5000, and this config mirrors registry.k8s.io,
# gcr.io and public.ecr.aws there. Extra arguments go to critest (e.g. --ginkgo.focus=Attach).
set -euo pipefail

CRITEST=${CRITEST:-$(command -v critest || true)}
CRISHIM=${CRISHIM:-$(dirname "$0")/../out/aot/crishim}
if [ -z "$CRITEST" ]; then
  echo "critest is not installed: build it from kubernetes-sigs/cri-tools (make critest) and put it on PATH" >&2
  exit 2
fi

work=$(mktemp -d /tmp/crishim-critest.XXXXXX)
# Searchable (not listable) by others: the root of a user-namespaced pod reaches its rootfs through it.
chmod 0711 "$work"
sock=$work/crishim.sock
mkdir -p "$work/net.d"
cat > "$work/net.d/10-critest.conflist" <<CONF
{
  "cniVersion": "1.0.0",
  "name": "crishim-critest",
  "plugins": [
    { "type": "bridge", "bridge": "crishim-ct0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": "10.77.0.0/16" }]], "routes": [{ "dst": "0.0.0.0/0" }] } },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "loopback" }
  ]
}
CONF
cat > "$work/crishim.toml" <<CONF
[server]
socket = "$sock"
[state]
root = "$work/lib"
run_root = "$work/run"
[runtime.handlers.crun]
path = "/opt/crishim/crun/bin/crun"
[cni]
conf_dir = "$work/net.d"
[registries.mirrors]
"registry.k8s.io" = ["http://127.0.0.1:5000"]
"gcr.io" = ["http://127.0.0.1:5000"]
"public.ecr.aws" = ["http://127.0.0.1:5000"]
CONF

"$CRISHIM" --config "$work/crishim.toml" > "$work/crishim.log" 2>&1 &
daemon=$!
stop() {
  # Pods critest left behind (a failed spec) go with the daemon's state.
  if command -v crictl > /dev/null; then
    crictl --runtime-endpoint "unix://$sock" rmp -fa > /dev/null 2>&1 || true
  fi
  kill "$daemon" 2> /dev/null || true
  wait "$daemon" 2> /dev/null || true
  rm -rf "$work/lib" "$work/run" /var/lib/cni/networks/crishim-critest
  echo "daemon log and config kept in $work"
}
trap stop EXIT
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done

"$CRITEST" --runtime-endpoint "unix://$sock" --image-endpoint "unix://$sock" --ginkgo.no-color "$@"
