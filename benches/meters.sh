#!/usr/bin/env bash
# Meter benchmark of the release `metering-server` on the realistic workload (see
# realistic.sh: 2,500 series, metadata with 5 keys on every event, timestamps over 30 days),
# on a store already holding LOAD_METER_EVENTS events (default 10,000,000), filled by
# `metering-fill --ordered` (the same events added in time order, minutes instead of hours).
#
#   benches/meters.sh                                                   # SQLite
#   LOAD_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test benches/meters.sh   # also PostgreSQL
#   LOAD_SQLITE=0 LOAD_POSTGRES_URL=... benches/meters.sh                          # PostgreSQL only
#
# Rows, per store:
#   1. batch ingest (1,000 per request, 4 connections, 30-day timestamps) with no meter;
#   2. 10 meters defined, and how long the store takes to fold the full store into them
#      (read from the SQLite file with Python's sqlite3, or from PostgreSQL with psql);
#   3. the same batch ingest with the 10 meters (the ratio is the issue's 80 % goal);
#   4. one query of each aggregation, 30 whole UTC days, daily, grouped by tenant_id and the
#      `th` dimension (50 x 32 = 1,600 groups a day, 49,600 rows), one connection,
#      LOAD_SECONDS each: p50 is the figure; then the rolling range (now - 30 days to now +
#      1 hour, with up to two hours of raw events at its edges) and tenant_id alone;
#   5. single-event ingest (32 connections) idle, then while a new meter is defined and
#      queried over the whole store (the p99 ratio is the issue's "under twice" goal).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${LOAD_SECONDS:-10}
events=${LOAD_METER_EVENTS:-10000000}

cargo build --release -q -p metering-http --features postgres,redis --bin metering-server -p metering-benches --bin metering-load --bin metering-fill
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
source scripts/server.sh

load() { "$target/release/metering-load" --url "$SERVER_URL" --key "$SERVER_KEY" "$@" | sed -n 1p; }
define() {
  curl -fsS -X PUT "$SERVER_URL/v1/meter/meters/$1" -H "x-api-key: $SERVER_KEY" \
    -H 'content-type: application/json' -d "$2" >/dev/null
}

# Waits until every meter of the SQLite database $1 is folded up to its last event.
wait_folded() {
  python3 - "$1" <<'PY'
import sqlite3, sys, time
started = time.time()
while True:
    db = sqlite3.connect(sys.argv[1], timeout=60)
    folds = db.execute("SELECT backfilled, folded_seq FROM meter_folds").fetchall()
    top = db.execute("SELECT coalesce(max(seq), 0) FROM events WHERE seq IS NOT NULL").fetchone()[0]
    db.close()
    if folds and all(done and seq >= top for done, seq in folds):
        print(f"   {len(folds)} meters folded in {time.time() - started:.0f} s")
        break
    time.sleep(1)
PY
}

# Waits until every meter of the PostgreSQL schema $1 is folded up to its last event.
wait_folded_pg() {
  local started=$SECONDS
  until [ "$(psql "$LOAD_POSTGRES_URL" -Atc "SELECT count(*) > 0 AND bool_and(backfilled
      AND NOT EXISTS (SELECT 1 FROM $1.events WHERE xact > folded_seq)) FROM $1.meter_folds")" = t ]; do
    sleep 1
  done
  echo "   $(psql "$LOAD_POSTGRES_URL" -Atc "SELECT count(*) FROM $1.meter_folds") meters folded in $((SECONDS - started)) s"
}

# Waits until the store's meters are folded: $1 is a SQLite file or pg:<schema>.
wait_for_fold() {
  case "$1" in
    '') ;;
    pg:*) wait_folded_pg "${1#pg:}" ;;
    *) wait_folded "$1" ;;
  esac
}

# Reads a SQLite database's files once, so both batch rows start with its pages in the page
# cache: random-time ingest into a cold multi-gigabyte file waits on the disk, and the fold
# between the rows changes how much of the file is cached.
warm() {
  case "$1" in
    '' | pg:*) ;;
    *) cat "$1" "$1"-wal >/dev/null 2>&1 || true ;;
  esac
}

