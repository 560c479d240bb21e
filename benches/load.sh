#!/usr/bin/env bash
# Load benchmark of the release `metering-server` on the default SQLite store, with the
# `metering-load` client on the same machine, on the easy workload (about 200 series, live
# timestamps, small metadata, an almost empty store); `benches/realistic.sh` runs the
# realistic one. Prints one line per scenario and the server's
# peak resident memory.
#
#   benches/load.sh                          # single, batch, validate (10 s each)
#   LOAD_SEED_EVENTS=10000000 benches/load.sh  # also seed 30 days of events and time aggregates
#
#   LOAD_CRITERION=1 benches/load.sh           # also run the store's own batch ingest bench
#
# Settings: LOAD_SECONDS (per scenario, default 10), LOAD_CONNECTIONS (default 32),
# LOAD_SEED_EVENTS (default 0: no aggregate scenario), LOAD_DB (reuse a database file),
# LOAD_AGGREGATE_DB (time aggregates on a copy of this seeded database, e.g.
# target/tmp/sqlite-bench-10000000-v2.db from `cargo bench --bench sqlite`),
# LOAD_CRITERION (default 0). The server runs with its defaults (group commit on).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${LOAD_SECONDS:-10}
connections=${LOAD_CONNECTIONS:-32}
seed=${LOAD_SEED_EVENTS:-0}

# One invocation for both, so features unify the same way every time and nothing rebuilds.
cargo build --release -q -p metering-http --bin metering-server -p metering-benches --bin metering-load
target=${CARGO_TARGET_DIR:-target}

work=$(mktemp -d)
db=${LOAD_DB:-$work/load.db}
source scripts/server.sh
start_server --store "sqlite://$db"
server=$SERVER_PID url=$SERVER_URL key=$SERVER_KEY

watch_rss "$server" "$work/peak_kb"

# The human line only (sed reads everything, so the client never writes into a closed pipe).
load() { "$target/release/metering-load" --url "$url" --key "$key" --workload easy "$@" | sed -n 1p; }

echo "metering-server $(git rev-parse --short HEAD 2>/dev/null || echo '?') on SQLite, $(nproc) cores; client on the same machine"
load --scenario single --connections "$connections" --seconds "$seconds"
load --scenario batch --connections 4 --batch-size 1000 --seconds "$seconds"
curl -fsS -X PUT "$url/v1/meter/quotas" -H "x-api-key: $key" -H 'content-type: application/json' \
  -d '{"tenant_id":"*","resource":"billing","feature":"invoice_generate","limit":1000000000,"period":"monthly"}' >/dev/null
load --scenario validate --connections "$connections" --seconds "$seconds"
if [ "$seed" -gt 0 ]; then
  echo "seeding $seed events over 30 days..."
  load --scenario batch --connections 2 --batch-size 5000 --timestamps backfill --spread-days 30 \
    --max-requests $((seed / 5000)) --seconds 3600
  load --scenario aggregate --connections 4 --seconds "$seconds"
fi
if [ -n "${LOAD_AGGREGATE_DB:-}" ]; then
  # The 10-million-event database the SQLite criterion bench seeds (30 days from
  # LOAD_AGGREGATE_START, default 2025-10-01), served from a copy by a second server.
  cp "$LOAD_AGGREGATE_DB" "$work/aggregate.db"
  start_server --store "sqlite://$work/aggregate.db"
  for c in 1 4; do
    "$target/release/metering-load" --url "$SERVER_URL" --key "$SERVER_KEY" --scenario aggregate \
      --aggregate-start-unix "${LOAD_AGGREGATE_START:-1759276800}" --aggregate-days 30 \
      --connections "$c" --seconds "$seconds" | sed -n 1p | sed "s/^/$c connection(s): /"
  done
  echo "aggregate server peak RSS: $(( $(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status") / 1024 )) MB"
fi
if [ "${LOAD_CRITERION:-0}" = 1 ]; then
  echo "store's own batch ingest (criterion, sqlite_ingest/store_insert_events_1000):"
  # The sqlite bench also seeds a database for its query group; keep that one small here.
  METERING_BENCH_SQLITE_EVENTS=10000 cargo bench -q -p metering-benches --bench sqlite -- sqlite_ingest/store_insert_events_1000 2>&1 \
    | grep -A3 'store_insert_events_1000' | grep -E 'time:|thrpt:' || true
fi
echo "server peak RSS: $(peak_mib "$work/peak_kb") MiB; database $(du -h "$db" | cut -f1)"
