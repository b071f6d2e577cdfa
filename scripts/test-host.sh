#!/usr/bin/env bash
# scripts/test-host.sh — what the integration tests need of this host beyond `make deps`, which installs
# packages only. Run by `make integration-test`, `make bench` and `make critest`; it changes the host, so it
# prints every change it makes (and nothing when there is nothing to do).
#
# crun (every test runs pods on it too) refuses a hybrid cgroup layout (v1 hierarchies plus a v2 mount at
# /sys/fs/cgroup/unified) while any controller sits on the v2 side: "cgroups in hybrid mode not supported".
# A kernel that enables a controller only cgroup v2 knows how to mount elsewhere (hugetlb here, since no v1
# hierarchy claimed it at boot) leaves it there. Each such controller is moved to a v1 hierarchy of its own,
# which is where the v1 side expects it. A production daemon does not do this: its Status reports the crun
# handler unusable with this reason and fix (runtime/src/Daemon/CgroupLayout.cs).
set -euo pipefail

unified=/sys/fs/cgroup/unified
[[ -f $unified/cgroup.controllers ]] || exit 0
for controller in $(cat "$unified/cgroup.controllers"); do
  echo "test-host: CHANGING THE HOST: mounting the $controller cgroup controller at /sys/fs/cgroup/$controller" \
       "(moves it off the v2 mount $unified; crun refuses a hybrid layout with controllers there)" >&2
  mkdir -p "/sys/fs/cgroup/$controller"
  mount -t cgroup -o "$controller" cgroup "/sys/fs/cgroup/$controller"
done
