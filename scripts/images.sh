#!/usr/bin/env bash
# Builds the cluster's local images and imports them into a containerd (no registry is needed):
#   localhost/pause:3.9     a static C binary (images/pause/pause.c) that sleeps until SIGTERM/SIGINT
#                           and reaps zombies; the sandbox image of the CRI plugin.
#   localhost/busybox:1.36  Debian's busybox-static binary and its applet links (sh, sleep, wget, nc,
#                           httpd, cat, ...), /etc/passwd and /tmp; default command `sh`.
#
# Usage: scripts/images.sh [build|import] [--address SOCKET] [--cache DIR]
#   build   writes each image as an OCI image layout tar into the cache dir and prints the paths.
#   import  (the default) builds what is missing, then imports each image into the containerd at
#           SOCKET (or $CONTAINERD_ADDRESS), namespace k8s.io, unless an image of that name with
#           the same digest is already there.
# The cache dir ($IMAGES_CACHE, else <repo>/.run/images) holds the tars; builds are reproducible
# (fixed timestamps and owners) and skipped when their inputs have not changed, so a second run
# takes a second or two. Concurrent runs sharing a cache dir wait for each other.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cmd=import
address="${CONTAINERD_ADDRESS:-}"
cache="${IMAGES_CACHE:-$repo/.run/images}"
ctr_bin="${CTR:-ctr}"
while [ $# -gt 0 ]; do
  case "$1" in
    build|import) cmd="$1" ;;
    --address) address="$2"; shift ;;
    --address=*) address="${1#*=}" ;;
    --cache) cache="$2"; shift ;;
    --cache=*) cache="${1#*=}" ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "images.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$cmd" = import ] && [ -z "$address" ]; then
  echo "images.sh: import needs --address SOCKET or CONTAINERD_ADDRESS" >&2
  exit 2
fi

PAUSE_REF=localhost/pause:3.9
BUSYBOX_REF=localhost/busybox:1.36
BUSYBOX_BIN="${BUSYBOX_BIN:-/bin/busybox}"
PATH_ENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

