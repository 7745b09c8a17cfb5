#!/usr/bin/env bash
# test/support/make-images.sh OUTDIR -- builds the end-to-end tests' images offline: no registry,
# no network, no daemon. Made by hand with tar, gzip, sha256sum and jq, deterministically (fixed
# mtimes and owners, sorted entries, gzip -n), so manifest digests are stable for given tool versions.
#
#   OUTDIR/oci/small      OCI layout, tags v1 (1 layer, /hello.txt) and v2 (v1's layer + 1 more)
#   OUTDIR/oci/multi      OCI layout, tag latest: an OCI index of linux/amd64 and linux/arm64 images
#   OUTDIR/docker/small   skopeo dir: layout of a Docker schema2 image (v1's layer)
#   OUTDIR/docker/list    skopeo dir: layout of a Docker manifest list, amd64 + arm64 (push with --all)
#   OUTDIR/archives/web.docker.tar    `docker load` tarball, web:latest: a static busybox, runnable
#   OUTDIR/archives/web.rootfs.tar    the same root filesystem for `docker import`
#   OUTDIR/archives/small.docker.tar  `docker load` tarball, small:v1
#   OUTDIR/digests.txt    NAME DIGEST lines: small:v1 small:v2 multi:latest multi@amd64 multi@arm64
#                         docker-small docker-list web:latest
# The web image needs busybox-static; the archives need skopeo. Without them those are left out
# (with a warning) and the rest is built.
set -euo pipefail
shopt -s inherit_errexit

die() { echo "make-images.sh: $*" >&2; exit 1; }
warn() { echo "make-images.sh: warning: $*" >&2; }
[[ $# -eq 1 ]] || die "usage: make-images.sh OUTDIR"
for t in tar gzip jq sha256sum stat; do
  command -v "$t" >/dev/null || die "$t is not installed: run sudo bash test/support/install.sh"
done
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
[[ $OUT != / ]] || die "refusing OUTDIR=/"
rm -rf "$OUT/oci" "$OUT/docker" "$OUT/archives" "$OUT/digests.txt" "$OUT/.work"
mkdir -p "$OUT/oci" "$OUT/docker" "$OUT/archives" "$OUT/.work"
WORK=$OUT/.work
trap 'rm -rf "$WORK"' EXIT
: >"$OUT/digests.txt"

OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
OCI_INDEX=application/vnd.oci.image.index.v1+json
D_MANIFEST=application/vnd.docker.distribution.manifest.v2+json
D_LIST=application/vnd.docker.distribution.manifest.list.v2+json
EPOCH=1970-01-01T00:00:00Z

# store_blob DIR FILE STYLE: moves FILE into the store and prints "sha256:HEX SIZE"
#   STYLE oci: DIR/blobs/sha256/HEX; STYLE dir: DIR/HEX (skopeo's dir: transport)
store_blob() {
  local hex size dest
  hex=$(sha256sum "$2" | cut -d' ' -f1)
  size=$(stat -c %s "$2")
  if [[ $3 == oci ]]; then dest=$1/blobs/sha256/$hex; else dest=$1/$hex; fi
  mkdir -p "$(dirname "$dest")"
  if [[ -e $dest ]]; then rm -f "$2"; else mv "$2" "$dest"; fi
  echo "sha256:$hex $size"
}

# make_layer ROOTFS PREFIX: writes PREFIX.tar.gz and prints the layer's diff_id
make_layer() {
  (cd "$1" && find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort) >"$2.list"
  tar --no-recursion --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf "$2.tar" -T "$2.list"
  echo "sha256:$(sha256sum "$2.tar" | cut -d' ' -f1)"
  gzip -n -1 -c "$2.tar" >"$2.tar.gz"
  rm -f "$2.tar" "$2.list"
}

# build_image STORE STYLE FORMAT ARCH CMD_JSON ROOTFS...: stores the layers, config and manifest;
# prints "MANIFEST_DIGEST MANIFEST_SIZE". FORMAT oci|docker decides the media types.
build_image() {
  local store=$1 style=$2 format=$3 arch=$4 cmd=$5; shift 5
  local mt_cfg mt_layer mt_man i=0 root diffid dig size layers='[]' diffids='[]' r
  if [[ $format == oci ]]; then
    mt_cfg=application/vnd.oci.image.config.v1+json mt_layer=application/vnd.oci.image.layer.v1.tar+gzip mt_man=$OCI_MANIFEST
  else
    mt_cfg=application/vnd.docker.container.image.v1+json mt_layer=application/vnd.docker.image.rootfs.diff.tar.gzip mt_man=$D_MANIFEST
  fi
  for root in "$@"; do
    i=$((i + 1))
    diffid=$(make_layer "$root" "$WORK/layer.$i")
    r=$(store_blob "$store" "$WORK/layer.$i.tar.gz" "$style")
    read -r dig size <<<"$r"
    layers=$(jq -c --arg mt "$mt_layer" --arg d "$dig" --argjson s "$size" '. + [{mediaType: $mt, digest: $d, size: $s}]' <<<"$layers")
    diffids=$(jq -c --arg d "$diffid" '. + [$d]' <<<"$diffids")
  done
  jq -cjn --arg arch "$arch" --argjson cmd "$cmd" --argjson diffs "$diffids" --arg t "$EPOCH" '{
      architecture: $arch, os: "linux", created: $t,
      config: {Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: $cmd, WorkingDir: "/"},
      rootfs: {type: "layers", diff_ids: $diffs},
      history: [$diffs[] | {created: $t, created_by: "make-images.sh"}]}' >"$WORK/config"
  r=$(store_blob "$store" "$WORK/config" "$style")
  read -r dig size <<<"$r"
  jq -cjn --arg mt "$mt_man" --arg cmt "$mt_cfg" --arg cd "$dig" --argjson cs "$size" --argjson layers "$layers" \
    '{schemaVersion: 2, mediaType: $mt, config: {mediaType: $cmt, digest: $cd, size: $cs}, layers: $layers}' >"$WORK/manifest"
  store_blob "$store" "$WORK/manifest" "$style"
}

# write_list FILE MEDIATYPE AMD64_DIGEST AMD64_SIZE ARM64_DIGEST ARM64_SIZE: an index / manifest list
write_list() {
  jq -cjn --arg mt "$2" --arg mmt "$([[ $2 == "$OCI_INDEX" ]] && echo "$OCI_MANIFEST" || echo "$D_MANIFEST")" \
    --arg da "$3" --argjson sa "$4" --arg dr "$5" --argjson sr "$6" '{schemaVersion: 2, mediaType: $mt, manifests: [
      {mediaType: $mmt, digest: $da, size: $sa, platform: {architecture: "amd64", os: "linux"}},
      {mediaType: $mmt, digest: $dr, size: $sr, platform: {architecture: "arm64", os: "linux", variant: "v8"}}]}' >"$1"
}

