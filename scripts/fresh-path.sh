#!/usr/bin/env bash
# Runs a command as it would run on a fresh machine: every command of the
# Debian packages that the project's scripts and xtask install is hidden from
# PATH until one of them installs that package. A step that runs buildah,
# containerd, qemu, ... before the step that installs it then fails here with
# "command not found" even on a machine that already has the package (where it
# would otherwise pass and hide the bug until the next fresh machine).
#
#   scripts/fresh-path.sh COMMAND [ARG...]     (.ci/run runs itself under it)
#
# How: the directories Debian installs commands into (/usr/bin, /usr/sbin,
# /bin, /sbin) are replaced on PATH by a scratch directory of symlinks to their
# commands, minus those of HIDDEN packages not installed yet "in this run".
# Wrappers stand in for
#   dpkg-query  a hidden package not installed yet in this run is reported
#               as not installed (lib.sh's install_debian_packages asks it);
#   apt-get     the real apt-get runs; then the packages a plain
#               `apt-get install` named (not mmdebstrap's, which sets
#               APT_CONFIG for its chroot) count as installed and their
#               commands (and whatever else the install added) appear.
# A package installed through apt-get or asked about through dpkg-query that
# is neither on HIDDEN nor Essential fails the run at the end, so the list
# cannot fall behind the scripts.
#
# Not covered: commands run by absolute path (/usr/bin/X), which PATH does not
# reach; Essential packages (coreutils, util-linux, ...), present on every
# Debian system.
set -euo pipefail

# What the project installs: scripts/setup.sh, runtime.sh, observability.sh,
# image.sh, xtask's vm-test, node-test (ensure_host_tools) and bench.
HIDDEN=(
    gcc protobuf-compiler bpftool libc6-dev curl ca-certificates
    containerd runc busybox-static
    prometheus python3 python3-venv
    buildah mmdebstrap
    qemu-system-x86 cpio file kmod
    bpftrace
)
SYSTEM_DIRS=(/usr/sbin /usr/bin /sbin /bin)

die() {
    echo "fresh-path: $*" >&2
    exit 2
}

# --- wrappers (run as `fresh-path.sh _dpkg-query ...` / `_apt-get ...`) ---

is_hidden() { grep -qxF -- "$1" "$FRESH_PATH_STATE/hidden"; }
is_installed_here() { grep -qxF -- "$1" "$FRESH_PATH_STATE/installed"; }
is_essential() { [[ $(/usr/bin/dpkg-query -W -f='${Essential}' "$1" 2>/dev/null) == yes ]]; }

# Remembers a package the project handles that HIDDEN does not list.
check_listed() {
    local pkg=$1
    is_hidden "$pkg" || is_essential "$pkg" || echo "$pkg" >>"$FRESH_PATH_STATE/unlisted"
}

# Adds to the scratch PATH directory every command of the system directories
# that is not there yet, except the hidden packages' not installed yet in this
# run. Only ever adds (what is hidden only shrinks), so the tools this uses
# stay on PATH meanwhile.
sync_bin() {
    local bin=$FRESH_PATH_STATE/bin dir path name pkg
    local -A masked=()
    while read -r pkg; do
        is_installed_here "$pkg" && continue
        while read -r path; do masked[${path##*/}]=1; done < <(
            /usr/bin/dpkg-query -L "$pkg" 2>/dev/null | grep -E '^/(usr/)?s?bin/[^/]+$')
    done <"$FRESH_PATH_STATE/hidden"
    printf '%s\n' "${!masked[@]}" | grep . >"$FRESH_PATH_STATE/masked" || true
    for dir in "${SYSTEM_DIRS[@]}"; do
        for path in "$dir"/*; do
            name=${path##*/}
            # (the apt-get and dpkg-query wrappers are there already)
            [[ -z ${masked[$name]:-} && -x $path && ! -d $path && ! -e $bin/$name ]] || continue
            ln -s "$path" "$bin/$name"
        done
    done
}

# The packages an apt-get command line installs (after `install`, options skipped).
install_targets() {
    local subcommand="" skip=false arg
    for arg in "$@"; do
        if $skip; then skip=false; continue; fi
        case $arg in
        -o | -c | -t | --option | --config-file | --target-release) skip=true ;;
        -*) ;;
        *)
            if [[ -z $subcommand ]]; then subcommand=$arg
            elif [[ $subcommand == install ]]; then arg=${arg%%=*}; echo "${arg%%:*}"
            fi ;;
        esac
    done
}

