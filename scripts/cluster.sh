#!/usr/bin/env bash
# A local Parley cluster, for trying docs/DEPLOYMENT.md ("Several nodes") on one machine:
# N nodes on one PostgreSQL and one Redis, and nginx in front of them when nginx is installed.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage:
  scripts/cluster.sh [start] [--nodes N] [--pg URL] [--redis URL] [--prefix P]
                     [--port P] [--lb-port P] [--dir DIR] [--fresh]
  scripts/cluster.sh status  [--dir DIR]
  scripts/cluster.sh kill I  [--dir DIR]    SIGKILL node I (a node dying)
  scripts/cluster.sh restart I [--dir DIR]  start node I again, with the cluster's settings
  scripts/cluster.sh stop    [--dir DIR]    stop every node (SIGTERM) and nginx

start (the default) runs N nodes of target/release/parley (built if missing) on 127.0.0.1,
ports P, P+1, ... (default 8081), then nginx on 127.0.0.1:--lb-port (default 8080) with a copy
of deploy/nginx.conf whose upstream lists the nodes. Without nginx (apt-get install -y nginx),
use the nodes' own ports.

  --nodes N     nodes to start (default 2)
  --pg URL      the database, created with psql if missing
                (default postgres://postgres@127.0.0.1:5432/parley_cluster)
  --redis URL   the broker (default redis://127.0.0.1:6379/0)
  --prefix P    PARLEY_REDIS_PREFIX (default parley)
  --fresh       drop and create the database, and delete the prefix's keys in Redis, first
  --dir DIR     where logs, pids, the token secret and nginx's files go
                (default $TMPDIR/parley-cluster, or /tmp/parley-cluster)

The nodes inherit the caller's PARLEY_* variables (PARLEY_HEARTBEAT_MS=5000 scripts/cluster.sh
...); the script sets PARLEY_BIND, PARLEY_DATABASE_URL, PARLEY_REDIS_URL, PARLEY_REDIS_PREFIX,
PARLEY_JWT_SECRET (kept if set, else generated once per directory, in DIR/jwt-secret) and
PARLEY_ADMIN_USERS (default: admin; set PARLEY_ADMIN_PASSWORD_HASH too, so that the nodes make
that account, which can read /api/admin/actors: docs/SECURITY.md says how to make a hash).
EOF
}

CALLER=$PWD
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${CARGO_TARGET_DIR:-target}/release/parley
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac

CMD=start
case ${1:-} in
  start|stop|status) CMD=$1; shift ;;
  kill|restart) CMD=$1; NODE=${2:?"$1 needs a node number"}; shift 2 ;;
  -h|--help|help) usage; exit 0 ;;
esac

