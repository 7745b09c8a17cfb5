#!/usr/bin/env bash
# node-base-image.sh TAG -- makes a minimal Node.js base image offline, from this machine's own
# node, npm and shared libraries plus a static busybox, and imports it into the docker daemon
# that DOCKER_HOST points at. Stands in for the official Node image where no hub is reachable.
set -euo pipefail
TAG=${1:?usage: node-base-image.sh TAG}
NODE=$(readlink -f "$(command -v node)")
NPM_DIR=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
BUSYBOX=$(command -v busybox)
ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
chmod 755 "$ROOT"

mkdir -p "$ROOT"/{bin,usr/bin,usr/lib/node_modules,etc/ssl/certs,tmp,root,home/node,lib64}
chmod 1777 "$ROOT/tmp"
cp "$NODE" "$ROOT/usr/bin/node"
cp -r "$NPM_DIR" "$ROOT/usr/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$ROOT/usr/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$ROOT/usr/bin/npx"
# the dynamic libraries node links against, at the same paths
for lib in $(ldd "$NODE" | grep -oE '/[^ ]+'); do
  mkdir -p "$ROOT$(dirname "$lib")"
  cp -L "$lib" "$ROOT$lib"
done
cp "$BUSYBOX" "$ROOT/bin/busybox"
ln -s ../../bin/busybox "$ROOT/usr/bin/env"
for applet in sh ls cat mkdir chown chmod rm cp mv ln env id wget echo sleep; do ln -s busybox "$ROOT/bin/$applet"; done
[[ -f /etc/ssl/certs/ca-certificates.crt ]] && cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000:node:/home/node:/bin/sh\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\nnode:x:1000:\n' >"$ROOT/etc/group"
chown 1000:1000 "$ROOT/home/node"
tar -C "$ROOT" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["node"]' - "$TAG" >/dev/null
echo "$TAG"
