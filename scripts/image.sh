#!/usr/bin/env bash
# The DaemonSet's image, built from deploy/Dockerfile with buildah: no Docker
# engine, no container registry.
#
#   scripts/image.sh build [OUT]   (root) build the image and export it as an
#                                  OCI archive (default
#                                  target/node/oomtrace-image.oci.tar) that
#                                  `ctr -n k8s.io images import` loads
#   scripts/image.sh bases         (root) only make (or reuse) the two bases
#   scripts/image.sh verify [OUT]  (root) import OUT into scripts/runtime.sh's
#                                  containerd and check the CRI resolves the
#                                  DaemonSet's `image:` to it; run the image's
#                                  `/oomtrace check` under runc with only
#                                  CAP_BPF and CAP_PERFMON
#
# The last line of `build` is what callers parse:
#   image: oomtrace:0.1.0 size_bytes=N archive_bytes=M
# (the name is the DaemonSet's `image:`; size_bytes is the sum of the image's
# uncompressed layers, archive_bytes the size of OUT).
#
# No registry is reachable here, so the Dockerfile's two public bases are
# replaced by local equivalents made from Debian packages and passed as
# --build-arg BUILD_IMAGE / RUNTIME_IMAGE (deploy/README.md, "What the node
# test verifies and substitutes"):
#   localhost/oomtrace-build-base   rust:<RUST_VERSION>-bookworm: a bookworm
#       rootfs (mmdebstrap) plus rustup-init from rustup's dist server installing
#       the Dockerfile's RUST_VERSION, with the rust image's RUSTUP_HOME,
#       CARGO_HOME and PATH
#   localhost/oomtrace-runtime-base gcr.io/distroless/cc-debian12: only the
#       files of libc6, libgcc-s1, libgomp1, libstdc++6, libssl3, netbase and
#       tzdata, the CA bundle, os-release, passwd/group with root, nobody and
#       nonroot; no shell, no package manager
#
# Everything is kept under target/node/image (OOMTRACE_IMAGE_DIR): buildah's
# storage (the kernel's overlay driver as root: a step stores only what it
# changed, ~4 GB in all; OOMTRACE_IMAGE_STORAGE_DRIVER=vfs where overlay is not
# available, e.g. inside a container whose root is itself an overlay: vfs copies
# the whole root filesystem per step, ~10 GB), its
# cache mounts (the cargo registry and target directory of the Dockerfile's RUN
# --mount=type=cache), and scratch space. The bases are made once per key (the
# Dockerfile's RUST_VERSION, the package lists and BASES_REVISION); the
# Dockerfile's layers are cached by buildah (--layers).
#
# HTTPS inside the build (rustup, crates.io) goes through a proxy whose CA is
# only in the host's trust store: the host bundle is mounted read-only for the
# build, never copied into an image.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$REPO/scripts/image.sh"
DOCKERFILE="$REPO/deploy/Dockerfile"
DAEMONSET="$REPO/deploy/kubernetes/daemonset.yaml"
WORK=${OOMTRACE_IMAGE_DIR:-$REPO/target/node/image}
DEFAULT_OUT="$REPO/target/node/oomtrace-image.oci.tar"
HOST_CA=/etc/ssl/certs/ca-certificates.crt
# scripts/runtime.sh's containerd, where `verify` imports the image
TEST_CRI_SOCKET=${OOMTRACE_TEST_RUNTIME_DIR:-/run/oomtrace-test}/containerd/containerd.sock
SUITE=bookworm
RUSTUP_INIT_URL=https://static.rust-lang.org/rustup/dist/x86_64-unknown-linux-gnu/rustup-init
# Bump when the way the bases are made changes (part of their cache key).
BASES_REVISION=1
# What rust:<v>-bookworm (buildpack-deps:bookworm) offers that a Rust build
# uses: a C toolchain for build scripts and linking, curl, git, pkg-config.
BUILD_BASE_PACKAGES=(ca-certificates curl git gcc g++ libc6-dev make pkg-config xz-utils procps)
# distroless cc-debian12 = base-debian12 (libc6, libssl3, netbase, tzdata, CA
# bundle) + libgcc-s1, libgomp1, libstdc++6.
RUNTIME_BASE_PACKAGES=(libc6 libssl3 libgcc-s1 libgomp1 libstdc++6 netbase tzdata)
HOST_PACKAGES=(buildah mmdebstrap ca-certificates curl python3)

