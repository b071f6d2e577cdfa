#!/usr/bin/env bash
# scripts/deps.sh — install CriShim's host dependencies on Debian 12 (bookworm).
#
# Called by `make deps`; must run as root. Idempotent: when everything is
# already in place it only runs a few cheap checks (dpkg-query, file compares,
# `criu --version`) and prints the version summary, without touching apt.
#
# What it sets up:
#   1. Debian 12 packages: OCI runtimes (runc, crun), conmon, catatonit, CNI
#      plugins, networking tools, a local registry, image tools, etc.
#   2. /var/cache/crishim/debs/busybox_*.deb (+ busybox.deb symlink): the
#      dynamic busybox package, downloaded but NOT installed (it conflicts with
#      busybox-static); the test-image builder unpacks it with dpkg-deb -x.
#   3. CRIU 4.x from Debian 13 (trixie). Debian 12's CRIU 3.17 fails on recent
#      kernels (vDSO error). Trixie is added as an apt source pinned to -1, so
#      nothing from it is ever installed by apt by default. The trixie criu .deb
#      and the .debs of its whole shared-library dependency closure (including
#      trixie's libc6 and ld-linux loader) are unpacked with dpkg-deb -x into a
#      private prefix (/opt/crishim/criu). The prefix's criu binary gets its ELF
#      interpreter and RPATH rewritten (patchelf) to point into the prefix, so it
#      never touches the system libc and /proc/self/exe is the real criu binary.
#      /usr/local/bin/criu is a tiny wrapper that sets CRIU_FAULT=130 (hardware
#      breakpoints do not fire in our VMs; without it a dump hangs) and execs it.
#
# Environment knobs (all optional):
#   CRISHIM_CRIU_PREFIX  private CRIU prefix            (default /opt/crishim/criu)
#   CRISHIM_CRIU_MODE    patchelf | ldso                (default patchelf; ldso
#                        runs criu through the prefix's loader with --library-path)
#   CRISHIM_DEPS_FORCE=1 redo every step (re-download + rebuild the CRIU prefix)
set -euo pipefail

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------
APT_PACKAGES=(
  # OCI runtimes, monitor, init
  runc crun conmon catatonit
  # networking: CNI plugins (/usr/lib/cni), ip, iptables/nft, conntrack
  containernetworking-plugins iproute2 iptables nftables conntrack
  # images + registry: local registry, skopeo, umoci, htpasswd
  docker-registry skopeo umoci apache2-utils busybox-static
  # generic tools used by builds / tests
  jq curl ca-certificates xz-utils tar gzip util-linux procps psmisc kmod
  socat libcap2-bin iputils-ping uidmap
  # needed to build the private CRIU prefix
  patchelf
)

DEB_DIR=/var/cache/crishim/debs
CRIU_DEB_DIR=$DEB_DIR/criu-trixie
CRIU_PREFIX=${CRISHIM_CRIU_PREFIX:-/opt/crishim/criu}
CRIU_MODE=${CRISHIM_CRIU_MODE:-patchelf}
CRIU_WRAPPER=/usr/local/bin/criu
CRIU_FAULT_DEFAULT=130
CRIU_STAMP=$CRIU_PREFIX/.crishim-stamp
# Bump STAMP_REV whenever the way the prefix is built changes: it forces a rebuild.
STAMP_REV=1
TRIXIE_SOURCES=/etc/apt/sources.list.d/crishim-trixie.sources
TRIXIE_PREFS=/etc/apt/preferences.d/crishim-trixie
FORCE=${CRISHIM_DEPS_FORCE:-0}

export DEBIAN_FRONTEND=noninteractive
# apt-get download as root into a root-owned dir: skip the _apt sandbox warning.
APT_OPTS=(-q -o APT::Sandbox::User=root)

