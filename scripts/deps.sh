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
#   3. CRIU 4.2.x from Debian forky (testing). Debian 12's CRIU 3.17 fails on
#      recent kernels (vDSO error), and trixie's CRIU 4.1.1 cannot dump a socket
#      on Linux >= 6.16 ("sockets: Can't get 1:16 opt", criu#2705, fixed in
#      CRIU 4.2). Forky (like trixie for step 4) is added as an apt source
#      pinned to -1, so nothing from it is ever installed by apt by default. The
#      forky criu .deb and the .debs of its whole shared-library dependency
#      closure (including forky's libc6 and ld-linux loader) are unpacked with
#      dpkg-deb -x into a private prefix (/opt/crishim/criu). The prefix's criu binary gets its ELF
#      interpreter and RPATH rewritten (patchelf) to point into the prefix, so it
#      never touches the system libc and /proc/self/exe is the real criu binary.
#      /usr/local/bin/criu is a tiny wrapper that sets CRIU_FAULT=130 (hardware
#      breakpoints do not fire in our VMs; without it a dump hangs) and execs it.
#   4. A CRIU-capable crun from Debian 13, built the same way into a second
#      private prefix (/opt/crishim/crun). Debian 12's crun 1.8.1 is built
#      without CRIU (`crun --version` lacks +CRIU), so `crun checkpoint` cannot
#      work with it; /usr/bin/crun is left alone. Trixie's crun dlopen()s
#      libcriu.so.2 (libcriu2 is only a Recommends), so the closure is computed
#      from crun + libcriu2, pruning libcriu2's dependency on the criu package
#      (the criu binary is the one from step 3: libcriu only speaks CRIU's
#      stable RPC protocol to `criu swrk`, so trixie's libcriu drives forky's
#      CRIU). The entry point for runtime
#      handlers is /opt/crishim/crun/bin/crun, a tiny wrapper that puts
#      /usr/local/bin first in PATH (libcriu execs `criu swrk` from PATH, i.e.
#      the step-3 wrapper, which sets CRIU_FAULT) and execs the patched crun.
#   5. runc 1.3.x from Debian forky, built the same way into a third private
#      prefix (/opt/crishim/runc). Debian 12's runc 1.1.5 (and trixie's 1.1.15)
#      cannot idmap mounts, so user-namespaced pods only ran on crun; runc >= 1.2
#      can. Its entry point /opt/crishim/runc/bin/runc is the default runc
#      handler's path when present; it puts the criu wrapper first in PATH (runc
#      runs `criu swrk` from PATH). /usr/bin/runc is left alone.
#   6. checkpointctl from Debian 13 with trixie's libc6 in its own prefix
#      (/opt/crishim/checkpointctl, linked from /usr/local/bin): a test tool.
#
# Environment knobs (all optional):
#   CRISHIM_CRIU_PREFIX  private CRIU prefix            (default /opt/crishim/criu)
#   CRISHIM_CRIU_MODE    patchelf | ldso                (default patchelf; ldso
#                        runs criu through the prefix's loader with --library-path)
#   CRISHIM_CRUN_PREFIX  private crun prefix            (default /opt/crishim/crun;
#                        always patchelf: crun re-executes /proc/self/exe)
#   CRISHIM_RUNC_PREFIX  private runc prefix            (default /opt/crishim/runc)
#   CRISHIM_DEPS_FORCE=1 redo every step (re-download + rebuild both prefixes)
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
  # static helpers (pause, nnp) of the critest stand-in images
  gcc libc6-dev
  # needed to build the private CRIU / crun prefixes
  patchelf
)

DEB_DIR=/var/cache/crishim/debs
CRIU_PREFIX=${CRISHIM_CRIU_PREFIX:-/opt/crishim/criu}
CRIU_MODE=${CRISHIM_CRIU_MODE:-patchelf}
CRIU_WRAPPER=/usr/local/bin/criu
CRIU_FAULT_DEFAULT=130
CRUN_PREFIX=${CRISHIM_CRUN_PREFIX:-/opt/crishim/crun}
CRUN_ENTRY=$CRUN_PREFIX/bin/crun
RUNC_PREFIX=${CRISHIM_RUNC_PREFIX:-/opt/crishim/runc}
RUNC_ENTRY=$RUNC_PREFIX/bin/runc