LOG_TAG=image
LOG_FILE="$WORK/image.log"
# shellcheck source=scripts/lib.sh
source "$REPO/scripts/lib.sh"

# overlay unless the kernel lacks it or WORK is itself on an overlay (an upper
# directory cannot live there).
default_storage_driver() {
    if grep -qw overlay /proc/filesystems && [[ $(stat -f -c %T "$REPO") != overlayfs ]]; then
        echo overlay
    else
        echo vfs
    fi
}
STORAGE_DRIVER=${OOMTRACE_IMAGE_STORAGE_DRIVER:-$(default_storage_driver)}
# One storage directory per driver: a store made by one cannot be opened by the other.
buildah_() {
    buildah --root "$WORK/storage-$STORAGE_DRIVER" --runroot "$WORK/run-$STORAGE_DRIVER" \
        --storage-driver "$STORAGE_DRIVER" "$@"
}

# mmdebstrap_ ARG... TARGET: mmdebstrap into the log, once more after a
# failure (a mirror that dropped a connection or served a Release file
# mid-update fails a build that succeeds a minute later); TARGET is removed
# before the second try.
mmdebstrap_() {
    local target=${*: -1}
    mmdebstrap "$@" >>"$LOG_FILE" 2>&1 && return 0
    log "mmdebstrap failed; last lines of $LOG_FILE:"
    tail -n 30 "$LOG_FILE" >&2 || true
    log "trying once more in 30 s"
    sleep 30
    rm -rf "$target"
    mmdebstrap "$@" >>"$LOG_FILE" 2>&1
}

# The ARG default of NAME in the Dockerfile.
dockerfile_arg() { sed -n "s/^ARG $1=//p" "$DOCKERFILE" | head -n1; }

# The image the DaemonSet runs (its one container's `image:`).
daemonset_image() {
    local image
    image=$(sed -nE 's/^ +image: *"?([^" ]+)"?.*$/\1/p' "$DAEMONSET" | head -n1)
    [[ -n $image ]] || die "no image: in $DAEMONSET"
    echo "$image"
}

key_of() { sha256sum | cut -c1-12; }

have_image() { buildah_ inspect --type image "$1" >/dev/null 2>&1; }

# make_build_base NAME RUST_VERSION: a bookworm rootfs with Rust installed by
# rustup-init exactly as the rust image does it.
make_build_base() {
    local name=$1 rust_version=$2 scratch ctr
    scratch=$(mktemp -d "$WORK/tmp/build-base.XXXXXX")
    log "build base: downloading rustup-init and its checksum"
    curl -fsS --retry 3 -o "$scratch/rustup-init" "$RUSTUP_INIT_URL"
    curl -fsS --retry 3 -o "$scratch/rustup-init.sha256" "$RUSTUP_INIT_URL.sha256"
    [[ $(sha256sum <"$scratch/rustup-init" | cut -d' ' -f1) == "$(cut -d' ' -f1 "$scratch/rustup-init.sha256")" ]] ||
        die "rustup-init does not match its published sha256"
    chmod 0755 "$scratch/rustup-init"
    log "build base: mmdebstrap $SUITE with ${BUILD_BASE_PACKAGES[*]}, then rustup-init $rust_version"
    # Each hook runs under sh -c with $1 = the rootfs.
    # shellcheck disable=SC2016
    local cleanup_hook='rm -f "$1/tmp/rustup-init"; rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*'
    mmdebstrap_ --quiet --variant=apt --include="$(IFS=,; echo "${BUILD_BASE_PACKAGES[*]}")" \
        --customize-hook="cp '$scratch/rustup-init' \"\$1/tmp/rustup-init\"" \
        --customize-hook="'$SELF' _install-rust \"\$1\" '$rust_version'" \
        --customize-hook="$cleanup_hook" \
        "$SUITE" "$scratch/rootfs.tar" || die_showing "$LOG_FILE" "mmdebstrap (build base) failed twice"
    ctr=$(buildah_ from scratch)
    buildah_ add "$ctr" "$scratch/rootfs.tar" / >/dev/null
    buildah_ config \
        --env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
        --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env RUST_VERSION="$rust_version" --cmd /bin/bash \
        --label org.opencontainers.image.description="local stand-in for rust:$rust_version-$SUITE (scripts/image.sh)" \
        "$ctr"
    buildah_ commit --quiet --rm "$ctr" "$name" >/dev/null
    rm -rf "$scratch"
}

