#!/usr/bin/env bash
# test/support/s3.sh -- a real S3 server on loopback for the tests: a single-node Ceph cluster
# (ceph-mon + one BlueStore ceph-osd in a sparse file) with the RADOS Gateway (radosgw, beast
# frontend) in front, from Debian's packages (test/support/install.sh installs them).
#
#   bash test/support/s3.sh start     starts it (or reuses a healthy one) and prints `export` lines:
#                                      S3_ENDPOINT S3_REGION S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY S3_DIR
#   bash test/support/s3.sh stop      stops the daemons it started (by their recorded pids) and deletes S3_DIR
#
# Settings (environment): S3_PORT (7580), CEPH_MON_PORT (7500), CEPH_PORT_MIN/MAX (7501-7529),
# S3_DIR (/tmp/berth-s3), S3_ACCESS_KEY, S3_SECRET_KEY, CEPH_OSD_SIZE_GB (12), S3_START_TIMEOUT (180).
# Everything listens on 127.0.0.1. Progress and errors go to stderr, only exports to stdout.
# Clients: path-style URLs, region us-east-1, and (AWS SDK for JavaScript) checksums only when
# required, else a streamed PutObject gets 411 from the gateway.
set -euo pipefail

S3_PORT=${S3_PORT:-7580}
CEPH_MON_PORT=${CEPH_MON_PORT:-7500}
CEPH_PORT_MIN=${CEPH_PORT_MIN:-7501}
CEPH_PORT_MAX=${CEPH_PORT_MAX:-7529}
S3_DIR=${S3_DIR:-/tmp/berth-s3}
S3_ACCESS_KEY=${S3_ACCESS_KEY:-berthtest}
S3_SECRET_KEY=${S3_SECRET_KEY:-berthtest-secret-key-0123456789}
CEPH_OSD_SIZE_GB=${CEPH_OSD_SIZE_GB:-12}
S3_START_TIMEOUT=${S3_START_TIMEOUT:-180}
ENDPOINT=http://127.0.0.1:$S3_PORT
CONF=$S3_DIR/ceph.conf