# Private prefixes built from newer Debian .debs, in build order (crun's entry
# point relies on the criu wrapper). Per prefix:
#   DIR      the prefix                  DEBS     where its .debs are downloaded
#   SUITE    the Debian suite (in SUITES) its closure is taken from
#   MODE     patchelf | ldso             REV      bump when the way it is built
#                                                 changes: forces a rebuild
#   ROOTS    packages whose Depends/Pre-Depends closure is unpacked
#   PRUNE    packages left out of the closure (and not recursed into)
#   BIN      the binary (relative to DIR) whose interpreter/RPATH is patched
#   DLOPEN   sonames the binary dlopen()s: verified to resolve inside DIR too
#   WRAPPER  the wrapper script to install (its entry point)
#   ENV      function printing the wrapper's environment preamble
#   CHECK    regex `WRAPPER --version` must match (checked on every run)
#   SELFTEST function run after a (re)build (optional)
PREFIXES=(criu crun runc)
declare -A PFX_DIR=(     [criu]=$CRIU_PREFIX                [crun]=$CRUN_PREFIX  [runc]=$RUNC_PREFIX )
declare -A PFX_SUITE=(   [criu]=forky                       [crun]=trixie  [runc]=forky )
declare -A PFX_DEBS=(    [criu]=$DEB_DIR/criu-forky         [crun]=$DEB_DIR/crun-trixie  [runc]=$DEB_DIR/runc-forky )
declare -A PFX_MODE=(    [criu]=$CRIU_MODE                  [crun]=patchelf  [runc]=patchelf )
declare -A PFX_REV=(     [criu]=2                           [crun]=1  [runc]=1 )
declare -A PFX_ROOTS=(   [criu]=criu                        [crun]="crun libcriu2"  [runc]=runc )
declare -A PFX_PRUNE=(   [criu]=""                          [crun]=criu  [runc]=criu )
declare -A PFX_BIN=(     [criu]=usr/sbin/criu               [crun]=usr/bin/crun  [runc]=usr/sbin/runc )
declare -A PFX_DLOPEN=(  [criu]=""                          [crun]=libcriu.so.2  [runc]="" )
declare -A PFX_WRAPPER=( [criu]=$CRIU_WRAPPER               [crun]=$CRUN_ENTRY  [runc]=$RUNC_ENTRY )
declare -A PFX_ENV=(     [criu]=criu_wrapper_env            [crun]=criu_in_path_wrapper_env  [runc]=criu_in_path_wrapper_env )
declare -A PFX_CHECK=(   [criu]='^Version: '                [crun]='[+]CRIU'  [runc]='^runc version 1[.]([2-9]|[1-9][0-9])[.]' )
declare -A PFX_SELFTEST=([criu]=criu_selftest               [crun]=""  [runc]="" )

# Debian suites added as apt sources (pinned to -1) for the prefixes, with
# what they are used for and whether apt checks their Release file's
# Valid-Until. Forky (testing) is not signed for long and its mirror copy here
# can be past it; its packages are fetched by exact version anyway.
SUITES=(trixie forky)
declare -A SUITE_NAME=(        [trixie]="Debian 13"     [forky]="Debian forky (testing)" )
declare -A SUITE_USE=(         [trixie]="crun"          [forky]="CRIU and runc" )
declare -A SUITE_VALID_UNTIL=( [trixie]=yes             [forky]=no )
suite_sources_path() { printf '/etc/apt/sources.list.d/crishim-%s.sources' "$1"; }
suite_prefs_path()   { printf '/etc/apt/preferences.d/crishim-%s' "$1"; }
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
suite_sources_content() {
  local suite=$1
  cat <<EOF
# Added by CriShim scripts/deps.sh: ${SUITE_NAME[$suite]} is used ONLY to fetch
# ${SUITE_USE[$suite]} and its library closure into a private prefix under /opt/crishim.
# Pinned to -1 in $(suite_prefs_path "$suite"),
# so apt never installs from it.
Types: deb
URIs: http://deb.debian.org/debian
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  [[ ${SUITE_VALID_UNTIL[$suite]} == yes ]] || echo "Check-Valid-Until: no"
}