log()  { printf 'deps: %s\n' "$*" >&2; }
warn() { printf 'deps: WARNING: %s\n' "$*" >&2; }
die()  { printf 'deps: ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# Expected file contents
# ---------------------------------------------------------------------------
trixie_sources_content() {
  cat <<'EOF'
# Added by CriShim scripts/deps.sh: Debian 13 is used ONLY to fetch CRIU and
# its library closure into a private prefix (/opt/crishim/criu). Pinned to -1
# in /etc/apt/preferences.d/crishim-trixie, so apt never installs from it.
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

trixie_prefs_content() {
  cat <<'EOF'
# Added by CriShim scripts/deps.sh: never install anything from Debian 13 by
# default (packages are only fetched with `apt-get download pkg=version`).
Package: *
Pin: release n=trixie
Pin-Priority: -1
EOF
}

stamp_first_line() { printf 'crishim-criu rev=%s mode=%s prefix=%s' "$STAMP_REV" "$CRIU_MODE" "$CRIU_PREFIX"; }

# Wrapper installed at /usr/local/bin/criu (needs the prefix to exist in ldso mode).
wrapper_content() {
  local exec_line
  case "$CRIU_MODE" in
    patchelf) exec_line="exec $CRIU_PREFIX/usr/sbin/criu \"\$@\"" ;;
    ldso)     exec_line="exec $(loader_path) --library-path $(lib_path) $CRIU_PREFIX/usr/sbin/criu \"\$@\"" ;;
  esac
  cat <<EOF
#!/bin/sh
# Installed by CriShim scripts/deps.sh (mode: $CRIU_MODE). Runs Debian 13's CRIU
# from the private prefix $CRIU_PREFIX, fully isolated from the system libc.
# CRIU_FAULT=130 disables hardware breakpoints, which do not fire in our VMs
# (without it a dump hangs); an explicitly set CRIU_FAULT is honoured.
CRIU_FAULT="\${CRIU_FAULT:-$CRIU_FAULT_DEFAULT}"
export CRIU_FAULT
$exec_line
EOF
}

# file_is PATH CONTENT: true when PATH exists with exactly CONTENT.
file_is() { [[ -f $1 ]] && [[ "$(cat "$1")" == "$2" ]]; }

# write_file PATH CONTENT [MODE]: atomic replace.
write_file() {
  local tmp
  tmp=$(mktemp "$1.tmp.XXXXXX")
  printf '%s\n' "$2" >"$tmp"
  chmod "${3:-0644}" "$tmp"
  mv -f "$tmp" "$1"
}

# ---------------------------------------------------------------------------
# Prefix layout helpers
# ---------------------------------------------------------------------------
# Library directories inside the prefix, in search order (only existing ones).
lib_path() {
  local d real out=() seen=" "
  for d in usr/lib/x86_64-linux-gnu lib/x86_64-linux-gnu usr/lib lib; do
    [[ -d $CRIU_PREFIX/$d ]] || continue
    # skip directories reached through the lib -> usr/lib convenience link
    real=$(readlink -f "$CRIU_PREFIX/$d")
    [[ $seen == *" $real "* ]] && continue
    seen+="$real "
    out+=("$CRIU_PREFIX/$d")
  done
  local IFS=:
  printf '%s' "${out[*]}"
}

# The prefix's own dynamic loader (a regular file, not a symlink, so it can
# never point back at the system loader).
loader_path() {
  local c
  for c in usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 lib/x86_64-linux-gnu/ld-linux-x86-64.so.2; do
    if [[ -f $CRIU_PREFIX/$c && ! -L $CRIU_PREFIX/$c ]]; then
      printf '%s' "$CRIU_PREFIX/$c"
      return 0
    fi
  done
  return 1
}

