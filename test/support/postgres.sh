#!/usr/bin/env bash
# test/support/postgres.sh -- a throwaway PostgreSQL server on loopback for the tests, from
# Debian's `postgresql` package (test/support/install.sh installs it): trust authentication on
# 127.0.0.1 only, fsync off (test data need not survive a power cut).
#
#   bash test/support/postgres.sh start   starts it (or reuses a healthy one) and prints `export` lines:
#                                          DATABASE_URL PGHOST PGPORT PGUSER PG_DIR
#   bash test/support/postgres.sh stop    stops the server it started and deletes PG_DIR
#
# Settings (environment): PG_PORT (7432), PG_DIR (/tmp/berth-postgres), PG_START_TIMEOUT (60).
# As root the server runs as the OS user `postgres` (made by the package). Progress and errors
# go to stderr, only exports to stdout.
set -euo pipefail

PG_PORT=${PG_PORT:-7432}
PG_DIR=${PG_DIR:-/tmp/berth-postgres}
PG_START_TIMEOUT=${PG_START_TIMEOUT:-60}
DATA=$PG_DIR/data

log() { printf '[postgres.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ $PG_PORT =~ ^[0-9]+$ ]] || die "PG_PORT must be a number, not '$PG_PORT'"
[[ $PG_START_TIMEOUT =~ ^[0-9]+$ ]] || die "PG_START_TIMEOUT must be a number, not '$PG_START_TIMEOUT'"
[[ $PG_DIR =~ ^/[A-Za-z0-9._/+-]+$ && $PG_DIR != / ]] || die "PG_DIR must be an absolute path, not '$PG_DIR'"
[[ ${#PG_DIR} -le 80 ]] || die "PG_DIR is too long for a unix socket path (80 characters at most): $PG_DIR"

BIN=
for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
  [[ -x $d/initdb && -x $d/pg_ctl ]] && { BIN=$d; break; }
done

if [[ $(id -u) -eq 0 ]]; then
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

print_env() {
  cat <<OUT | tee "$PG_DIR/env"
export DATABASE_URL=postgresql://postgres@127.0.0.1:$PG_PORT/postgres
export PGHOST=127.0.0.1
export PGPORT=$PG_PORT
export PGUSER=postgres
export PG_DIR=$PG_DIR
OUT
}

ready() { "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -t 2; }

running_here() {
  [[ -f $DATA/postmaster.pid ]] || return 1
  local pid
  pid=$(sed -n 1p "$DATA/postmaster.pid" 2>/dev/null || true)
  [[ $pid =~ ^[0-9]+$ && -d /proc/$pid ]] || return 1
  [[ $(sed -n 4p "$DATA/postmaster.pid") == "$PG_PORT" ]] || return 1
  ready
}

stop() {
  [[ -d $PG_DIR ]] || return 0
  if [[ -n $BIN && -f $DATA/postmaster.pid ]]; then
    as_pg "$BIN/pg_ctl" -D "$DATA" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
  rm -rf "$PG_DIR"
  log "stopped; removed $PG_DIR"
}

start() {
  [[ -n $BIN ]] || die "PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/initdb): run sudo bash test/support/install.sh"
  if [[ $(id -u) -eq 0 ]]; then id postgres >/dev/null 2>&1 || die "the OS user postgres does not exist (the postgresql package makes it)"; fi
  mkdir -p "$PG_DIR"
  if running_here; then
    log "already running on 127.0.0.1:$PG_PORT (data $DATA)"
    print_env
    return 0
  fi
  chmod 0755 "$PG_DIR"
  [[ $(id -u) -ne 0 ]] || chown postgres: "$PG_DIR"
  if [[ ! -f $DATA/PG_VERSION ]]; then
    log "initdb in $DATA ($("$BIN/postgres" --version))"
    as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --no-locale --no-sync >"$PG_DIR/initdb.log" 2>&1 \
      || { tail -n 20 "$PG_DIR/initdb.log" >&2; die "initdb failed (log: $PG_DIR/initdb.log)"; }
    printf '%s\n' "listen_addresses = '127.0.0.1'" "max_connections = 300" "shared_buffers = 128MB" \
      "fsync = off" "synchronous_commit = off" "full_page_writes = off" | as_pg tee -a "$DATA/postgresql.conf" >/dev/null
  fi
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  as_pg "$BIN/pg_ctl" -D "$DATA" -l "$PG_DIR/postgres.log" -w -t "$PG_START_TIMEOUT" \
    -o "-p $PG_PORT -k $PG_DIR -h 127.0.0.1" start >"$PG_DIR/pg_ctl.log" 2>&1 \
    || { cat "$PG_DIR/pg_ctl.log" >&2; tail -n 20 "$PG_DIR/postgres.log" >&2 || true; die "pg_ctl start failed (log: $PG_DIR/postgres.log)"; }
  local deadline=$((SECONDS + PG_START_TIMEOUT))
  until ready; do
    [[ $SECONDS -lt $deadline ]] || die "PostgreSQL did not accept connections within ${PG_START_TIMEOUT}s (log: $PG_DIR/postgres.log)"
    sleep 0.2
  done
  log "ready: postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
  print_env
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