# _install-rust ROOTFS RUST_VERSION (an mmdebstrap hook: /proc, /dev and
# resolv.conf are set up in ROOTFS): the rust image's install step, with the
# host's CA bundle mounted over the rootfs's one for the download only.
install_rust_in() {
    local rootfs=$1 rust_version=$2 bundle rc=0
    bundle="$rootfs/etc/ssl/certs/ca-certificates.crt"
    mount --bind "$HOST_CA" "$bundle"
    mount -o remount,bind,ro "$bundle"
    chroot "$rootfs" /usr/bin/env -i PATH=/usr/local/cargo/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \
        /tmp/rustup-init -y --no-modify-path --profile minimal --default-toolchain "$rust_version" || rc=$?
    umount "$bundle"
    ((rc == 0)) || exit "$rc"
    chmod -R a+w "$rootfs/usr/local/rustup" "$rootfs/usr/local/cargo"
    chroot "$rootfs" /usr/bin/env -i RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \
        /usr/local/cargo/bin/rustc --version
}

# make_runtime_base NAME: distroless cc-debian12's contents, copied file by
# file out of a bookworm rootfs (dpkg's file lists), nothing else.
make_runtime_base() {
    local name=$1 scratch rootfs tree ctr pkg dir forbidden
    scratch=$(mktemp -d "$WORK/tmp/runtime-base.XXXXXX")
    rootfs="$scratch/rootfs"
    tree="$scratch/tree"
    log "runtime base: mmdebstrap $SUITE, keeping ${RUNTIME_BASE_PACKAGES[*]}, the CA bundle and os-release"
    mmdebstrap_ --quiet --variant=minbase --include="$(IFS=,; echo "${RUNTIME_BASE_PACKAGES[*]},ca-certificates")" \
        "$SUITE" "$rootfs" || die_showing "$LOG_FILE" "mmdebstrap (runtime base) failed twice"
    mkdir -p "$tree"
    # merged /usr: bin, lib, lib64, sbin are symlinks into usr/ (copied as
    # such); a package's /lib/... file is copied to /usr/lib/...
    for dir in bin lib lib64 sbin; do
        [[ -L $rootfs/$dir ]] || die "$SUITE rootfs: /$dir is not a merged-/usr symlink"
        cp -a "$rootfs/$dir" "$tree/"
    done
    for pkg in "${RUNTIME_BASE_PACKAGES[@]}"; do
        dpkg-query --admindir="$rootfs/var/lib/dpkg" -L "$pkg"
    done | sed -E 's#^/(bin|sbin|lib|lib64)/#/usr/\1/#' |
        grep -vE '^/usr/share/(doc|man|lintian|info|gcc|gdb)/' | sort -u |
        while read -r path; do
            # directories come along with the files in them
            if [[ -L $rootfs$path || ! -d $rootfs$path ]]; then echo ".$path"; fi
        done >"$scratch/files"
    (cd "$rootfs" && xargs -d '\n' cp -a --parents -t "$tree" <"$scratch/files")
    mkdir -p "$tree/etc/ssl/certs" "$tree/usr/lib" "$tree/tmp" "$tree/root" "$tree/home/nonroot"
    cp -L "$rootfs/etc/ssl/certs/ca-certificates.crt" "$tree/etc/ssl/certs/"
    cp -a "$rootfs/usr/lib/os-release" "$tree/usr/lib/"
    ln -s ../usr/lib/os-release "$tree/etc/os-release"
    ln -sf /usr/share/zoneinfo/Etc/UTC "$tree/etc/localtime"
    chmod 1777 "$tree/tmp"
    chmod 0700 "$tree/root" "$tree/home/nonroot"
    chown 65532:65532 "$tree/home/nonroot"
    printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
        'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$tree/etc/passwd"
    printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'tty:x:5:' 'staff:x:50:' 'nonroot:x:65532:' >"$tree/etc/group"
    printf '%s\n' 'passwd: files' 'group: files' 'shadow: files' 'hosts: files dns' >"$tree/etc/nsswitch.conf"
    for forbidden in bin/sh usr/bin/sh usr/bin/bash usr/bin/dpkg usr/bin/apt; do
        [[ ! -e $tree/$forbidden ]] || die "runtime base would contain /$forbidden"
    done
    tar -C "$tree" --numeric-owner -cf "$scratch/tree.tar" .
    ctr=$(buildah_ from scratch)
    buildah_ add "$ctr" "$scratch/tree.tar" / >/dev/null
    buildah_ config --user 0 \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
        --label org.opencontainers.image.description="local stand-in for gcr.io/distroless/cc-debian12 (scripts/image.sh)" \
        "$ctr"
    buildah_ commit --quiet --rm "$ctr" "$name" >/dev/null
    rm -rf "$scratch"
}

