#!/usr/bin/env bash
# test/support/containers-env.sh -- an isolated configuration for podman, buildah and skopeo, with
# storage, runtime state and logins in one directory (nothing in /var/lib/containers or ~/.config).
#
#   eval "$(bash test/support/containers-env.sh DIR)"
#   prints exports of CONTAINERS_STORAGE_CONF, CONTAINERS_CONF, CONTAINERS_REGISTRIES_CONF, REGISTRY_AUTH_FILE
#   and writes them under DIR. Remove DIR when done.
#
# Runs rootful (the tests run as root). The choices, each needed on a machine without systemd,
# with hybrid cgroups and without CAP_SYS_RESOURCE:
#   storage driver vfs, cgroup manager cgroupfs, events to a file, runtime runc (crun fails with
#   "cgroups in hybrid mode not supported"), lower default ulimits (podman's fail with
#   "setrlimit RLIMIT_NOFILE: Operation not permitted"), and no network namespace by default
#   (podman's bridge would leave netavark iptables chains on the host; `--network host` reaches 127.0.0.1).
# Registries are plain HTTP on loopback: pass --tls-verify=false (skopeo ignores
# CONTAINERS_REGISTRIES_CONF; use --tls-verify=false / --src-tls-verify=false / --dest-tls-verify=false).
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: containers-env.sh DIR" >&2; exit 2; }
DIR=$1
case $DIR in /*) ;; *) DIR=$(pwd)/$DIR ;; esac
mkdir -p "$DIR/root" "$DIR/runroot" "$DIR/tmp" "$DIR/networks"

cat >"$DIR/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$DIR/root"
runroot = "$DIR/runroot"
EOF

cat >"$DIR/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$DIR/events.log"
runtime = "runc"
tmp_dir = "$DIR/tmp"
image_copy_tmp_dir = "$DIR/tmp"
[network]
# podman 4.3 leaves it empty with only CONTAINERS_CONF set, and conmon's cleanup then fails
network_config_dir = "$DIR/networks"
EOF

# no short-name search: an unqualified name never reaches a public registry
printf 'unqualified-search-registries = []\nshort-name-mode = "permissive"\n' >"$DIR/registries.conf"
[[ -s $DIR/auth.json ]] || printf '{"auths":{}}\n' >"$DIR/auth.json"

cat <<EOF
export CONTAINERS_STORAGE_CONF='$DIR/storage.conf'
export CONTAINERS_CONF='$DIR/containers.conf'
export CONTAINERS_REGISTRIES_CONF='$DIR/registries.conf'
export REGISTRY_AUTH_FILE='$DIR/auth.json'
EOF
