#!/usr/bin/env bash
# test/support/dockerd.sh -- a private docker daemon (Debian's docker.io 20.10) with all its state
# in one directory: no systemd, no docker0 bridge, no iptables, its own containerd.
#
#   eval "$(bash test/support/dockerd.sh start DIR)"   starts it; prints DOCKER_HOST and DOCKER_CONFIG
#                                                      (DOCKER_CONFIG = DIR/client: logins stay in DIR)
#   bash test/support/dockerd.sh stop DIR              stops it, unmounts what it left, deletes DIR
#
# Needs root and the packages docker.io, containerd, runc (test/support/install.sh).
# Use /usr/bin/docker, Debian's CLI. dockerd treats 127.0.0.0/8 as an insecure registry, so
# `docker push 127.0.0.1:PORT/x` needs no configuration. Containers have no bridge network:
# `docker run --network none|host`, and `docker build --network host`.
# DIR must be short: the daemon's unix socket lives in it (sun_path holds 108 bytes).
# DOCKERD_REGISTRY_MIRROR=URL: the daemon pulls Docker Hub images through that mirror (registry-mirrors).
set -euo pipefail

die() { echo "dockerd.sh: $*" >&2; exit 1; }
[[ $# -eq 2 && ($1 == start || $1 == stop) ]] || die "usage: dockerd.sh start|stop DIR"
CMD=$1 DIR=$2
case $DIR in /*) ;; *) DIR=$(pwd)/$DIR ;; esac
[[ $DIR != / ]] || die "refusing DIR=/"
SOCK=$DIR/docker.sock
DOCKER=/usr/bin/docker

# stop_pid PIDFILE COMM: SIGTERM (SIGKILL after 30 s) to the process in PIDFILE if it is COMM
stop_pid() {
  local pid i
  pid=$(cat "$1" 2>/dev/null || true)
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 0
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] || return 0   # a recycled pid
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
}

if [[ $CMD == stop ]]; then
  [[ -d $DIR ]] || exit 0
  stop_pid "$DIR/dockerd.pid" dockerd
  stop_pid "$DIR/exec/containerd/containerd.pid" containerd
  # what the daemon left mounted under DIR (netns files, ...), deepest first
  awk -v d="$DIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r mp; do
    umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || echo "dockerd.sh: could not unmount $mp" >&2
  done
  rm -rf "$DIR"
  exit 0
fi

[[ $(id -u) -eq 0 ]] || die "the docker daemon needs root"
for b in dockerd containerd runc "$DOCKER"; do
  command -v "$b" >/dev/null || die "$b is not installed: run sudo bash test/support/install.sh"
done
[[ ${#SOCK} -le 100 ]] || die "DIR is too long for a unix socket path: $DIR"

mkdir -p "$DIR/data" "$DIR/exec" "$DIR/client"
[[ -s $DIR/client/config.json ]] || echo '{"auths":{}}' >"$DIR/client/config.json"
# never read /etc/docker/daemon.json
if [[ -n ${DOCKERD_REGISTRY_MIRROR:-} ]]; then
  [[ $DOCKERD_REGISTRY_MIRROR =~ ^https?://[A-Za-z0-9.:-]+/?$ ]] || die "bad DOCKERD_REGISTRY_MIRROR $DOCKERD_REGISTRY_MIRROR"
  echo "{\"registry-mirrors\": [\"$DOCKERD_REGISTRY_MIRROR\"]}" >"$DIR/daemon.json"
else
  echo '{}' >"$DIR/daemon.json"
fi
rm -f "$SOCK"
# setsid: the daemon gets its own session and is stopped by its pid only
setsid dockerd --config-file "$DIR/daemon.json" --data-root "$DIR/data" --exec-root "$DIR/exec" \
  --pidfile "$DIR/dockerd.pid" -H "unix://$SOCK" --storage-driver vfs \
  --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none --userland-proxy=false \
  >"$DIR/dockerd.log" 2>&1 </dev/null &
launched=$!

deadline=$((SECONDS + 60))
until DOCKER_HOST=unix://$SOCK "$DOCKER" version >/dev/null 2>&1; do
  if ! kill -0 "$launched" 2>/dev/null || ((SECONDS >= deadline)); then
    tail -n 20 "$DIR/dockerd.log" >&2 || true
    die "dockerd did not start (log: $DIR/dockerd.log)"
  fi
  sleep 0.2
done
echo "export DOCKER_HOST=unix://$SOCK"
echo "export DOCKER_CONFIG=$DIR/client"
