#!/usr/bin/env bash
# What a meter quota check costs: the release `metering-server` on SQLite (and PostgreSQL
# with LOAD_POSTGRES_URL), one tenant holding LOAD_TENANT_EVENTS events (default 100,000)
# in the current month, each with metadata (a user id among 5,000, a model, tokens), among
# other tenants' events. A check recounts the tenant's events of the period, so its cost
# grows with them; this prints the latency of sequential checks, for a count meter, a sum
# over a metadata value and a unique count, with and without an event to consume.
#
#   benches/meter_quotas.sh
#   LOAD_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test benches/meter_quotas.sh
set -euo pipefail
cd "$(dirname "$0")/.."

events=${LOAD_TENANT_EVENTS:-100000}
checks=${LOAD_CHECKS:-40}

cargo build --release -q -p metering-http --features postgres,redis --bin metering-server
work=$(mktemp -d)
source scripts/server.sh

run() {
  local label=$1
  echo "== $label: $(nproc) cores; client on the same machine; $events events of the tenant"
  python3 - "$SERVER_URL" "$SERVER_KEY" "$events" "$checks" <<'PY'
import json, random, statistics, sys, time, urllib.request
from datetime import datetime, timezone

url, key, events, checks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + "/v1/meter" + path, data=data, method=method,
                                 headers={"x-api-key": key, "content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")

now = datetime.now(timezone.utc)
month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
span = (now - month).total_seconds()
rng = random.Random(7)
def event(tenant, i):
    at = month.timestamp() + rng.random() * span
    return {"tenant_id": tenant, "resource": "ai", "feature": "chat", "id": f"{tenant}-{i}",
            "timestamp": datetime.fromtimestamp(at, timezone.utc).isoformat().replace("+00:00", "Z"),
            "metadata": {"user": f"u{rng.randrange(5000)}", "model": rng.choice(["o3", "mini"]),
                         "tokens": rng.randrange(1, 4000)}}
started = time.time()
for tenant, n in [("big", events), ("other-a", events // 4), ("other-b", events // 4)]:
    for start in range(0, n, 1000):
        call("POST", "/events", {"events": [event(tenant, i) for i in range(start, min(n, start + 1000))]})
print(f"filled in {time.time() - started:.0f} s")
meters = {"calls": {"aggregation": "count"},
          "tokens": {"aggregation": "sum", "value": "metadata.tokens"},
          "users": {"aggregation": "unique_count", "value": "metadata.user"}}
for k, spec in meters.items():
    call("PUT", f"/meters/{k}", spec)
    call("PUT", "/quotas", {"tenant_id": "*", "meter": k, "limit": 10**12, "period": "monthly"})
for k in meters:
    for consume in (False, True):
        took = []
        for i in range(checks):
            body = {"tenant_id": "big", "meter": k}
            if consume:
                body.update(consume=True, event={"resource": "ai", "feature": "chat", "id": f"q-{k}-{i}",
                                                 "metadata": {"user": "u1", "model": "o3", "tokens": 5}})
            t = time.perf_counter()
            d = call("POST", "/validate", body)
            took.append((time.perf_counter() - t) * 1000)
            assert d["allowed"], d
        took.sort()
        print(f"{k:>6} {'consume' if consume else 'check  '}: p50 {statistics.median(took):7.1f} ms, "
              f"p90 {took[int(len(took) * 0.9)]:7.1f} ms, value {d['current_usage']}")
PY
}

start_server --store "sqlite://$work/mq.db"
run "SQLite"
if [ -n "${LOAD_POSTGRES_URL:-}" ]; then
  schema="bench_mq_$$"
  start_server --store "${LOAD_POSTGRES_URL}?schema=$schema"
  run "PostgreSQL"
  psql "$LOAD_POSTGRES_URL" -qc "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null
fi