NODES=2 PG=postgres://postgres@127.0.0.1:5432/parley_cluster REDIS=redis://127.0.0.1:6379/0
PREFIX=parley PORT=8081 LB_PORT=8080 FRESH=0
DIR=${TMPDIR:-/tmp}/parley-cluster
while [ $# -gt 0 ]; do
  case $1 in
    --nodes) NODES=$2; shift ;;
    --pg) PG=$2; shift ;;
    --redis) REDIS=$2; shift ;;
    --prefix) PREFIX=$2; shift ;;
    --port) PORT=$2; shift ;;
    --lb-port) LB_PORT=$2; shift ;;
    --dir) DIR=$2; [[ $DIR == /* ]] || DIR=$CALLER/$DIR; shift ;;
    --fresh) FRESH=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

say() { echo "cluster: $*" >&2; }
die() { say "$*"; exit 1; }
# A process that runs (a killed one whose parent has not reaped it yet is a zombie: not running).
running() { kill -0 "$1" 2>/dev/null && [[ $(ps -o stat= -p "$1" 2>/dev/null) != Z* ]]; }
alive() { [ -f "$1" ] && running "$(cat "$1")"; }

# The settings of the running cluster, written by start and read by restart.
load_settings() {
  [ -f "$DIR/cluster.env" ] || die "no cluster in $DIR (start one first)"
  # shellcheck disable=SC1091
  . "$DIR/cluster.env"
}

start_node() {
  local i=$1 port=$((PORT + $1 - 1))
  alive "$DIR/node$i.pid" && die "node $i is already running (pid $(cat "$DIR/node$i.pid"))"
  PARLEY_BIND=127.0.0.1:$port PARLEY_DATABASE_URL=$PG PARLEY_REDIS_URL=$REDIS \
  PARLEY_REDIS_PREFIX=$PREFIX PARLEY_JWT_SECRET=$(cat "$DIR/jwt-secret") \
  PARLEY_ADMIN_USERS=${PARLEY_ADMIN_USERS:-admin} RUST_LOG=${RUST_LOG:-info} \
    nohup "$BIN" >>"$DIR/node$i.log" 2>&1 &
  echo $! >"$DIR/node$i.pid"
}

# Waits until node $1 answers /readyz (200, "ready" or "degraded"); shows its log if it died.
wait_ready() {
  local i=$1 port=$((PORT + $1 - 1))
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return 0
    alive "$DIR/node$i.pid" || { say "node $i exited; the end of $DIR/node$i.log:"; tail -n 20 "$DIR/node$i.log" >&2; return 1; }
    sleep 0.1
  done
  say "node $i did not become ready within 30 s; the end of $DIR/node$i.log:"
  tail -n 20 "$DIR/node$i.log" >&2
  return 1
}

stop_all() {
  [ -d "$DIR" ] || { say "nothing in $DIR"; return 0; }
  local f pid pids=""
  for f in "$DIR"/node*.pid; do
    [ -e "$f" ] || continue
    if alive "$f"; then pid=$(cat "$f"); kill -TERM "$pid"; pids="$pids $pid"; fi
    rm -f "$f"
  done
  if alive "$DIR/nginx.pid"; then kill -TERM "$(cat "$DIR/nginx.pid")"; say "nginx stopped"; fi
  # A node answers what it has read, closes its sessions with 1012 and exits within
  # PARLEY_SHUTDOWN_TIMEOUT_SECS (10 s by default).
  for pid in $pids; do
    for _ in $(seq 150); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then say "pid $pid still running after 15 s: SIGKILL"; kill -KILL "$pid"; fi
  done
  [ -n "$pids" ] && say "stopped nodes (pids$pids)"
  say "logs are kept in $DIR"
}

status() {
  load_settings
  local i f port
  for ((i = 1; i <= NODES; i++)); do
    f=$DIR/node$i.pid port=$((PORT + i - 1))
    if alive "$f"; then
      echo "node $i  pid $(cat "$f")  http://127.0.0.1:$port  readyz: $(curl -s -m 2 "http://127.0.0.1:$port/readyz" || echo 'no answer')"
    else
      echo "node $i  not running  (log: $DIR/node$i.log)"
    fi
  done
  if alive "$DIR/nginx.pid"; then echo "nginx   pid $(cat "$DIR/nginx.pid")  http://127.0.0.1:$LB_PORT"; else echo "nginx   not running"; fi
}

# deploy/nginx.conf with the nodes as upstream servers, listening on 127.0.0.1:$LB_PORT.
nginx_conf() {
  local servers="" i
  for ((i = 0; i < NODES; i++)); do
    servers+="        server 127.0.0.1:$((PORT + i)) max_fails=1 fail_timeout=5s;"$'\n'
  done
  awk -v servers="$servers" -v listen="        listen 127.0.0.1:$LB_PORT;" '
    /# BEGIN upstream servers/ { print; printf "%s", servers; skip = 1; next }
    /# END upstream servers/   { skip = 0 }
    skip { next }
    /^ *listen 8080;/ { print listen; next }
    { print }
  ' deploy/nginx.conf
}

start() {
  [[ $NODES =~ ^[1-9][0-9]*$ ]] || die "--nodes wants a number of nodes"
  local f
  for f in "$DIR"/node*.pid "$DIR/nginx.pid"; do
    alive "$f" && die "a cluster is already running in $DIR (scripts/cluster.sh stop first)"
  done
  mkdir -p "$DIR/logs" "$DIR/tmp"
  chmod 755 "$DIR"                     # nginx's workers (not root) reach their files under it
  rm -f "$DIR"/node*.log "$DIR"/node*.pid "$DIR"/logs/*.log

  if [ ! -x "$BIN" ]; then
    say "no $BIN: building it (cargo build --release)"
    cargo build --release --bin parley
  fi

  # The database: created if missing (dropped first with --fresh).
  local admin=${PG%%\?*} name
  name=${admin##*/} admin=${admin%/*}/postgres
  [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "cannot tell the database name in $PG"
  command -v psql >/dev/null || die "psql is needed to create the database"
  if [ "$FRESH" != 0 ]; then
    PGOPTIONS=--client-min-messages=warning psql "$admin" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null
    say "dropped database $name"
  fi
  if [ -z "$(psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'")" ]; then
    psql "$admin" -qc "CREATE DATABASE $name" >/dev/null
    say "created database $name"
  fi

  # The broker: it only has to answer (a node starts without it, in degraded mode).
  if command -v redis-cli >/dev/null; then
    redis-cli -u "$REDIS" ping >/dev/null 2>&1 || say "warning: Redis does not answer at $REDIS: the nodes start degraded"
    if [ "$FRESH" != 0 ]; then
      redis-cli -u "$REDIS" --scan --pattern "$PREFIX:*" | xargs -r redis-cli -u "$REDIS" del >/dev/null
      say "deleted Redis keys $PREFIX:*"
    fi
  fi

  # One secret for every node (a token from one is valid on all).
  if [ -n "${PARLEY_JWT_SECRET:-}" ]; then
    (umask 077; printf '%s' "$PARLEY_JWT_SECRET" >"$DIR/jwt-secret")
  elif [ ! -s "$DIR/jwt-secret" ]; then
    (umask 077; od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$DIR/jwt-secret")
  fi

  {
    printf 'NODES=%q PG=%q REDIS=%q PREFIX=%q PORT=%q LB_PORT=%q\n' "$NODES" "$PG" "$REDIS" "$PREFIX" "$PORT" "$LB_PORT"
  } >"$DIR/cluster.env"

  # Node 1 first: it applies the migrations (nodes starting together on a new database race
  # on them, and all but one stop), then the others together.
  start_node 1
  wait_ready 1 || { stop_all; exit 1; }
  local i
  for ((i = 2; i <= NODES; i++)); do start_node "$i"; done
  for ((i = 2; i <= NODES; i++)); do wait_ready "$i" || { stop_all; exit 1; }; done

  if command -v nginx >/dev/null; then
    nginx_conf >"$DIR/nginx.conf"
    nginx -c "$DIR/nginx.conf" -p "$DIR/" || { say "nginx did not start: see $DIR/logs/error.log"; stop_all; exit 1; }
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$LB_PORT/healthz" >/dev/null && break; sleep 0.1; done
  else
    say "no nginx (apt-get install -y nginx): use the nodes' own ports"
  fi

  say "up:"
  status
  cat >&2 <<EOF

  logs          $DIR/node*.log, $DIR/logs/ (nginx)
  token secret  $DIR/jwt-secret
  try it        README "Try it by hand" with api=http://127.0.0.1:$LB_PORT
  stop          scripts/cluster.sh stop$( [ "$DIR" = "${TMPDIR:-/tmp}/parley-cluster" ] || printf ' --dir %q' "$DIR")
EOF
}

case $CMD in
  start) start ;;
  stop) stop_all ;;
  status) status ;;
  kill)
    load_settings
    alive "$DIR/node$NODE.pid" || die "node $NODE is not running"
    pid=$(cat "$DIR/node$NODE.pid")
    kill -KILL "$pid"
    for _ in $(seq 50); do running "$pid" || break; sleep 0.1; done
    say "node $NODE killed (SIGKILL); the others take its users offline within PARLEY_NODE_TTL_MS"
    ;;
  restart)
    load_settings
    [ "$NODE" -ge 1 ] && [ "$NODE" -le "$NODES" ] || die "no node $NODE in a cluster of $NODES"
    start_node "$NODE"
    wait_ready "$NODE"
    say "node $NODE is up again on http://127.0.0.1:$((PORT + NODE - 1))"
    ;;
esac