log() { printf '[s3.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
for v in S3_PORT CEPH_MON_PORT CEPH_PORT_MIN CEPH_PORT_MAX CEPH_OSD_SIZE_GB S3_START_TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number, not '${!v}'"
done
[[ $S3_DIR =~ ^/[A-Za-z0-9._/+-]+$ && $S3_DIR != / ]] || die "S3_DIR must be an absolute path, not '$S3_DIR'"

print_env() {
  cat <<OUT | tee "$S3_DIR/env"
export S3_ENDPOINT=$ENDPOINT
export S3_REGION=us-east-1
export S3_ACCESS_KEY_ID=$S3_ACCESS_KEY
export S3_SECRET_ACCESS_KEY=$S3_SECRET_KEY
export S3_DIR=$S3_DIR
OUT
}

pid_ours() { # PIDFILE: the pid recorded there is alive and runs with our ceph.conf
  local pid
  pid=$(cat "$1" 2>/dev/null || true)
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  [[ $(tr '\0' ' ' <"/proc/$pid/cmdline") == *"$CONF"* ]] || return 1
  echo "$pid"
}

s3_curl() { # METHOD PATH [curl args]: a SigV4-signed request, prints the status
  local method=$1 path=$2; shift 2
  curl -sS -o /dev/null -w '%{http_code}' --max-time 30 -X "$method" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" "$@" "$ENDPOINT$path"
}

healthy() {
  local n=0 f
  for f in "$S3_DIR"/run/*.pid; do pid_ours "$f" >/dev/null || return 1; n=$((n + 1)); done
  [[ $n -ge 3 && $(s3_curl GET / 2>/dev/null || true) == 200 ]]
}

wait_for() { # SECONDS WHAT CMD...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    [[ $SECONDS -lt $deadline ]] || { log "timed out waiting for $what"; return 1; }
    sleep 0.2
  done
}

stop() {
  [[ -d $S3_DIR ]] || return 0
  local stage name pid pids
  # the gateway first (it needs the OSD to stop cleanly), then the OSD, then the monitor
  for stage in client.rgw osd.0 mon.a; do
    pids=()
    for name in $stage; do pid=$(pid_ours "$S3_DIR/run/$name.pid") && pids+=("$pid"); done
    [[ ${#pids[@]} -gt 0 ]] || continue
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
      local alive=0
      for pid in "${pids[@]}"; do [[ -d /proc/$pid && $(awk '/^State/{print $2}' /proc/$pid/status 2>/dev/null) != Z ]] && alive=1; done
      [[ $alive -eq 1 ]] || break
      sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
  done
  rm -rf -- "$S3_DIR"
}

start() {
  mkdir -p "$(dirname "$S3_DIR")"
  exec 9>"$S3_DIR.lock"
  flock -w 600 9 || die "another start holds $S3_DIR.lock"
  if [[ -f $CONF ]] && healthy; then
    log "reusing the gateway at $ENDPOINT"
    print_env
    return
  fi
  for b in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool curl; do
    command -v "$b" >/dev/null || die "$b is not installed: run sudo bash test/support/install.sh"
  done
  stop
  trap failed EXIT
  for p in "$S3_PORT" "$CEPH_MON_PORT"; do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && die "127.0.0.1:$p is in use: choose other ports (S3_PORT, CEPH_MON_PORT)"
  done
  mkdir -p "$S3_DIR"/{run,log,mon.a,osd.0}
  local t0=$SECONDS fsid osd_uuid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  cat >"$CONF" <<CONF
# a throwaway single-node cluster for tests, from test/support/s3.sh
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$CEPH_MON_PORT
mon initial members = a
public network = 127.0.0.0/8
ms bind msgr1 = false
ms bind ipv6 = false
ms bind port min = $CEPH_PORT_MIN
ms bind port max = $CEPH_PORT_MAX
run dir = $S3_DIR/run
admin socket = $S3_DIR/run/\$cluster-\$name.asok
pid file = $S3_DIR/run/\$name.pid
log file = $S3_DIR/log/\$name.log
keyring = $S3_DIR/keyring
auth allow insecure global id reclaim = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
paxos propose interval = 0.1
osd objectstore = bluestore
[mon]
mon data = $S3_DIR/mon.\$id
[osd]
osd data = $S3_DIR/osd.\$id
bluestore block path = $S3_DIR/osd.\$id/block.file
bluestore block create = true
bluestore block size = $((CEPH_OSD_SIZE_GB * 1024 * 1024 * 1024))
bluestore fsck on mkfs = false
osd memory target = 939524096
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$S3_PORT tcp_nodelay=1
rgw dns name = localhost
rgw gc obj min wait = 60
rgw gc processor period = 60
CONF
  local k=$S3_DIR/keyring
  ceph-authtool --create-keyring "$k" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$k" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$k" --gen-key -n osd.0 --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
  ceph-authtool "$k" --gen-key -n client.rgw --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
  monmaptool --create --clobber --fsid "$fsid" --addv a "[v2:127.0.0.1:$CEPH_MON_PORT]" "$S3_DIR/monmap" >/dev/null
  local ceph=(timeout 60 ceph -c "$CONF" --connect-timeout 15)
  log "starting ceph-mon on 127.0.0.1:$CEPH_MON_PORT (data in $S3_DIR)"
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$S3_DIR/monmap" --keyring "$k" >>"$S3_DIR/log/setup.log" 2>&1
  ceph-mon -c "$CONF" -i a 9>&-
  wait_for "$S3_START_TIMEOUT" ceph-mon "${ceph[@]}" mon stat
  log "starting ceph-osd.0"
  "${ceph[@]}" osd new "$osd_uuid" 0 >/dev/null
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$S3_DIR/log/setup.log" 2>&1
  ceph-osd -c "$CONF" -i 0 2>>"$S3_DIR/log/setup.log" 9>&-
  osd_up() { [[ $("${ceph[@]}" osd stat -f json 2>/dev/null) == *'"num_up_osds":1'* ]]; }
  wait_for "$S3_START_TIMEOUT" osd.0 osd_up
  # the gateway's pools in one go, rather than one map change at a time when it makes them lazily
  local pids=() pool
  for pool in .rgw.root default.rgw.log default.rgw.control default.rgw.meta \
              default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec; do
    ( "${ceph[@]}" osd pool create "$pool" 8 8 && "${ceph[@]}" osd pool application enable "$pool" rgw ) \
      >/dev/null 2>>"$S3_DIR/log/setup.log" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || die "creating a pool failed (see $S3_DIR/log/setup.log)"; done
  log "starting radosgw on $ENDPOINT"
  radosgw -c "$CONF" -n client.rgw 2>>"$S3_DIR/log/setup.log" 9>&-
  gw_up() { [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$ENDPOINT/") == 200 ]]; }
  wait_for "$S3_START_TIMEOUT" radosgw gw_up
  timeout 60 radosgw-admin -c "$CONF" user create --uid=berthtest --display-name="Berth tests" \
    --access-key="$S3_ACCESS_KEY" --secret-key="$S3_SECRET_KEY" >/dev/null 2>>"$S3_DIR/log/setup.log"
  wait_for 30 "an authenticated request" healthy
  trap - EXIT
  log "ready in $((SECONDS - t0)) s: $ENDPOINT"
  print_env
}

failed() { # a start that failed: the last lines of each log, then nothing left running
  local f
  for f in "$S3_DIR"/log/*.log; do [[ -s $f ]] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
  stop
}

case ${1:-} in
  start) start ;;
  stop) stop; rm -f "$S3_DIR.lock" ;;
  *) die "usage: s3.sh start | stop" ;;
esac
