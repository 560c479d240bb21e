#!/usr/bin/env bash
# Load benchmark of the release `metering-server` on the realistic workload: 2,500 series
# (50 tenants x 10 resources x 5 features), integer quantities 1-5, about 80 bytes of
# metadata on every event, server-made ids, timestamps either spread over the last 30 days
# ("backfill") or within the last minute ("live"), on a store already holding events.
#
#   benches/realistic.sh                                # SQLite, 1,000,000 events first
#   LOAD_READ_EVENTS=10000000 benches/realistic.sh      # grow the store before the reads
#   LOAD_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test LOAD_REDIS_URL=redis://127.0.0.1:6379 \
#     benches/realistic.sh                              # also PostgreSQL + Redis
#
# Settings: LOAD_SECONDS (per scenario, default 10), LOAD_PREFILL (events stored before any
# figure, default 1,000,000), LOAD_READ_EVENTS (events stored before the read figures,
# default LOAD_PREFILL), LOAD_POSTGRES_URL / LOAD_REDIS_URL (run the PostgreSQL + Redis
# rows; a fresh schema is made and dropped). Connections: 32 for single events, reads and
# validate; 4 for batches, as in the targets table of benches/README.md. Each line is
# metering-load's summary; the last lines give the server's peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${LOAD_SECONDS:-10}
prefill=${LOAD_PREFILL:-1000000}
read_events=${LOAD_READ_EVENTS:-$prefill}

cargo build --release -q -p metering-http --features postgres,redis --bin metering-server -p metering-benches --bin metering-load
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
source scripts/server.sh

load() { "$target/release/metering-load" --url "$SERVER_URL" --key "$SERVER_KEY" "$@" | sed -n 1p; }

# Writes `count` backfill events in batches of 1,000 (4 connections), untimed.
fill() {
  local count=$1
  [ "$count" -gt 0 ] || return 0
  echo "filling $count backfill events..."
  load --scenario batch --connections 4 --batch-size 1000 --timestamps backfill \
    --max-requests $((count / 1000)) --seconds 36000
}

# The table's rows against the server started last; `$1` names the store.
run_rows() {
  local label=$1 stored=$prefill
  echo "== $label: $(nproc) cores; client on the same machine; store holds $prefill events"
  echo "-- single-event POST, 30-day timestamps (32 connections)"
  load --scenario single --connections 32 --seconds "$seconds" --timestamps backfill
  echo "-- single-event POST, live timestamps (32 connections)"
  load --scenario single --connections 32 --seconds "$seconds" --timestamps live
  echo "-- single-event POST, live timestamps, random UUIDv4 ids (32 connections)"
  load --scenario single --connections 32 --seconds "$seconds" --timestamps live --uuid-ids
  echo "-- batch POST of 1,000, 30-day timestamps (4 connections)"
  load --scenario batch --connections 4 --batch-size 1000 --seconds "$seconds" --timestamps backfill
  echo "-- batch POST of 1,000, live timestamps (4 connections)"
  load --scenario batch --connections 4 --batch-size 1000 --seconds "$seconds" --timestamps live
  curl -fsS -X PUT "$SERVER_URL/v1/meter/quotas" -H "x-api-key: $SERVER_KEY" -H 'content-type: application/json' \
    -d '{"tenant_id":"*","resource":"billing","feature":"invoice_generate","limit":1000000000,"period":"monthly"}' >/dev/null
  echo "-- validate (32 connections)"
  load --scenario validate --connections 32 --seconds "$seconds"
  if [ "$read_events" -gt "$stored" ]; then
    fill $((read_events - stored))
  fi
  echo "-- reads on a store of about $read_events events"
  echo "-- GET events for one tenant, page_size 50, with total (32 connections)"
  load --scenario list --connections 32 --seconds "$seconds"
  echo "-- aggregates, 30 days daily by tenant_id,resource: one connection, then 32"
  load --scenario aggregate --connections 1 --seconds "$seconds"
  load --scenario aggregate --connections 32 --seconds "$seconds"
  echo "-- mixed: single-event POSTs (32 connections) while 8 connections query aggregates"
  load --scenario aggregate --connections 8 --seconds $((seconds + 2)) >"$work/mixed-aggregates" &
  local readers=$!
  sleep 1
  load --scenario single --connections 32 --seconds "$seconds" --timestamps live
  wait "$readers"
  sed 's/^/   aggregates meanwhile: /' "$work/mixed-aggregates"
}

start_server --store "sqlite://$work/realistic.db"
watch_rss "$SERVER_PID" "$work/peak_kb-sqlite"
sqlite_pid=$SERVER_PID
fill "$prefill"
run_rows "metering-server $(git rev-parse --short HEAD 2>/dev/null || echo '?') on SQLite"
echo "SQLite server peak RSS: $(peak_mib "$work/peak_kb-sqlite") MiB; database $(du -h "$work/realistic.db" | cut -f1)"
kill "$sqlite_pid" 2>/dev/null || true

if [ -n "${LOAD_POSTGRES_URL:-}" ]; then
  schema="bench_realistic_$$"
  sep='?'; case "$LOAD_POSTGRES_URL" in *\?*) sep='&' ;; esac
  start_server --store "${LOAD_POSTGRES_URL}${sep}schema=$schema" \
    --quota-cache "${LOAD_REDIS_URL:-memory://}?key_prefix=$schema:"
  watch_rss "$SERVER_PID" "$work/peak_kb-pg"
  pg_pid=$SERVER_PID
  fill "$prefill"
  run_rows "metering-server on PostgreSQL + ${LOAD_REDIS_URL:+Redis}${LOAD_REDIS_URL:-memory cache}"
  echo "PostgreSQL server peak RSS: $(peak_mib "$work/peak_kb-pg") MiB"
  kill "$pg_pid" 2>/dev/null || true
  psql "$LOAD_POSTGRES_URL" -qc "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1 || true
fi