midnight=$(( $(date +%s) / 86400 * 86400 ))
whole_days=(--aggregate-start-unix $((midnight - 29 * 86400)) --aggregate-days 30)

run_rows() {
  local label=$1 db=${2:-}
  echo "== $label: $(nproc) cores; client on the same machine"
  echo "-- 1. batch POST of 1,000, 30-day timestamps (4 connections), no meter"
  warm "$db"
  load --scenario batch --connections 4 --batch-size 1000 --seconds "$seconds" --timestamps backfill
  define tokens '{"aggregation": "sum", "dimensions": ["th"]}'
  define calls '{"aggregation": "count", "dimensions": ["th"]}'
  define smallest '{"aggregation": "min", "dimensions": ["th"]}'
  define largest '{"aggregation": "max", "dimensions": ["th"]}'
  define mean '{"aggregation": "avg", "dimensions": ["th"]}'
  define last '{"aggregation": "latest", "dimensions": ["th"]}'
  define users '{"aggregation": "unique_count", "value": "metadata.user", "dimensions": ["th"]}'
  define billing '{"aggregation": "sum", "filter": {"resource": "res_1"}, "dimensions": ["th"]}'
  define by_seq '{"aggregation": "max", "value": "metadata.seq"}'
  define src '{"aggregation": "count", "filter": {"metadata": {"src": "bench"}}, "dimensions": ["src"]}'
  echo "-- 2. 10 meters defined"
  wait_for_fold "$db"
  echo "-- 3. the same batch POST with 10 meters defined"
  warm "$db"
  load --scenario batch --connections 4 --batch-size 1000 --seconds "$seconds" --timestamps backfill
  wait_for_fold "$db"
  echo "-- 4. meter queries, 30 whole days, daily, by tenant_id,th (one connection)"
  for meter in tokens calls smallest largest mean last users; do
    printf '%-9s ' "$meter"
    load --scenario meter --meter "$meter" --connections 1 --seconds "$seconds" "${whole_days[@]}"
  done
  printf '%-9s ' "rolling"
  load --scenario meter --meter calls --connections 1 --seconds "$seconds"
  printf '%-9s ' "tenants"
  load --scenario meter --meter calls --meter-group-by tenant_id --connections 1 --seconds "$seconds" "${whole_days[@]}"
  echo "-- 5. single-event POST, live timestamps (32 connections): idle"
  load --scenario single --connections 32 --seconds "$seconds" --timestamps live
  echo "-- 5. the same while a new meter is defined and queried over the whole store"
  load --scenario single --connections 32 --seconds "$seconds" --timestamps live >"$work/during" &
  local writers=$!
  sleep 1
  define fresh '{"aggregation": "sum", "dimensions": ["th"]}'
  load --scenario meter --meter fresh --connections 1 --seconds $((seconds - 2)) "${whole_days[@]}" | sed 's/^/   meanwhile: /'
  wait "$writers"
  cat "$work/during"
}

if [ "${LOAD_SQLITE:-1}" != 0 ]; then
  echo "filling $events events..."
  "$target/release/metering-fill" --store "sqlite://$work/meters.db" --events "$events" --ordered
  start_server --store "sqlite://$work/meters.db"
  sqlite_pid=$SERVER_PID
  run_rows "metering-server $(git rev-parse --short HEAD 2>/dev/null || echo '?') on SQLite" "$work/meters.db"
  echo "database $(du -h "$work/meters.db" | cut -f1)"
  kill "$sqlite_pid" 2>/dev/null || true
fi

if [ -n "${LOAD_POSTGRES_URL:-}" ]; then
  schema="bench_meters_$$"
  sep='?'; case "$LOAD_POSTGRES_URL" in *\?*) sep='&' ;; esac
  echo "filling $events events..."
  "$target/release/metering-fill" --store "${LOAD_POSTGRES_URL}${sep}schema=$schema" --events "$events" --ordered
  start_server --store "${LOAD_POSTGRES_URL}${sep}schema=$schema"
  pg_pid=$SERVER_PID
  run_rows "metering-server on PostgreSQL" "pg:$schema"
  kill "$pg_pid" 2>/dev/null || true
  psql "$LOAD_POSTGRES_URL" -qc "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1 || true
fi
rm -rf "$work"