log() { echo "    images: $*"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

# Reproducible tar of the entries of directory $1 into file $2.
det_tar() {
  local entries
  entries=$(cd "$1" && ls -A)
  # shellcheck disable=SC2086 # the entries are our own plain names
  tar -C "$1" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
    -cf "$2" $entries
}

# write_layout ROOTFS REF CONFIG_EXTRA OUT_TAR: an OCI image layout holding ROOTFS as one
# uncompressed layer, tarred into OUT_TAR; prints the manifest digest.
# CONFIG_EXTRA is the JSON inside the image config's "config" object (Entrypoint, Cmd, ...).
write_layout() {
  local rootfs="$1" ref="$2" extra="$3" out="$4"
  local lay; lay=$(mktemp -d "$cache/layout.XXXXXX")
  mkdir -p "$lay/blobs/sha256"
  det_tar "$rootfs" "$lay/layer.tar"
  local layer_d layer_s; layer_d=$(sha "$lay/layer.tar"); layer_s=$(size "$lay/layer.tar")
  mv "$lay/layer.tar" "$lay/blobs/sha256/$layer_d"

  printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Env":["%s"],"WorkingDir":"/",%s},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"scripts/images.sh"}]}' \
    "$PATH_ENV" "$extra" "$layer_d" > "$lay/config.json"
  local config_d config_s; config_d=$(sha "$lay/config.json"); config_s=$(size "$lay/config.json")
  mv "$lay/config.json" "$lay/blobs/sha256/$config_d"

  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config_d" "$config_s" "$layer_d" "$layer_s" > "$lay/manifest.json"
  local man_d man_s; man_d=$(sha "$lay/manifest.json"); man_s=$(size "$lay/manifest.json")
  mv "$lay/manifest.json" "$lay/blobs/sha256/$man_d"

  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$man_d" "$man_s" "$ref" "${ref##*:}" > "$lay/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' > "$lay/oci-layout"
  det_tar "$lay" "$out.tmp"
  mv "$out.tmp" "$out"
  rm -rf "$lay"
  echo "sha256:$man_d"
}

build_pause() {
  local root="$1"
  mkdir -p "$root"
  gcc -static -Os -o "$root/pause" "$repo/images/pause/pause.c"
  strip "$root/pause"
}

build_busybox() {
  local root="$1" applet dir
  [ -x "$BUSYBOX_BIN" ] || { echo "images.sh: $BUSYBOX_BIN is missing (apt-get install busybox-static)" >&2; return 1; }
  ! readelf -l "$BUSYBOX_BIN" 2>/dev/null | grep -q 'INTERP' \
    || { echo "images.sh: $BUSYBOX_BIN is not statically linked (install busybox-static, not busybox)" >&2; return 1; }
  mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/etc" "$root/root" \
    "$root/tmp" "$root/var/tmp" "$root/home"
  chmod 1777 "$root/tmp" "$root/var/tmp"
  chmod 700 "$root/root"
  cp "$BUSYBOX_BIN" "$root/bin/busybox"
  for applet in $("$BUSYBOX_BIN" --list-full); do
    dir=$(dirname "$applet")
    mkdir -p "$root/$dir"
    [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
  : > "$root/etc/hosts"
  : > "$root/etc/resolv.conf"
}

# ensure_built NAME REF CONFIG_EXTRA INPUTS...: builds $cache/NAME.tar unless the recorded stamp
# (hash of this script, the inputs and the tools) matches.
ensure_built() {
  local name="$1" ref="$2" extra="$3"; shift 3
  local stamp
  stamp=$( { sha "${BASH_SOURCE[0]}"; for f in "$@"; do sha "$f"; done; gcc --version | head -1; tar --version | head -1; } | sha256sum | cut -d' ' -f1)
  if [ -f "$cache/$name.tar" ] && [ -f "$cache/$name.digest" ] && [ "$(cat "$cache/$name.stamp" 2>/dev/null)" = "$stamp" ]; then
    log "$ref: up to date ($(cat "$cache/$name.digest"))"
    return
  fi
  log "$ref: building"
  local root; root=$(mktemp -d "$cache/rootfs.XXXXXX")
  "build_$name" "$root"
  local digest; digest=$(write_layout "$root" "$ref" "$extra" "$cache/$name.tar")
  rm -rf "$root"
  echo "$digest" > "$cache/$name.digest"
  echo "$stamp" > "$cache/$name.stamp"
  log "$ref: built $cache/$name.tar ($digest)"
}

import_image() {
  local name="$1" ref="$2" want have
  want=$(cat "$cache/$name.digest")
  have=$("$ctr_bin" -a "$address" -n k8s.io images ls "name==$ref" 2>/dev/null | awk -v r="$ref" '$1 == r { print $3 }' || true)
  if [ "$have" = "$want" ]; then
    log "$ref: already in $address"
    return
  fi
  log "$ref: importing into $address"
  "$ctr_bin" -a "$address" -n k8s.io images import "$cache/$name.tar" >/dev/null
  have=$("$ctr_bin" -a "$address" -n k8s.io images ls "name==$ref" 2>/dev/null | awk -v r="$ref" '$1 == r { print $3 }' || true)
  if [ "$have" != "$want" ]; then
    echo "images.sh: after the import, $ref has digest '$have', expected $want" >&2
    return 1
  fi
  log "$ref: imported ($want)"
}

mkdir -p "$cache"
exec 9> "$cache/.lock"
flock 9
ensure_built pause "$PAUSE_REF" '"Entrypoint":["/pause"]' "$repo/images/pause/pause.c"
ensure_built busybox "$BUSYBOX_REF" '"Cmd":["sh"]' "$BUSYBOX_BIN"
flock -u 9

case "$cmd" in
  build)
    echo "$cache/pause.tar"
    echo "$cache/busybox.tar"
    ;;
  import)
    import_image pause "$PAUSE_REF"
    import_image busybox "$BUSYBOX_REF"
    ;;
esac
