#!/usr/bin/env bash
# test/support/ref-registry.sh -- the reference registry (Debian's docker-registry, distribution
# 2.8, what registry:2 ships) on 127.0.0.1, to compare Berth with it on the same data directory.
#
#   bash test/support/ref-registry.sh start DIR PORT [--auth USER:PASSWORD]
#                                                      serves DIR/data on 127.0.0.1:PORT (filesystem
#                                                      storage, deletes enabled); config, log, pid in DIR;
#                                                      --auth: htpasswd authentication with that one user
#   bash test/support/ref-registry.sh start DIR PORT --s3 ENDPOINT BUCKET [ROOTDIRECTORY]
#                                                      the same with S3 storage (registry:2's s3 driver) on
#                                                      that bucket; keys from S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY;
#                                                      REF_REDIRECT_DISABLE=true serves blobs itself (storage.redirect.disable)
#   bash test/support/ref-registry.sh stop DIR         stops it (DIR stays: the data is what is compared)
#
# Needs docker-registry and curl (test/support/install.sh).
set -euo pipefail

die() { echo "ref-registry.sh: $*" >&2; exit 1; }
[[ $# -ge 2 ]] || die "usage: ref-registry.sh start DIR PORT | stop DIR"
CMD=$1 DIR=$2
case $DIR in /*) ;; *) DIR=$(pwd)/$DIR ;; esac
PIDFILE=$DIR/registry.pid

running_pid() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == docker-registr* ]] || return 1
  echo "$pid"
}

case $CMD in
start)
  PORT=${3:?usage: ref-registry.sh start DIR PORT [--auth USER:PASSWORD]}
  [[ $PORT =~ ^[0-9]+$ ]] || die "bad PORT $PORT"
  AUTH= S3=
  if [[ ${4:-} == --s3 ]]; then
    S3=${5:?--s3 needs ENDPOINT BUCKET}
    BUCKET=${6:?--s3 needs ENDPOINT BUCKET}
    S3ROOT=${7:-}
    [[ -n ${S3_ACCESS_KEY_ID:-} && -n ${S3_SECRET_ACCESS_KEY:-} ]] || die "--s3 needs S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY"
  elif [[ ${4:-} == --auth ]]; then
    AUTH=${5:?--auth needs USER:PASSWORD}
    [[ $AUTH == *:* ]] || die "--auth needs USER:PASSWORD"
    command -v htpasswd >/dev/null || die "htpasswd is not installed: run sudo bash test/support/install.sh"
  fi
  for b in docker-registry curl; do
    command -v "$b" >/dev/null || die "$b is not installed: run sudo bash test/support/install.sh"
  done
  running_pid >/dev/null && die "already running for $DIR"
  mkdir -p "$DIR/data"
  if [[ -n $S3 ]]; then
    STORAGE="  s3:
    regionendpoint: $S3
    region: us-east-1
    bucket: $BUCKET
    accesskey: $S3_ACCESS_KEY_ID
    secretkey: $S3_SECRET_ACCESS_KEY
    secure: false
    v4auth: true${S3ROOT:+
    rootdirectory: $S3ROOT}
  redirect:
    disable: ${REF_REDIRECT_DISABLE:-false}"
  else
    STORAGE="  filesystem:
    rootdirectory: $DIR/data"
  fi
  cat >"$DIR/config.yml" <<EOF
version: 0.1
log:
  level: info
  formatter: text
storage:
$STORAGE
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$PORT
EOF
  if [[ -n $AUTH ]]; then
    htpasswd -Bbc "$DIR/htpasswd" "${AUTH%%:*}" "${AUTH#*:}" 2>/dev/null
    printf 'auth:\n  htpasswd:\n    realm: ref-realm\n    path: %s\n' "$DIR/htpasswd" >>"$DIR/config.yml"
  fi
  # an AWS_CA_BUNDLE in the environment stops its S3 driver from starting, even for plain HTTP
  setsid env -u AWS_CA_BUNDLE docker-registry serve "$DIR/config.yml" >>"$DIR/registry.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"
  for ((i = 0; i < 100; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v2/" || true)
    [[ $code == 200 || $code == 401 ]] && exit 0
    kill -0 "$pid" 2>/dev/null || { tail -n 5 "$DIR/registry.log" >&2; die "docker-registry exited (port $PORT in use?)"; }
    sleep 0.1
  done
  die "docker-registry did not answer on 127.0.0.1:$PORT within 10 s (log: $DIR/registry.log)"
  ;;
stop)
  if pid=$(running_pid); then
    kill -TERM "$pid"
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
  ;;
*) die "usage: ref-registry.sh start DIR PORT | stop DIR" ;;
esac
