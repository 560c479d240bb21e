#!/usr/bin/env bash
# Meter benchmark of the release `metering-server` on the realistic workload (see
# realistic.sh: 2,500 series, metadata with 5 keys on every event, 30-day backfill
# timestamps), on a store already holding LOAD_METER_EVENTS events (default 1,000,000).
#
#   benches/meters.sh                                                   # SQLite
#   LOAD_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test benches/meters.sh   # also PostgreSQL
#
# Rows, per store:
#   1. batch ingest (1,000 per request, 4 connections) with no meter defined;
#   2. the same after 10 meters are defined (the ratio is the issue's 80 % goal);
#   3. one query of each aggregation (30 days, daily, grouped by tenant_id and the `th`
#      dimension: 50 x 32 groups), one connection, LOAD_SECONDS each: p50 is the figure;
#   4. single-event ingest (32 connections) idle, then while a new meter is defined and
#      queried over the whole store (the p99 ratio is the issue's "under twice" goal).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${LOAD_SECONDS:-10}
events=${LOAD_METER_EVENTS:-1000000}

cargo build --release -q -p metering-http --features postgres,redis --bin metering-server -p metering-benches --bin metering-load
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
source scripts/server.sh

load() { "$target/release/metering-load" --url "$SERVER_URL" --key "$SERVER_KEY" "$@" | sed -n 1p; }
define() {
  curl -fsS -X PUT "$SERVER_URL/v1/meter/meters/$1" -H "x-api-key: $SERVER_KEY" \
    -H 'content-type: application/json' -d "$2" >/dev/null
}

run_rows() {
  local label=$1
  echo "== $label: $(nproc) cores; client on the same machine"
  echo "filling $events backfill events..."
  load --scenario batch --connections 4 --batch-size 1000 --timestamps backfill \
    --max-requests $((events / 1000)) --seconds 36000
  echo "-- 1. batch POST of 1,000, 30-day timestamps (4 connections), no meter"
  load --scenario batch --connections 4 --batch-size 1000 --seconds "$seconds" --timestamps backfill
  define tokens '{"aggregation": "sum", "dimensions": ["th", "user"]}'
  define calls '{"aggregation": "count", "dimensions": ["th"]}'
  define smallest '{"aggregation": "min", "dimensions": ["th"]}'
  define largest '{"aggregation": "max", "dimensions": ["th"]}'
  define mean '{"aggregation": "avg", "dimensions": ["th"]}'
  define last '{"aggregation": "latest", "dimensions": ["th"]}'
  define users '{"aggregation": "unique_count", "value": "metadata.user", "dimensions": ["th"]}'
  define billing '{"aggregation": "sum", "filter": {"resource": "res_1"}, "dimensions": ["th"]}'
  define by_seq '{"aggregation": "max", "value": "metadata.seq"}'
  define src '{"aggregation": "count", "filter": {"metadata": {"src": "bench"}}, "dimensions": ["src"]}'
  echo "-- 2. the same with 10 meters defined"
  load --scenario batch --connections 4 --batch-size 1000 --seconds "$seconds" --timestamps backfill
  echo "-- 3. meter queries, 30 days daily by tenant_id,th (one connection)"
  for meter in tokens calls smallest largest mean last users; do
    printf '%-9s ' "$meter"
    load --scenario meter --meter "$meter" --connections 1 --seconds "$seconds"
  done
  echo "-- 4. single-event POST, live timestamps (32 connections): idle"
  load --scenario single --connections 32 --seconds "$seconds" --timestamps live
  echo "-- 4. the same while a new meter is defined and queried over the whole store"
  load --scenario single --connections 32 --seconds "$seconds" --timestamps live >"$work/during" &
  local writers=$!
  sleep 1
  define fresh '{"aggregation": "sum", "dimensions": ["th"]}'
  load --scenario meter --meter fresh --connections 1 --seconds $((seconds - 2)) | sed 's/^/   meanwhile: /'
  wait "$writers"
  cat "$work/during"
}

start_server --store "sqlite://$work/meters.db"
sqlite_pid=$SERVER_PID
run_rows "metering-server $(git rev-parse --short HEAD 2>/dev/null || echo '?') on SQLite"
echo "database $(du -h "$work/meters.db" | cut -f1)"
kill "$sqlite_pid" 2>/dev/null || true

if [ -n "${LOAD_POSTGRES_URL:-}" ]; then
  schema="bench_meters_$$"
  sep='?'; case "$LOAD_POSTGRES_URL" in *\?*) sep='&' ;; esac
  start_server --store "${LOAD_POSTGRES_URL}${sep}schema=$schema"
  pg_pid=$SERVER_PID
  run_rows "metering-server on PostgreSQL"
  kill "$pg_pid" 2>/dev/null || true
  psql "$LOAD_POSTGRES_URL" -qc "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1 || true
fi
rm -rf "$work"