oci_layout() {
  mkdir -p "$1/blobs/sha256"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$1/oci-layout"
  printf '{"schemaVersion":2,"mediaType":"%s","manifests":[]}' "$OCI_INDEX" >"$1/index.json"
}

# oci_tag DIR DIGEST SIZE MEDIATYPE TAG
oci_tag() {
  jq -c --arg d "$2" --argjson s "$3" --arg mt "$4" --arg tag "$5" \
    '.manifests += [{mediaType: $mt, digest: $d, size: $s, annotations: {"org.opencontainers.image.ref.name": $tag}}]' \
    "$1/index.json" >"$WORK/index.json"
  mv "$WORK/index.json" "$1/index.json"
}

record() { printf '%s %s\n' "$1" "$2" >>"$OUT/digests.txt"; }

# root filesystems
R=$WORK/roots
mkdir -p "$R/hello/etc" "$R/extra/etc" "$R/amd64/etc" "$R/arm64/etc"
printf 'hello from make-images.sh\n' >"$R/hello/hello.txt"
printf 'test-image\n' >"$R/hello/etc/hostname"
printf 'second layer\n' >"$R/extra/etc/extra.txt"
printf 'platform linux/amd64\n' >"$R/amd64/etc/platform"
printf 'platform linux/arm64\n' >"$R/arm64/etc/platform"
chmod -R u=rwX,go=rX "$R"

