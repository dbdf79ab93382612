#!/usr/bin/env bash
# Packs a root filesystem directory into a single-layer OCI image-layout
# tarball that `ctr images import` accepts: no registry, no image builder.
#
#   mk-oci-image.sh ROOTFS_DIR IMAGE_REF OUT.tar ENTRYPOINT_JSON [CMD_JSON]
#   e.g. mk-oci-image.sh rootfs localhost/pause:oomtrace pause.tar '["/pause"]'
#
# The output is deterministic (sorted entries, fixed mtimes and owners), so the
# same inputs always give the same image digest.
set -euo pipefail

if [[ $# -lt 4 || $# -gt 5 ]]; then
    echo "usage: $0 ROOTFS_DIR IMAGE_REF OUT.tar ENTRYPOINT_JSON [CMD_JSON]" >&2
    exit 2
fi
rootfs=$1 ref=$2 out=$3 entrypoint=$4 cmd=${5:-null}
[[ -d $rootfs ]] || { echo "$0: $rootfs is not a directory" >&2; exit 1; }
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/blobs/sha256"

# add_blob FILE: moves FILE into the blob store, prints "<sha256> <size>".
add_blob() {
    local digest size
    digest=$(sha256sum "$1" | cut -d' ' -f1)
    size=$(stat -c %s "$1")
    mv "$1" "$work/blobs/sha256/$digest"
    echo "$digest $size"
}

# One uncompressed layer: its digest is also its diff_id.
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$work/layer" .
read -r layer layer_size < <(add_blob "$work/layer")

printf '{"architecture":"%s","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Entrypoint":%s,"Cmd":%s,"Env":["PATH=/bin:/sbin:/usr/bin:/usr/sbin"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$arch" "$entrypoint" "$cmd" "$layer" >"$work/config"
read -r config config_size < <(add_blob "$work/config")

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config" "$config_size" "$layer" "$layer_size" >"$work/manifest"
read -r manifest manifest_size < <(add_blob "$work/manifest")

# containerd names the imported image after io.containerd.image.name.
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest" "$manifest_size" "$arch" "$ref" "${ref##*:}" >"$work/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$work/oci-layout"

tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work" -cf "$out.tmp" oci-layout index.json blobs
mv "$out.tmp" "$out"
echo "$ref -> $out (manifest sha256:$manifest)"