wrap_apt_get() {
    local rc=0 pkg
    # apt, dpkg and the maintainer scripts see the real PATH
    PATH=$FRESH_PATH_ORIGINAL /usr/bin/apt-get "$@" || rc=$?
    if [[ -z ${APT_CONFIG:-} ]] && ((rc == 0)); then
        for pkg in $(install_targets "$@"); do
            check_listed "$pkg"
            echo "$pkg" >>"$FRESH_PATH_STATE/installed"
        done
        (flock 8; sync_bin) 8>"$FRESH_PATH_STATE/.lock"
    fi
    return "$rc"
}

wrap_dpkg_query() {
    local arg pkgs=() admindir=false
    for arg in "$@"; do
        case $arg in
        --admindir*) admindir=true ;;
        -*) ;;
        *) pkgs+=("$arg") ;;
        esac
    done
    # `-W -f FORMAT PKG` (lib.sh's question) about one package on this system
    if ! $admindir && [[ ${1:-} == -W* ]] && ((${#pkgs[@]} >= 1)); then
        local pkg=${pkgs[-1]}
        if is_hidden "$pkg" && ! is_installed_here "$pkg"; then
            echo "dpkg-query: no packages found matching $pkg" >&2
            return 1
        fi
        # (`-f '${Status}'` as two words leaves the format among the names)
        [[ $pkg == *'$'* ]] || check_listed "$pkg"
    fi
    exec /usr/bin/dpkg-query "$@"
}

case ${1:-} in
_apt-get) shift; wrap_apt_get "$@"; exit ;;
_dpkg-query) shift; wrap_dpkg_query "$@"; exit ;;
"" | -h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

# --- the run ---
self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
FRESH_PATH_STATE=$(mktemp -d "${TMPDIR:-/tmp}/oomtrace-fresh-path.XXXXXX")
# apt's methods run as the _apt user: they must reach the directory's tools
chmod 0755 "$FRESH_PATH_STATE"
export FRESH_PATH_STATE FRESH_PATH_ORIGINAL=$PATH
trap 'rm -rf "$FRESH_PATH_STATE"' EXIT
mkdir -p "$FRESH_PATH_STATE/bin"
printf '%s\n' "${HIDDEN[@]}" >"$FRESH_PATH_STATE/hidden"
: >"$FRESH_PATH_STATE/installed"
: >"$FRESH_PATH_STATE/unlisted"
for tool in apt-get dpkg-query; do
    printf '#!/bin/sh\nexec %q _%s "$@"\n' "$self" "$tool" >"$FRESH_PATH_STATE/bin/$tool"
    chmod 0755 "$FRESH_PATH_STATE/bin/$tool"
done
sync_bin

# PATH with the system directories replaced by the scratch one (in the place
# of the first of them), everything else (cargo, pyenv, /usr/local) kept.
new_path="" placed=false
IFS=: read -r -a entries <<<"$PATH"
for entry in "${entries[@]}"; do
    is_system=false
    for dir in "${SYSTEM_DIRS[@]}"; do [[ $entry == "$dir" ]] && is_system=true; done
    if $is_system; then
        $placed && continue
        entry=$FRESH_PATH_STATE/bin placed=true
    fi
    new_path=${new_path:+$new_path:}$entry
done
$placed || new_path=$new_path:$FRESH_PATH_STATE/bin
hidden_now=$(grep -c . "$FRESH_PATH_STATE/masked" || true)
echo "fresh-path: $hidden_now commands of ${#HIDDEN[@]} packages hidden until they are installed" >&2

rc=0
PATH=$new_path "$@" || rc=$?
if [[ -s $FRESH_PATH_STATE/unlisted ]]; then
    echo "fresh-path: the run installed or asked about packages scripts/fresh-path.sh does not hide:" \
        "$(sort -u "$FRESH_PATH_STATE/unlisted" | tr '\n' ' ')- add them to HIDDEN" >&2
    ((rc != 0)) || rc=1
fi
exit "$rc"