suite_prefs_content() {
  cat <<EOF
# Added by CriShim scripts/deps.sh: never install anything from ${SUITE_NAME[$1]} by
# default (packages are only fetched with \`apt-get download pkg=version\`).
Package: *
Pin: release n=$1
Pin-Priority: -1
EOF
}

stamp_path() { printf '%s/.crishim-stamp' "${PFX_DIR[$1]}"; }
stamp_first_line() {
  printf 'crishim-%s rev=%s mode=%s prefix=%s' "$1" "${PFX_REV[$1]}" "${PFX_MODE[$1]}" "${PFX_DIR[$1]}"
}

criu_wrapper_env() {
  cat <<EOF
# CRIU_FAULT=130 disables hardware breakpoints, which do not fire in our VMs
# (without it a dump hangs); an explicitly set CRIU_FAULT is honoured.
CRIU_FAULT="\${CRIU_FAULT:-$CRIU_FAULT_DEFAULT}"
export CRIU_FAULT
EOF
}

criu_in_path_wrapper_env() {
  local criu_dir=${CRIU_WRAPPER%/*}
  cat <<EOF
# crun (through libcriu) and runc run \`criu swrk\` found in PATH: put the
# CriShim criu wrapper ($CRIU_WRAPPER, sets CRIU_FAULT) first.
PATH="$criu_dir:\${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}"
export PATH
EOF
}

# wrapper_content NAME: the wrapper installed at PFX_WRAPPER[NAME] (needs the
# prefix to exist in ldso mode).
wrapper_content() {
  local name=$1 exec_line
  local prefix=${PFX_DIR[$name]} mode=${PFX_MODE[$name]} bin=${PFX_DIR[$name]}/${PFX_BIN[$name]}
  case "$mode" in
    patchelf) exec_line="exec $bin \"\$@\"" ;;
    ldso)     exec_line="exec $(loader_path "$prefix") --library-path $(lib_path "$prefix") $bin \"\$@\"" ;;
  esac
  local label=$name
  [[ $name == criu ]] && label=CRIU
  cat <<EOF
#!/bin/sh
# Installed by CriShim scripts/deps.sh (mode: $mode). Runs ${SUITE_NAME[${PFX_SUITE[$name]}]}'s $label
# from the private prefix $prefix, fully isolated from the system libc.
$("${PFX_ENV[$name]}")
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
# lib_path PREFIX: library directories inside PREFIX, in search order (only
# existing ones).
lib_path() {
  local prefix=$1 d real out=() seen=" "
  for d in usr/lib/x86_64-linux-gnu lib/x86_64-linux-gnu usr/lib lib; do
    [[ -d $prefix/$d ]] || continue
    # skip directories reached through the lib -> usr/lib convenience link
    real=$(readlink -f "$prefix/$d")
    [[ $seen == *" $real "* ]] && continue
    seen+="$real "
    out+=("$prefix/$d")
  done
  local IFS=:
  printf '%s' "${out[*]}"
}

# loader_path PREFIX: PREFIX's own dynamic loader (a regular file, not a
# symlink, so it can never point back at the system loader).
loader_path() {
  local c
  for c in usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 lib/x86_64-linux-gnu/ld-linux-x86-64.so.2; do
    if [[ -f $1/$c && ! -L $1/$c ]]; then
      printf '%s' "$1/$c"
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
  local -A installed=()
  local p
  # (one dpkg-query, no per-package fork: this is on the fast path)
  while read -r p; do installed[$p]=1; done < <(
    dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${APT_PACKAGES[@]}" 2>/dev/null \
      | awk '$2 == "ii" { print $1 }' || true)
  MISSING_PACKAGES=()
  for p in "${APT_PACKAGES[@]}"; do
    [[ -n ${installed[$p]:-} ]] || MISSING_PACKAGES+=("$p")
  done
  [[ ${#MISSING_PACKAGES[@]} -eq 0 ]]
}

busybox_deb_ok() {
  [[ -f $DEB_DIR/busybox.deb ]] || return 1
  local f
  for f in "$DEB_DIR"/busybox_*.deb; do [[ -f $f ]] && return 0; done
  return 1
}

suites_apt_ok() {
  local suite
  for suite in "${SUITES[@]}"; do
    file_is "$(suite_sources_path "$suite")" "$(suite_sources_content "$suite")" \
      && file_is "$(suite_prefs_path "$suite")" "$(suite_prefs_content "$suite")" || return 1
  done
}

# prefix_ok NAME: the prefix was completely built the current way.
prefix_ok() {
  local stamp
  stamp=$(stamp_path "$1")
  [[ -f $stamp ]] && [[ "$(head -n1 "$stamp")" == "$(stamp_first_line "$1")" ]] \
    && loader_path "${PFX_DIR[$1]}" >/dev/null
}

# wrapper_ok NAME: the wrapper is current and `WRAPPER --version` matches CHECK.
wrapper_ok() {
  local w=${PFX_WRAPPER[$1]}
  file_is "$w" "$(wrapper_content "$1")" && [[ -x $w ]] \
    && "$w" --version 2>/dev/null | grep -qE -- "${PFX_CHECK[$1]}"
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

setup_suites_apt() {
  local suite sources prefs
  for suite in "${SUITES[@]}"; do
    sources=$(suite_sources_path "$suite") prefs=$(suite_prefs_path "$suite")
    if ! file_is "$sources" "$(suite_sources_content "$suite")"; then
      log "adding ${SUITE_NAME[$suite]} ($suite) apt source $sources"
      write_file "$sources" "$(suite_sources_content "$suite")"
      APT_UPDATED=0
    fi
    if ! file_is "$prefs" "$(suite_prefs_content "$suite")"; then
      log "pinning $suite to -1 in $prefs"
      write_file "$prefs" "$(suite_prefs_content "$suite")"
    fi
  done
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
  # Candidate comes from bookworm (the added suites are pinned to -1).
  (cd "$DEB_DIR" && apt-get "${APT_OPTS[@]}" download busybox >&2)
  local f found=""
  for f in "$DEB_DIR"/busybox_*.deb; do [[ -f $f ]] && found=$f; done
  [[ -n $found ]] || die "busybox .deb was not downloaded"
  [[ "$(dpkg-deb --field "$found" Package)" == busybox ]] || die "$found is not the busybox package"
  ln -sfn "$(basename "$found")" "$DEB_DIR/busybox.deb"
}

# closure_packages SUITE "PRUNE..." ROOT...: package names of the SUITE
# dependency closure of the ROOTs (Depends + Pre-Depends, recursively, all alternatives
# and providers of virtual packages; no Recommends/Suggests). PRUNE packages
# are left out and not recursed into. One `apt-cache depends --recurse` call
# (apt-cache rebuilds its cache on every call here, several seconds each); its
# output is read as a graph and walked from the ROOTs in awk.
closure_packages() {
  local suite=$1 prune=$2; shift 2
  apt-cache -t "$suite" depends --recurse --no-recommends --no-suggests \
      --no-conflicts --no-breaks --no-replaces --no-enhances "$@" \
    | awk -v roots="$*" -v prune="$prune" '
        /^[^ ]/                        { node = $1; next }          # "pkg" / "<virtual>"
        $1 ~ /^[|]?(Pre)?Depends:$/    { if ($2 !~ /^</) dep[node] = dep[node] " " $2; next }
        /^    [^ ]/                    { dep[node] = dep[node] " " $1 }  # provider of a virtual dep
        END {
          np = split(prune, pr, " "); for (i = 1; i <= np; i++) skip[pr[i]] = 1
          n = split(roots, q, " ");   for (i = 1; i <= n; i++) seen[q[i]] = 1
          for (h = 1; h <= n; h++) {
            m = split(dep[q[h]], d, " ")
            for (j = 1; j <= m; j++)
              if (!(d[j] in seen) && !(d[j] in skip)) { seen[d[j]] = 1; q[++n] = d[j] }
          }
          for (p in seen) print p
        }' \
    | grep -E '^[a-z0-9][a-z0-9+.-]*$' | sort -u
}

# closure_specs NAME: prints pkg=version (PFX_SUITE[NAME], native arch) for
# the closure of PFX_ROOTS[NAME] minus PFX_PRUNE[NAME].
closure_specs() {
  local name=$1 suite=${PFX_SUITE[$1]} arch
  arch=$(dpkg --print-architecture)
  local -a roots closure
  read -ra roots <<<"${PFX_ROOTS[$name]}"
  mapfile -t closure < <(closure_packages "$suite" "${PFX_PRUNE[$name]}" "${roots[@]}")
  [[ ${#closure[@]} -gt 0 ]] || die "apt-cache could not compute the dependency closure of ${roots[*]} ($suite)"
  # One madison call for all packages; keep the $suite version for our arch.
  local specs
  specs=$(apt-cache madison "${closure[@]}" | awk -F'|' -v arch="$arch" -v suite="$suite" '
    { gsub(/^ +| +$/, "", $1); gsub(/^ +| +$/, "", $2) }
    $3 ~ (" " suite "/main " arch " Packages") && !seen[$1]++ { print $1 "=" $2 }')
  local p
  for p in "${closure[@]}"; do
    grep -q "^$p=" <<<"$specs" || warn "closure package $p has no $suite/$arch version; skipped"
  done
  for p in "${roots[@]}"; do
    grep -q "^$p=" <<<"$specs" || die "$p not found in $suite (is $(suite_sources_path "$suite") working?)"
  done
  printf '%s\n' "$specs"
}

# verify_libs_in_prefix PREFIX LOADER BIN [LOADER-ARGS...]: BIN (an executable
# or a shared library), listed by PREFIX's loader, resolves every shared
# library inside PREFIX.
verify_libs_in_prefix() {
  local prefix=$1 loader=$2 bin=$3; shift 3
  local out
  out=$("$loader" "$@" --list "$bin" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
  if grep -q 'not found' <<<"$out"; then
    printf '%s\n' "$out" >&2
    return 1
  fi
  # every "name => path (addr)" must resolve to a path inside the prefix
  local bad
  bad=$(awk -v p="$prefix/" '$2 == "=>" && index($3, p) != 1 { print }' <<<"$out")
  if [[ -n $bad ]]; then
    printf 'outside the prefix:\n%s\n' "$bad" >&2
    return 1
  fi
  grep -q "=> $prefix/.*libc.so.6" <<<"$out" || { printf '%s\n' "$out" >&2; return 1; }
}

# build_prefix NAME: download the closure .debs, unpack them into a fresh
# PFX_DIR[NAME], patch/verify PFX_BIN[NAME]; writes the stamp to STAMP.tmp
# (renamed into place by finish_prefix once the wrapper is installed).
build_prefix() {
  local name=$1
  local prefix=${PFX_DIR[$name]} debs=${PFX_DEBS[$name]} mode=${PFX_MODE[$name]}
  apt_update_once
  local specs_text
  specs_text=$(closure_specs "$name")   # plain assignment: a die inside aborts the script
  local -a specs
  mapfile -t specs <<<"$specs_text"
  log "$name closure from ${PFX_SUITE[$name]} (${#specs[@]} packages): ${specs[*]}"

  rm -rf "$debs"
  mkdir -p "$debs"
  (cd "$debs" && apt-get "${APT_OPTS[@]}" download "${specs[@]}" >&2)

  log "unpacking into private prefix $prefix"
  rm -rf "$prefix"
  mkdir -p "$prefix"
  local deb
  for deb in "$debs"/*.deb; do
    dpkg-deb -x "$deb" "$prefix"
  done
  # Merged-/usr style convenience links (<prefix>/lib64/ld-linux-x86-64.so.2
  # etc.), only where the packages did not ship a real directory. Not bin/sbin:
  # <prefix>/bin may hold a wrapper.
  local d
  for d in lib lib64; do
    [[ -e $prefix/$d || ! -d $prefix/usr/$d ]] || ln -s "usr/$d" "$prefix/$d"
  done

  local loader libpath bin=$prefix/${PFX_BIN[$name]}
  loader=$(loader_path "$prefix") || die "no ld-linux-x86-64.so.2 in $prefix (libc6 missing from the closure?)"
  libpath=$(lib_path "$prefix")
  [[ -x $bin ]] || die "$bin missing after unpacking"

  case "$mode" in
    patchelf)
      # Point the binary at the prefix's loader and libraries. DT_RPATH (not
      # RUNPATH) so it also applies to the libraries' own dependencies and to
      # libraries the binary dlopen()s.
      patchelf --set-interpreter "$loader" --force-rpath --set-rpath "$libpath" "$bin"
      verify_libs_in_prefix "$prefix" "$loader" "$bin" \
        || die "patched $name does not resolve all libraries inside $prefix"
      # Direct execution (kernel loads PT_INTERP = prefix loader).
      local direct
      direct=$(LD_TRACE_LOADED_OBJECTS=1 "$bin" 2>&1) || die "patched $name does not execute: $direct"
      if grep -q 'not found' <<<"$direct" \
         || [[ -n $(awk -v p="$prefix/" '$2 == "=>" && index($3, p) != 1' <<<"$direct") ]]; then
        die "patched $name loads libraries from outside $prefix:"$'\n'"$direct"
      fi
      ;;
    ldso)
      verify_libs_in_prefix "$prefix" "$loader" "$bin" --library-path "$libpath" \
        || die "$name does not resolve all libraries inside $prefix"
      ;;
    *) die "unknown mode $mode for $name (patchelf|ldso)" ;;
  esac

  # Libraries the binary dlopen()s: present in the prefix, with all their
  # dependencies inside it (same search path as the RPATH set above).
  local soname lib
  for soname in ${PFX_DLOPEN[$name]}; do
    lib=""
    for d in ${libpath//:/ }; do
      [[ -e $d/$soname ]] && { lib=$d/$soname; break; }
    done
    [[ -n $lib ]] || die "$soname (dlopen()ed by $name) missing from $prefix"
    verify_libs_in_prefix "$prefix" "$loader" "$lib" --library-path "$libpath" \
      || die "$soname does not resolve all libraries inside $prefix"
  done

  {
    stamp_first_line "$name"; echo
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "suite=${PFX_SUITE[$name]}"
    echo "loader=$loader"
    echo "library_path=$libpath"
    printf 'deb=%s\n' "${specs[@]}"
  } >"$(stamp_path "$name").tmp"
  # The stamp is put in place by finish_prefix once the wrapper is installed.
}

install_wrapper() {
  local name=$1 w=${PFX_WRAPPER[$1]}
  mkdir -p "$(dirname "$w")"
  write_file "$w" "$(wrapper_content "$name")" 0755
  wrapper_ok "$name" || die "$w --version failed or does not match '${PFX_CHECK[$name]}': $("$w" --version 2>&1 | head -n 3)"
}

# finish_prefix NAME: after build_prefix: wrapper, stamp, self-test.
finish_prefix() {
  local stamp
  stamp=$(stamp_path "$1")
  install_wrapper "$1"
  mv -f "$stamp.tmp" "$stamp"
  [[ -z ${PFX_SELFTEST[$1]} ]] || "${PFX_SELFTEST[$1]}"
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

# checkpointctl from Debian 13 reads checkpoint archives the way the kubelet's users do; the
# integration tests check CriShim's archives with it. It needs trixie's glibc (2.38), so it gets a
# private prefix of its own: the binary and trixie's libc6, with its loader and RPATH patched in.
CHECKPOINTCTL_DIR=/opt/crishim/checkpointctl
checkpointctl_ok() { [[ -x /usr/local/bin/checkpointctl ]] && /usr/local/bin/checkpointctl --help >/dev/null 2>&1; }
install_checkpointctl() {
  local dir=$DEB_DIR/checkpointctl-trixie deb
  rm -rf "$dir" "$CHECKPOINTCTL_DIR"
  mkdir -p "$dir" "$CHECKPOINTCTL_DIR"
  # make deps installs everything the tests use: a missing checkpointctl stops it, rather than skip its test.
  (cd "$dir" && apt-get download -q -t trixie checkpointctl libc6 >/dev/null) \
    || die "could not download checkpointctl and libc6 from Debian 13 (trixie's apt source, set up above)"
  for deb in "$dir"/*.deb; do dpkg-deb -x "$deb" "$CHECKPOINTCTL_DIR"; done
  patchelf --set-interpreter "$CHECKPOINTCTL_DIR/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \
    --set-rpath "$CHECKPOINTCTL_DIR/usr/lib/x86_64-linux-gnu" "$CHECKPOINTCTL_DIR/usr/bin/checkpointctl"
  ln -sfn "$CHECKPOINTCTL_DIR/usr/bin/checkpointctl" /usr/local/bin/checkpointctl
  if checkpointctl_ok; then
    log "checkpointctl $(dpkg-deb -f "$dir"/checkpointctl_*.deb Version) from Debian 13 in $CHECKPOINTCTL_DIR"
  else
    rm -f /usr/local/bin/checkpointctl
    die "checkpointctl from Debian 13 does not run here: $("$CHECKPOINTCTL_DIR/usr/bin/checkpointctl" --help 2>&1 | tail -n 3)"
  fi
}

summary() {
  local runc crun conmon criu pcrun prunc
  runc=$(runc --version 2>/dev/null | awk 'NR==1 { print $3 }')
  crun=$(crun --version 2>/dev/null | awk 'NR==1 { print $3 }')
  conmon=$(conmon --version 2>/dev/null | awk 'NR==1 { print $3 }')
  criu=$("$CRIU_WRAPPER" --version 2>/dev/null | awk '/^Version:/ { print $2 }')
  pcrun=$("$CRUN_ENTRY" --version 2>/dev/null | awk 'NR==1 { print $3 }')
  prunc=$("$RUNC_ENTRY" --version 2>/dev/null | awk 'NR==1 { print $3 }')
  echo "deps: ok — runc ${runc:-?}, crun ${crun:-?}, conmon ${conmon:-?}, criu ${criu:-?} ($CRIU_WRAPPER -> $CRIU_PREFIX, $CRIU_MODE), crun+CRIU ${pcrun:-?} ($CRUN_ENTRY), runc+idmap ${prunc:-?} ($RUNC_ENTRY)"
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

pkgs_ok=0; bb_ok=0; apt_ok=0
declare -A pfx_ok=() wrap_ok=()
all_pfx_ok=1
for p in "${PREFIXES[@]}"; do
  pfx_ok[$p]=0; wrap_ok[$p]=0
  if [[ $FORCE != 1 ]]; then
    prefix_ok "$p" && pfx_ok[$p]=1
    [[ ${pfx_ok[$p]} -eq 1 ]] && wrapper_ok "$p" && wrap_ok[$p]=1
  fi
  [[ ${pfx_ok[$p]}${wrap_ok[$p]} == 11 ]] || all_pfx_ok=0
done
if [[ $FORCE != 1 ]]; then
  check_packages && pkgs_ok=1
  busybox_deb_ok && bb_ok=1
  suites_apt_ok && apt_ok=1
else
  check_packages || true
  MISSING_PACKAGES=("${APT_PACKAGES[@]}")
fi

ctl_ok=0
[[ $FORCE != 1 ]] && checkpointctl_ok && ctl_ok=1
if [[ $pkgs_ok$bb_ok$apt_ok$all_pfx_ok$ctl_ok == 11111 ]]; then
  summary
  exit 0
fi

setup_suites_apt
[[ $pkgs_ok -eq 1 ]] || install_packages
[[ $bb_ok -eq 1 ]] || fetch_busybox_deb
for p in "${PREFIXES[@]}"; do
  if [[ ${pfx_ok[$p]} -eq 0 ]]; then
    rm -f "$(stamp_path "$p")"
    build_prefix "$p"
    finish_prefix "$p"
  elif [[ ${wrap_ok[$p]} -eq 0 ]]; then
    install_wrapper "$p"
  fi
done
[[ $ctl_ok -eq 1 ]] || install_checkpointctl
summary