# Prints "BUILD_IMAGE RUNTIME_IMAGE", making those not in storage yet.
ensure_bases() {
    local rust_version build_name runtime_name
    rust_version=$(dockerfile_arg RUST_VERSION)
    [[ -n $rust_version ]] || die "no ARG RUST_VERSION= in $DOCKERFILE"
    build_name="localhost/oomtrace-build-base:$rust_version-$(
        printf '%s\n' "$BASES_REVISION" "$SUITE" "$rust_version" "${BUILD_BASE_PACKAGES[@]}" | key_of)"
    runtime_name="localhost/oomtrace-runtime-base:$SUITE-$(
        printf '%s\n' "$BASES_REVISION" "$SUITE" "${RUNTIME_BASE_PACKAGES[@]}" | key_of)"
    if have_image "$build_name"; then log "build base: cached ($build_name)"; else
        make_build_base "$build_name" "$rust_version"; log "build base: made $build_name"; fi
    if have_image "$runtime_name"; then log "runtime base: cached ($runtime_name)"; else
        make_runtime_base "$runtime_name"; log "runtime base: made $runtime_name"; fi
    echo "$build_name $runtime_name"
}

# qualified_reference REF: REF as the CRI (docker's reference rules) names
# it: docker.io/library/ for a bare name, docker.io/ for a path without a
# registry host, :latest when there is no tag or digest.
qualified_reference() {
    local ref=$1 first=${1%%/*}
    if [[ $ref != */* ]]; then
        ref=docker.io/library/$ref
    elif [[ $first != *.* && $first != *:* && $first != localhost ]]; then
        ref=docker.io/$ref
    fi
    [[ ${ref##*/} == *[:@]* ]] || ref=$ref:latest
    echo "$ref"
}

# prune_stale_layers BUD_LOG: every cached step takes disk (with vfs a full
# copy of its root filesystem, ~2 GB in the build stage), so the cached steps an
# earlier build used and this one did not (a changed COPY . and everything
# after it) are removed, newest first; the ones in BUD_LOG ("--> ID") stay,
# and so do tagged images (the bases, the image itself).
prune_stale_layers() {
    local used id name removed=0
    used=$(sed -nE 's/^--> (Using cache )?([0-9a-f]{11}).*/\2/p' "$1")
    while read -r id name; do
        id=${id#sha256:}
        if [[ $name == "<none>" ]] && ! grep -qxF "${id:0:11}" <<<"$used"; then
            if buildah_ rmi "$id" >/dev/null 2>&1; then removed=$((removed + 1)); fi
        fi
    done < <(buildah_ images -a --no-trunc --format '{{.CreatedAtRaw}}|{{.ID}} {{.Name}}' | sort -r | cut -d'|' -f2)
    ((removed == 0)) || log "pruned the cached steps this build no longer uses"
}

# Sum of the image's layer sizes in its manifest (buildah stores them uncompressed).
image_size_bytes() {
    buildah_ inspect --type image --format '{{.Manifest}}' "$1" |
        python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))'
}

prepare() {
    need_root "buildah, mmdebstrap and mounts"
    mkdir -p "$WORK/tmp"
    lock "$WORK"
    # What an interrupted run left: the bases' scratch (never mounted over:
    # the hook unmounts), buildah's working containers and temporary files.
    rm -rf "$WORK"/tmp/build-base.* "$WORK"/tmp/runtime-base.* "$WORK"/tmp/buildah[0-9]* "$WORK"/tmp/storage[0-9]*
    # Installed before the first buildah, mmdebstrap or python3 below (a fresh
    # machine has none of them; scripts/fresh-path.sh checks the order).
    install_debian_packages "$WORK/apt.log" "${HOST_PACKAGES[@]}"
    buildah_ rm --all >/dev/null
    [[ -s $HOST_CA ]] || die "no CA bundle at $HOST_CA"
    # buildah keeps its RUN --mount=type=cache directories and scratch files under TMPDIR
    export TMPDIR="$WORK/tmp"
}

cmd_build() {
    local out=${1:-$DEFAULT_OUT} image bases started size
    started=$SECONDS
    prepare
    image=$(daemonset_image)
    bases=$(ensure_bases)
    read -r -a bases <<<"$bases"
    log "building $image from deploy/Dockerfile (BUILD_IMAGE=${bases[0]}, RUNTIME_IMAGE=${bases[1]}; log $LOG_FILE)"
    # --pull=never: the bases exist only in this storage; --layers: reuse every
    # step whose inputs did not change; --format docker: the OCI format has no
    # SHELL, and buildah would run the RUN steps without the Dockerfile's
    # `bash -o pipefail` (the archive is OCI all the same: buildah push converts).
    (cd "$REPO" && buildah_ bud --isolation chroot --layers --pull=never --format docker \
        --ignorefile deploy/Dockerfile.dockerignore -f deploy/Dockerfile \
        --build-arg BUILD_IMAGE="${bases[0]}" --build-arg RUNTIME_IMAGE="${bases[1]}" \
        -v "$HOST_CA:$HOST_CA:ro" -t "$image" . 2>&1 | tee -a "$LOG_FILE" >"$WORK/bud.log") ||
        { tail -n 30 "$WORK/bud.log" >&2; die "buildah bud failed, see $LOG_FILE"; }
    prune_stale_layers "$WORK/bud.log"
    mkdir -p "$(dirname "$out")"
    rm -f "$out"
    # The archive's org.opencontainers.image.ref.name is the fully qualified
    # name: `ctr images import` (containerd 1.6 and 1.7) takes that annotation
    # verbatim as the image's name, and the CRI looks the DaemonSet's
    # `image: oomtrace:0.1.0` up as docker.io/library/oomtrace:0.1.0.
    buildah_ push --quiet "$image" "oci-archive:$out:$(qualified_reference "$image")" >>"$LOG_FILE" 2>&1 ||
        die "buildah push to $out failed, see $LOG_FILE"
    size=$(image_size_bytes "$image")
    log "built $image in $((SECONDS - started)) s: $out"
    echo "image: $image size_bytes=$size archive_bytes=$(stat -c %s "$out")"
}

# cri_image_status REF: the CRI's ImageStatus response for REF (raw protobuf)
# from the test containerd, over gRPC through curl's HTTP/2 (no crictl needed).
cri_image_status() {
    python3 -c '
import struct, sys
ref = sys.argv[1].encode()
spec = b"\x0a" + bytes([len(ref)]) + ref           # ImageSpec{image}
req = b"\x0a" + bytes([len(spec)]) + spec          # ImageStatusRequest{image}
sys.stdout.buffer.write(b"\x00" + struct.pack(">I", len(req)) + req)' "$1" |
        curl --silent --max-time 10 --http2-prior-knowledge --unix-socket "$TEST_CRI_SOCKET" \
            -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @- \
            http://localhost/runtime.v1.ImageService/ImageStatus
}

# run_check_least_privilege IMAGE: `/oomtrace check` in IMAGE's root
# filesystem (read-only) under runc, with the DaemonSet's privileges: uid 0
# holding only CAP_BPF and CAP_PERFMON, no_new_privs, read-only binds of the
# host's BTF, tracefs and cgroup tree. Not reproduced: the RuntimeDefault
# seccomp profile (containerd's, applied by the CRI) and the other hostPaths.
run_check_least_privilege() {
    local image=$1 container rootfs bundle rc=0
    container=$(buildah_ from --pull=never "$image")
    rootfs=$(buildah_ mount "$container")
    bundle="$WORK/tmp/check-bundle"
    rm -rf "$bundle"
    mkdir -p "$bundle"
    runc spec --bundle "$bundle"
    python3 - "$bundle/config.json" "$rootfs" <<'PY'
import json, sys
path, rootfs = sys.argv[1:]
c = json.load(open(path))
c["root"] = {"path": rootfs, "readonly": True}
caps = ["CAP_BPF", "CAP_PERFMON"]
c["process"].update(args=["/oomtrace", "check"], terminal=False, noNewPrivileges=True,
                    capabilities={"bounding": caps, "effective": caps, "permitted": caps})
bind = lambda p: {"destination": p, "type": "bind", "source": p, "options": ["rbind", "ro"]}
c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/sys/fs/cgroup"]
c["mounts"] += [bind("/sys/kernel/btf"), bind("/sys/kernel/tracing"), bind("/sys/fs/cgroup")]
json.dump(c, open(path, "w"), indent=1)
PY
    log "running /oomtrace check from $image under runc (CAP_BPF, CAP_PERFMON only)"
    runc --root "$WORK/runc" run --bundle "$bundle" "oomtrace-image-check-$$" || rc=$?
    buildah_ umount "$container" >/dev/null
    buildah_ rm "$container" >/dev/null
    return "$rc"
}

cmd_verify() {
    local out=${1:-$DEFAULT_OUT} image qualified
    prepare
    [[ -f $out ]] || die "no archive at $out: run scripts/image.sh build first"
    image=$(daemonset_image)
    qualified=$(qualified_reference "$image")
    "$REPO/scripts/runtime.sh" status >/dev/null || die "the test containerd does not answer: scripts/runtime.sh up"
    ctr --address "$TEST_CRI_SOCKET" --namespace k8s.io images import "$out" >>"$LOG_FILE" 2>&1 ||
        die "ctr images import $out failed, see $LOG_FILE"
    ctr --address "$TEST_CRI_SOCKET" --namespace k8s.io images ls -q | grep -qxF "$qualified" ||
        die "after import, containerd has no image named $qualified"
    cri_image_status "$image" | grep -qaF "$qualified" ||
        die "the CRI's ImageStatus for $image does not name $qualified"
    log "containerd names the imported image $qualified; the CRI resolves $image to it"
    run_check_least_privilege "$image" || die "/oomtrace check in the image failed"
    log "verified $image"
}

case ${1:-} in
build) shift; cmd_build "$@" ;;
bases) prepare; ensure_bases ;;
verify) shift; cmd_verify "$@" ;;
_install-rust) shift; install_rust_in "$@" ;;
*) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
