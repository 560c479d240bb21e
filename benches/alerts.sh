#!/usr/bin/env bash
# What alerting costs ingest: the release `metering-server` on a SQLite store already holding
# LOAD_PREFILL events (default 1,000,000, filled by `metering-fill --ordered`), with a default
# quota (`*`) on each of the 5 features of the realistic workload (thresholds at 50, 80 and
# 90 % of a monthly limit no tenant reaches, so every write is checked and none fires).
#
#   benches/alerts.sh
#
# Rows: batch ingest (1,000 per request, 4 connections) and single-event ingest (32
# connections), live timestamps, LOAD_SECONDS each (default 10); first with no webhook
# endpoint (writes are not watched), then with one endpoint registered (each write measures
# the usage of the quotas it moves in its own transaction: 250 tenant and feature pairs).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${LOAD_SECONDS:-10}
prefill=${LOAD_PREFILL:-1000000}

cargo build --release -q -p metering-http --features postgres,redis --bin metering-server -p metering-benches --bin metering-load --bin metering-fill
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
source scripts/server.sh

load() {
  "$target/release/metering-load" --url "$SERVER_URL" --key "$SERVER_KEY" --seconds "$seconds" "$@" | sed -n 1p
}
api() {
  curl -fsS -X "$1" "$SERVER_URL$2" -H "x-api-key: $SERVER_KEY" -H 'content-type: application/json' -d "$3" >/dev/null
}
rows() {
  echo "-- $1"
  load --scenario batch --connections 4 --batch-size 1000 --timestamps live
  load --scenario single --connections 32 --timestamps live
}

echo "filling $prefill events..."
"$target/release/metering-fill" --store "sqlite://$work/alerts.db" --events "$prefill" --ordered
start_server --store "sqlite://$work/alerts.db"
for f in 0 1 2 3 4; do
  api PUT /v1/meter/quotas "{\"tenant_id\": \"*\", \"feature\": \"feat_$f\", \"limit\": 1000000000000,
    \"period\": \"monthly\", \"thresholds\": [{\"percent\": 50}, {\"percent\": 80}, {\"percent\": 90}]}"
done
echo "== metering-server $(git rev-parse --short HEAD 2>/dev/null || echo '?') on SQLite, $prefill events; 2 cores, client on the same machine"
rows "no webhook endpoint"
# A receiver that answers 204 (nothing fires in this run, but the endpoint is real).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 - "$port" <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(204); self.end_headers()
    def log_message(self, *args): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
receiver=$!
trap 'kill $receiver 2>/dev/null || true; for p in $SERVER_PIDS; do kill "$p" 2>/dev/null || true; done' EXIT
api POST /v1/meter/webhooks "{\"url\": \"http://127.0.0.1:$port/hooks\"}"
sleep 1.5 # the server reads its alert setup at most once a second
rows "one webhook endpoint: every write watched"
rm -rf "$work"