# ---------------------------------------------------------------------------
# State checks (cheap: these make up the fast path)
# ---------------------------------------------------------------------------
MISSING_PACKAGES=()
check_packages() {
  local installed
  installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${APT_PACKAGES[@]}" 2>/dev/null \
                | awk '$2 == "ii" { print $1 }' || true)
  MISSING_PACKAGES=()
  local p
  for p in "${APT_PACKAGES[@]}"; do
    grep -qxF "$p" <<<"$installed" || MISSING_PACKAGES+=("$p")
  done
  [[ ${#MISSING_PACKAGES[@]} -eq 0 ]]
}

busybox_deb_ok() {
  [[ -f $DEB_DIR/busybox.deb ]] || return 1
  local f
  for f in "$DEB_DIR"/busybox_*.deb; do [[ -f $f ]] && return 0; done
  return 1
}

trixie_apt_ok() {
  file_is "$TRIXIE_SOURCES" "$(trixie_sources_content)" && file_is "$TRIXIE_PREFS" "$(trixie_prefs_content)"
}

criu_prefix_ok() {
  [[ -f $CRIU_STAMP ]] && [[ "$(head -n1 "$CRIU_STAMP")" == "$(stamp_first_line)" ]] && loader_path >/dev/null
}

criu_wrapper_ok() {
  file_is "$CRIU_WRAPPER" "$(wrapper_content)" && [[ -x $CRIU_WRAPPER ]] \
    && "$CRIU_WRAPPER" --version >/dev/null 2>&1
}

# ---------------------------------------------------------------------------
# Actions
# ---------------------------------------------------------------------------
APT_UPDATED=0
apt_update_once() {
  [[ $APT_UPDATED -eq 1 ]] && return 0
  log "apt-get update"
  apt-get "${APT_OPTS[@]}" update >&2
  APT_UPDATED=1
}

setup_trixie_apt() {
  if ! file_is "$TRIXIE_SOURCES" "$(trixie_sources_content)"; then
    log "adding Debian 13 (trixie) apt source $TRIXIE_SOURCES"
    write_file "$TRIXIE_SOURCES" "$(trixie_sources_content)"
    APT_UPDATED=0
  fi
  if ! file_is "$TRIXIE_PREFS" "$(trixie_prefs_content)"; then
    log "pinning trixie to -1 in $TRIXIE_PREFS"
    write_file "$TRIXIE_PREFS" "$(trixie_prefs_content)"
  fi
}

install_packages() {
  [[ ${#MISSING_PACKAGES[@]} -eq 0 ]] && return 0
  apt_update_once
  log "apt-get install ${MISSING_PACKAGES[*]}"
  # Keep maintainer scripts from starting daemons (docker-registry ships one):
  # tests start their own registry. Only add a policy-rc.d if none exists.
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# temporary, CriShim scripts/deps.sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    added_policy=1
    # shellcheck disable=SC2064
    trap "rm -f '$policy'" EXIT
  fi
  apt-get "${APT_OPTS[@]}" install -y --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${MISSING_PACKAGES[@]}" >&2
  if [[ $added_policy -eq 1 ]]; then
    rm -f "$policy"
    trap - EXIT
  fi
  check_packages || die "still not installed after apt-get install: ${MISSING_PACKAGES[*]}"
}

fetch_busybox_deb() {
  apt_update_once
  mkdir -p "$DEB_DIR"
  rm -f "$DEB_DIR"/busybox_*.deb "$DEB_DIR/busybox.deb"
  log "apt-get download busybox -> $DEB_DIR (not installed)"
  # Candidate comes from bookworm (trixie is pinned to -1).
  (cd "$DEB_DIR" && apt-get "${APT_OPTS[@]}" download busybox >&2)
  local f found=""
  for f in "$DEB_DIR"/busybox_*.deb; do [[ -f $f ]] && found=$f; done
  [[ -n $found ]] || die "busybox .deb was not downloaded"
  [[ "$(dpkg-deb --field "$found" Package)" == busybox ]] || die "$found is not the busybox package"
  ln -sfn "$(basename "$found")" "$DEB_DIR/busybox.deb"
}

# Prints pkg=version (trixie, native arch) for criu and its whole dependency
# closure (Depends + Pre-Depends, recursively; no Recommends/Suggests).
criu_closure_specs() {
  local arch
  arch=$(dpkg --print-architecture)
  local -a closure
  mapfile -t closure < <(
    apt-cache -t trixie depends --recurse --no-recommends --no-suggests \
      --no-conflicts --no-breaks --no-replaces --no-enhances criu \
      | grep -E '^[a-z0-9][a-z0-9+.-]*$' | sort -u)
  [[ ${#closure[@]} -gt 0 ]] || die "apt-cache could not compute the dependency closure of criu (trixie)"
  # One madison call for all packages; keep the trixie version for our arch.
  local specs
  specs=$(apt-cache madison "${closure[@]}" | awk -F'|' -v arch="$arch" '
    { gsub(/^ +| +$/, "", $1); gsub(/^ +| +$/, "", $2) }
    $3 ~ (" trixie/main " arch " Packages") && !seen[$1]++ { print $1 "=" $2 }')
  local p
  for p in "${closure[@]}"; do
    grep -q "^$p=" <<<"$specs" || warn "closure package $p has no trixie/$arch version; skipped"
  done
  grep -q '^criu=' <<<"$specs" || die "criu not found in trixie (is $TRIXIE_SOURCES working?)"
  printf '%s\n' "$specs"
}

# Verify that BIN (run via the prefix loader, and directly when patched)
# resolves every shared library inside the prefix.
verify_libs_in_prefix() {
  local loader=$1 bin=$2; shift 2
  local out
  out=$("$loader" "$@" --list "$bin" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
  if grep -q 'not found' <<<"$out"; then
    printf '%s\n' "$out" >&2
    return 1
  fi
  # every "name => path (addr)" must resolve to a path inside the prefix
  local bad
  bad=$(awk -v p="$CRIU_PREFIX/" '$2 == "=>" && index($3, p) != 1 { print }' <<<"$out")
  if [[ -n $bad ]]; then
    printf 'outside the prefix:\n%s\n' "$bad" >&2
    return 1
  fi
  grep -q "=> $CRIU_PREFIX/.*libc.so.6" <<<"$out" || { printf '%s\n' "$out" >&2; return 1; }
}

build_criu_prefix() {
  apt_update_once
  local specs_text
  specs_text=$(criu_closure_specs)   # plain assignment: a die inside aborts the script
  local -a specs
  mapfile -t specs <<<"$specs_text"
  log "CRIU closure from trixie (${#specs[@]} packages): ${specs[*]}"

  rm -rf "$CRIU_DEB_DIR"
  mkdir -p "$CRIU_DEB_DIR"
  (cd "$CRIU_DEB_DIR" && apt-get "${APT_OPTS[@]}" download "${specs[@]}" >&2)

  log "unpacking into private prefix $CRIU_PREFIX"
  rm -rf "$CRIU_PREFIX"
  mkdir -p "$CRIU_PREFIX"
  local deb
  for deb in "$CRIU_DEB_DIR"/*.deb; do
    dpkg-deb -x "$deb" "$CRIU_PREFIX"
  done
  # Merged-/usr style convenience links (<prefix>/lib64/ld-linux-x86-64.so.2
  # etc.), only where the packages did not ship a real directory.
  local d
  for d in lib lib64 bin sbin; do
    [[ -e $CRIU_PREFIX/$d || ! -d $CRIU_PREFIX/usr/$d ]] || ln -s "usr/$d" "$CRIU_PREFIX/$d"
  done

  local loader libpath bin=$CRIU_PREFIX/usr/sbin/criu
  loader=$(loader_path) || die "no ld-linux-x86-64.so.2 in $CRIU_PREFIX (libc6 missing from the closure?)"
  libpath=$(lib_path)
  [[ -x $bin ]] || die "$bin missing after unpacking"

  case "$CRIU_MODE" in
    patchelf)
      # Point the binary at the prefix's loader and libraries. DT_RPATH (not
      # RUNPATH) so it also applies to the libraries' own dependencies.
      patchelf --set-interpreter "$loader" --force-rpath --set-rpath "$libpath" "$bin"
      verify_libs_in_prefix "$loader" "$bin" \
        || die "patched criu does not resolve all libraries inside $CRIU_PREFIX"
      # Direct execution (kernel loads PT_INTERP = prefix loader).
      local direct
      direct=$(LD_TRACE_LOADED_OBJECTS=1 "$bin" 2>&1) || die "patched criu does not execute: $direct"
      if grep -q 'not found' <<<"$direct" \
         || [[ -n $(awk -v p="$CRIU_PREFIX/" '$2 == "=>" && index($3, p) != 1' <<<"$direct") ]]; then
        die "patched criu loads libraries from outside $CRIU_PREFIX:"$'\n'"$direct"
      fi
      ;;
    ldso)
      verify_libs_in_prefix "$loader" "$bin" --library-path "$libpath" \
        || die "criu does not resolve all libraries inside $CRIU_PREFIX"
      ;;
    *) die "unknown CRISHIM_CRIU_MODE=$CRIU_MODE (patchelf|ldso)" ;;
  esac

  {
    stamp_first_line; echo
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "loader=$loader"
    echo "library_path=$libpath"
    printf 'deb=%s\n' "${specs[@]}"
  } >"$CRIU_STAMP.tmp"
  # The stamp is written by install_criu_wrapper's caller once all is in place.
}

install_criu_wrapper() {
  mkdir -p "$(dirname "$CRIU_WRAPPER")"
  write_file "$CRIU_WRAPPER" "$(wrapper_content)" 0755
  "$CRIU_WRAPPER" --version >/dev/null 2>&1 || die "$CRIU_WRAPPER --version failed"
}

# Runtime self-test (only after a (re)build): `criu check` and a real dump of a
# small process tree with --leave-running. Failures here are warnings: they
# depend on the kernel, not on this script.
criu_selftest() {
  local out rc=0
  out=$("$CRIU_WRAPPER" check 2>&1) || rc=$?
  if [[ $rc -eq 0 ]] && grep -q 'Looks good' <<<"$out"; then
    log "criu check: Looks good."
  else
    warn "criu check failed (rc=$rc): $out"
  fi

  local dir pid
  dir=$(mktemp -d /tmp/crishim-criu-selftest.XXXXXX)
  setsid sh -c 'while :; do sleep 1; done' </dev/null >/dev/null 2>&1 &
  pid=$!
  sleep 0.3
  rc=0
  timeout 120 "$CRIU_WRAPPER" dump -t "$pid" -D "$dir" --leave-running -o dump.log -v4 >/dev/null 2>&1 || rc=$?
  if [[ $rc -eq 0 ]] && kill -0 "$pid" 2>/dev/null && [[ -s $dir/pstree.img ]]; then
    log "criu dump --leave-running of a test process tree: OK"
  else
    warn "criu dump self-test failed (rc=$rc); log: $(tail -n 5 "$dir/dump.log" 2>/dev/null || true)"
  fi
  # the sh is a session leader; kill its whole session (sh + its sleep)
  # (braces + 2>/dev/null also hide bash's "Killed" job notice)
  { pkill -KILL -s "$pid" || kill -KILL "$pid" || true; wait "$pid" || true; } 2>/dev/null
  rm -rf "$dir"
}

summary() {
  local runc crun conmon criu
  runc=$(runc --version 2>/dev/null | awk 'NR==1 { print $3 }')
  crun=$(crun --version 2>/dev/null | awk 'NR==1 { print $3 }')
  conmon=$(conmon --version 2>/dev/null | awk 'NR==1 { print $3 }')
  criu=$("$CRIU_WRAPPER" --version 2>/dev/null | awk '/^Version:/ { print $2 }')
  echo "deps: ok — runc ${runc:-?}, crun ${crun:-?}, conmon ${conmon:-?}, criu ${criu:-?} ($CRIU_WRAPPER -> $CRIU_PREFIX, $CRIU_MODE)"
}

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
[[ $(id -u) -eq 0 ]] || die "must run as root"
case "$CRIU_MODE" in patchelf|ldso) ;; *) die "unknown CRISHIM_CRIU_MODE=$CRIU_MODE (patchelf|ldso)" ;; esac
if [[ -r /etc/os-release ]]; then
  # shellcheck disable=SC1091
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [[ $codename == bookworm ]] || warn "written for Debian 12 (bookworm), this is '${codename:-unknown}'"
fi

pkgs_ok=0; bb_ok=0; apt_ok=0; prefix_ok=0; wrapper_ok=0
if [[ $FORCE != 1 ]]; then
  check_packages && pkgs_ok=1
  busybox_deb_ok && bb_ok=1
  trixie_apt_ok && apt_ok=1
  criu_prefix_ok && prefix_ok=1
  [[ $prefix_ok -eq 1 ]] && criu_wrapper_ok && wrapper_ok=1
else
  check_packages || true
  MISSING_PACKAGES=("${APT_PACKAGES[@]}")
fi

if [[ $pkgs_ok$bb_ok$apt_ok$prefix_ok$wrapper_ok == 11111 ]]; then
  summary
  exit 0
fi

setup_trixie_apt
[[ $pkgs_ok -eq 1 ]] || install_packages
[[ $bb_ok -eq 1 ]] || fetch_busybox_deb
if [[ $prefix_ok -eq 0 ]]; then
  rm -f "$CRIU_STAMP"
  build_criu_prefix
  install_criu_wrapper
  mv -f "$CRIU_STAMP.tmp" "$CRIU_STAMP"
  criu_selftest
elif [[ $wrapper_ok -eq 0 ]]; then
  install_criu_wrapper
fi
summary