# oci/small: v1, v2
S=$OUT/oci/small
oci_layout "$S"
r=$(build_image "$S" oci oci amd64 '["/hello.txt"]' "$R/hello")
read -r d1 s1 <<<"$r"
oci_tag "$S" "$d1" "$s1" "$OCI_MANIFEST" v1
r=$(build_image "$S" oci oci amd64 '["/hello.txt"]' "$R/hello" "$R/extra")
read -r d2 s2 <<<"$r"
oci_tag "$S" "$d2" "$s2" "$OCI_MANIFEST" v2
record small:v1 "$d1"
record small:v2 "$d2"

# oci/multi: an index of two platforms
M=$OUT/oci/multi
oci_layout "$M"
r=$(build_image "$M" oci oci amd64 '["/etc/platform"]' "$R/hello" "$R/amd64")
read -r da sa <<<"$r"
r=$(build_image "$M" oci oci arm64 '["/etc/platform"]' "$R/hello" "$R/arm64")
read -r dr sr <<<"$r"
write_list "$WORK/list" "$OCI_INDEX" "$da" "$sa" "$dr" "$sr"
r=$(store_blob "$M" "$WORK/list" oci)
read -r di si <<<"$r"
oci_tag "$M" "$di" "$si" "$OCI_INDEX" latest
record multi:latest "$di"
record multi@amd64 "$da"
record multi@arm64 "$dr"

# docker/small: schema2 image as a skopeo dir: layout (the manifest is manifest.json)
DS=$OUT/docker/small
mkdir -p "$DS"
r=$(build_image "$DS" dir docker amd64 '["/hello.txt"]' "$R/hello")
read -r dd _ <<<"$r"
mv "$DS/${dd#sha256:}" "$DS/manifest.json"
printf 'Directory Transport Version: 1.1\n' >"$DS/version"
record docker-small "$dd"

# docker/list: manifest list; skopeo's dir: keeps each instance's manifest as HEX.manifest.json
DL=$OUT/docker/list
mkdir -p "$DL"
r=$(build_image "$DL" dir docker amd64 '["/etc/platform"]' "$R/hello" "$R/amd64")
read -r la sla <<<"$r"
r=$(build_image "$DL" dir docker arm64 '["/etc/platform"]' "$R/hello" "$R/arm64")
read -r lr slr <<<"$r"
mv "$DL/${la#sha256:}" "$DL/${la#sha256:}.manifest.json"
mv "$DL/${lr#sha256:}" "$DL/${lr#sha256:}.manifest.json"
write_list "$DL/manifest.json" "$D_LIST" "$la" "$sla" "$lr" "$slr"
printf 'Directory Transport Version: 1.1\n' >"$DL/version"
record docker-list "sha256:$(sha256sum "$DL/manifest.json" | cut -d' ' -f1)"

# web: a runnable static busybox serving /www
BB=$(command -v busybox || true)
if [[ -n $BB ]] && ! ldd "$BB" >/dev/null 2>&1; then   # ldd fails on a static binary
  mkdir -p "$R/web/bin" "$R/web/www" "$R/web/tmp" "$R/web/etc"
  cp -L "$BB" "$R/web/bin/busybox"
  for a in sh ls cat echo httpd wget sleep env id; do ln -sf busybox "$R/web/bin/$a"; done
  printf '<h1>hello from the web test image</h1>\n' >"$R/web/www/index.html"
  printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$R/web/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/web/etc/group"
  chmod 1777 "$R/web/tmp"
  W=$WORK/web
  oci_layout "$W"
  r=$(build_image "$W" oci oci amd64 '["/bin/busybox","httpd","-f","-v","-p","8080","-h","/www"]' "$R/web")
  read -r dw sw <<<"$r"
  oci_tag "$W" "$dw" "$sw" "$OCI_MANIFEST" latest
  record web:latest "$dw"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$R/web" -cf "$OUT/archives/web.rootfs.tar" .
else
  warn "no static busybox (busybox-static): the web image is left out"
fi

# docker load tarballs
if command -v skopeo >/dev/null; then
  [[ -z ${W:-} ]] || skopeo copy -q "oci:$W:latest" "docker-archive:$OUT/archives/web.docker.tar:web:latest"
  skopeo copy -q "oci:$S:v1" "docker-archive:$OUT/archives/small.docker.tar:small:v1"
else
  warn "no skopeo: the docker-archive tarballs are left out"
fi
