#!/usr/bin/env bash
# test/support/install.sh -- installs, from Debian packages, the real clients and servers that
# Berth's end-to-end tests drive:
#   skopeo, podman, buildah                     the containers/image clients
#   docker.io, containerd, runc                 the docker daemon and CLI (a private daemon per test)
#   docker-registry                             the reference registry (distribution 2.8, what registry:2 ships)
#   ceph-mon, ceph-osd, radosgw, ceph-common    a real S3 server (Ceph's RADOS Gateway): test/support/s3.sh
#   chromium                                    a real browser on /v2/_catalog
#   postgresql                                  a real PostgreSQL (the database metadata store): test/support/postgres.sh
#   jq, openssl, busybox-static                 building the offline test images
#   apache2-utils (htpasswd), openssl, curl     credentials, certificates, readiness checks
#
# Usage (as root, on Debian 12 or a close relative):  bash test/support/install.sh [EXTRA_PKG...]
# Idempotent: with every package present it runs no apt command at all.
# No service is started while installing (a temporary /usr/sbin/policy-rc.d forbids it):
# otherwise, on machines without systemd, the packages would start a system dockerd that
# rewrites iptables and a docker-registry on *:5000, where `berth serve` listens by default.
set -euo pipefail

die() { echo "install.sh: error: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root: sudo bash $0"
command -v apt-get >/dev/null || die "apt-get not found: install the packages listed in $0 by hand"

PKGS=(skopeo podman buildah docker.io containerd runc docker-registry ceph-mon ceph-osd radosgw ceph-common chromium postgresql
      jq openssl busybox-static apache2-utils curl ca-certificates tar gzip "$@")

missing=()
for p in "${PKGS[@]}"; do
  [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true) == ii* ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install.sh: all ${#PKGS[@]} packages are installed" >&2
else
  echo "install.sh: installing ${missing[*]}" >&2
  made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# temporary, from test/support/install.sh: start no service\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  trap '[[ $made_policy -eq 0 ]] || rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt=(apt-get -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  "${apt[@]}" update -qq
  "${apt[@]}" install -y "${missing[@]}"
  # under systemd the package enables docker-registry.service on *:5000 for the next boot
  if [[ " ${missing[*]} " == *" docker-registry "* && -d /run/systemd/system ]]; then
    systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
  fi
fi

for b in skopeo podman buildah dockerd containerd runc docker-registry ceph-mon ceph-osd radosgw radosgw-admin chromium jq openssl busybox htpasswd curl; do
  command -v "$b" >/dev/null || die "$b is missing after the install"
done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || die "PostgreSQL's initdb is missing after the install"
[[ -x /usr/bin/docker ]] || die "/usr/bin/docker (Debian's docker CLI) is missing after the install"
echo "install.sh: ready: skopeo $(skopeo --version | awk '{print $3}'), podman $(podman --version | awk '{print $3}')," \
  "buildah $(buildah --version | awk '{print $3}'), dockerd $(dockerd --version | awk '{print $3}' | tr -d ,)," \
  "$(docker-registry --version 2>/dev/null | awk '{print $2, $3}'), $(chromium --version 2>/dev/null | head -1)" >&2
