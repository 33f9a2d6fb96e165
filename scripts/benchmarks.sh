#!/usr/bin/env bash
# The figures of docs/BENCHMARKS.md: parley-bench against a release parley, on SQLite and on
# PostgreSQL, at each rate (a fresh server and a fresh database per run), then idle connections.
#
#   scripts/benchmarks.sh --pg postgres://postgres@127.0.0.1:55433/chat \
#       [--rates "1000 4000 8000 30000"] [--users 200] [--duration 20] [--warmup 5] \
#       [--conns 19000] [--only "sqlite postgres"] [--out results.jsonl] \
#       [--nodes 2 --redis redis://127.0.0.1:6379]
#
# --pg names a database this script may drop and create again (its server must have fsync and
# synchronous_commit on for durable figures, as PostgreSQL has them by default).
# The per-user rate limit is raised to the offered rate per user, so that the limit never shapes
# the figures (40/s per user at 8,000/s over 200 users), with bursts of twice that.
# --redis runs the servers as a cluster (PostgreSQL only) of --nodes nodes (default 1), under a
# Redis key prefix of their own; parley-bench spreads its sockets over them, so the two members
# of each conversation are on different nodes (docs/DEPLOYMENT.md, "Measured").
set -euo pipefail
cd "$(dirname "$0")/.."

RATES="1000 4000 8000 30000" USERS=200 DURATION=20 WARMUP=5 CONNS=19000 ONLY="sqlite postgres"
PG="" REDIS="" NODES=1 OUT="target/benchmarks-$(date -u +%Y%m%d-%H%M%S).jsonl" PORT=8099 SECRET=bench-secret-0123456789
while [ $# -gt 0 ]; do
  case "$1" in
    --pg) PG=$2 ;; --rates) RATES=$2 ;; --users) USERS=$2 ;; --duration) DURATION=$2 ;;
    --warmup) WARMUP=$2 ;; --conns) CONNS=$2 ;; --only) ONLY=$2 ;; --out) OUT=$2 ;;
    --nodes) NODES=$2 ;; --redis) REDIS=$2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
case " $ONLY " in *" postgres "*) [ -n "$PG" ] || { echo "--pg URL is needed for postgres" >&2; exit 2; } ;; esac
[ "$NODES" -eq 1 ] || [ -n "$REDIS" ] || { echo "--nodes needs --redis" >&2; exit 2; }
PREFIX="parley-bench-$$"
TAG=${REDIS:+" ${NODES} node(s) + Redis"}
[ -z "$REDIS" ] || [ "$ONLY" = postgres ] || { echo "--redis needs --only postgres (SQLite is for one node)" >&2; exit 2; }

cargo build --release --bin parley --bin parley-bench >&2
WORK=$(mktemp -d)
SERVERS=()
trap '[ ${#SERVERS[@]} -gt 0 ] && kill "${SERVERS[@]}" 2>/dev/null; rm -rf "$WORK"' EXIT

# Starts the servers (one, or --nodes) on a fresh database of `$1` with the per-user limit for
# rate `$2`.
start() {
  local backend=$1 rate=$2 url
  if [ "$backend" = sqlite ]; then
    rm -f "$WORK"/p.db*
    url="sqlite://$WORK/p.db"
  else
    local admin=${PG%/*}/postgres name=${PG##*/}
    psql "$admin" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name" >/dev/null
    url=$PG
  fi
  local per_user=$(( rate / USERS > 20 ? rate / USERS : 20 ))
  [ -z "$REDIS" ] || redis-cli -u "$REDIS" --scan --pattern "$PREFIX:*" | xargs -r redis-cli -u "$REDIS" del >/dev/null
  for ((n = 0; n < NODES; n++)); do
    PARLEY_DATABASE_URL=$url PARLEY_JWT_SECRET=$SECRET PARLEY_BIND=127.0.0.1:$((PORT + n)) RUST_LOG=warn \
    PARLEY_RATE_PER_SEC=$per_user PARLEY_RATE_BURST=$(( 2 * per_user )) \
    PARLEY_MAX_FRAMES_PER_SEC=$(( 2 * per_user > 100 ? 2 * per_user : 100 )) \
    env ${REDIS:+PARLEY_REDIS_URL=$REDIS PARLEY_REDIS_PREFIX=$PREFIX} \
      target/release/parley >"$WORK/server-$n.log" 2>&1 &
    SERVERS+=($!)
    started "$n" || { echo "the server did not start:" >&2; cat "$WORK/server-$n.log" >&2; exit 1; }
  done
}

started() {
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$((PORT + $1))/healthz" >/dev/null && return; sleep 0.1; done
  return 1
}

stop() { kill "${SERVERS[@]}"; wait "${SERVERS[@]}" 2>/dev/null || true; SERVERS=(); }

bench() {
  local urls pids
  urls=$(for ((n = 0; n < NODES; n++)); do printf 'http://127.0.0.1:%s,' $((PORT + n)); done)
  pids=$(IFS=,; echo "${SERVERS[*]}")
  target/release/parley-bench --url "${urls%,}" --token-secret "$SECRET" --server-pid "$pids" "$@" \
    | tail -n 1 | tee -a "$OUT" || { echo "parley-bench failed; the servers said:" >&2; tail -n 20 "$WORK"/server-*.log >&2; }
}

for backend in $ONLY; do
  for rate in $RATES; do
    start "$backend" "$rate"
    bench --label "$backend$TAG" --users "$USERS" --rate "$rate" --duration "$DURATION" --warmup "$WARMUP"
    stop
  done
  if [ "$CONNS" -gt 0 ]; then
    start "$backend" 0
    bench --label "$backend$TAG" --connections "$CONNS" --hold 10
    stop
  fi
done

# The table of docs/BENCHMARKS.md.
python3 - "$OUT" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
ms = lambda d: " / ".join(str(d.get(k, "–")) for k in ("p50", "p99", "p999", "max"))
print("| backend | offered/s | acked/s | delivered/s | ack p50 / p99 / p99.9 / max ms | delivery p50 / p99 / p99.9 / max ms | errors | lost | unacked | order viol. | CPU % server / bench / postgres / other | server RSS MB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    if r.get("mode") == "connections":
        continue
    c = r.get("cpu", {})
    print(f"| {r['label']} | {r['offered_rate']:.0f} | {r['acked_rate']:.0f} | {r['delivered_rate']:.0f} | {ms(r['ack_ms'])} "
          f"| {ms(r['delivery_ms'])} | {r['error_codes'] or 0} | {r['lost']} | {r['unacked']} | {r['order_violations']} "
          f"| {c.get('server_pct')} / {c.get('loadgen_pct')} / {c.get('postgres_pct')} / {c.get('other_pct')} | {r.get('server_rss_mb')} |")
print()
print("| backend | connections | failed | connect/s | server RSS/conn KiB | dropped while held |")
print("|---|---|---|---|---|---|")
for r in rows:
    if r.get("mode") == "connections":
        print(f"| {r['label']} | {r['connected']} | {r['failed']} | {r['connect_rate']:.0f} | {r.get('rss_per_conn_kb')} | {r['disconnects_while_held']} |")
EOF
