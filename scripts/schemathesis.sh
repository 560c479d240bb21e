#!/usr/bin/env bash
# Fuzzes the release `metering-server` against its own OpenAPI document with Schemathesis:
# every check (positive data must be accepted, negative data refused, answers must match
# the document), every phase (examples, coverage, fuzzing, stateful), a fixed seed and a
# bounded number of examples per operation, on a fresh SQLite store. Then checks that the
# admin key the run used still answers, and stops the server.
#
#   scripts/schemathesis.sh                                   # the test command's budget
#   METERING_SCHEMATHESIS_EXAMPLES=500 METERING_SCHEMATHESIS_SEED=7 scripts/schemathesis.sh
#
# Schemathesis comes from PyPI into a virtual environment (METERING_SCHEMATHESIS_VENV,
# default target/schemathesis-venv). The release binary is $METERING_SERVER_BIN when set
# (scripts/test sets it), else target/release/metering-server (build it first).
set -euo pipefail
cd "$(dirname "$0")/.."

examples=${METERING_SCHEMATHESIS_EXAMPLES:-25}
seed=${METERING_SCHEMATHESIS_SEED:-20251120}
target=${CARGO_TARGET_DIR:-target}
venv=${METERING_SCHEMATHESIS_VENV:-$target/schemathesis-venv}

command -v python3 >/dev/null 2>&1 || { echo "schemathesis: python3 is required" >&2; exit 1; }
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv" || { echo "schemathesis: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 1; }
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4,<5' ||
    { echo "schemathesis: installing Schemathesis from PyPI failed" >&2; exit 1; }
fi

# scripts/server.sh runs "$target/release/metering-server"; point it at METERING_SERVER_BIN.
if [ -n "${METERING_SERVER_BIN:-}" ]; then
  target=$(mktemp -d)
  mkdir -p "$target/release"
  ln -s "$METERING_SERVER_BIN" "$target/release/metering-server"
fi
source scripts/server.sh
work=$(mktemp -d)
# The guard against guessed keys answers 429 to an address after 30 failed
# authentications a minute, by design; the fuzzer's authentication checks send far more
# bad keys than that from one address, so this server runs without the guard.
CARGO_TARGET_DIR=$target start_server --store "sqlite://$work/schemathesis.db" --auth-failures-per-minute 0

# The id of the key the run authenticates with: the hooks never revoke it (see the file).
own_key_id=$(curl -fsS "$SERVER_URL/v1/meter/api-keys" -H "X-API-Key: $SERVER_KEY" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["api_keys"][0]["id"])')

# The hooks move values whose rules depend on the clock or on two values at once (event
# timestamps, key expiry, end_date after start_date, ...) into range before every request
# of every phase, and drop the failures that depend on stored data only; see the file.
started=$(date +%s)
status=0
METERING_SCHEMATHESIS_OWN_KEY_ID=$own_key_id SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$PWD/scripts" \
  "$venv/bin/st" run "$SERVER_URL/openapi.json" \
  --header "X-API-Key: $SERVER_KEY" \
  --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --mode all \
  --seed "$seed" \
  --max-examples "$examples" \
  --generation-database none \
  --request-timeout 30 \
  --no-color || status=$?
echo "schemathesis: $(($(date +%s) - started)) s, seed $seed, $examples examples per operation"

# The run may revoke keys, never the last admin key: the one it used must still work.
code=$(curl -s -o /dev/null -w '%{http_code}' "$SERVER_URL/v1/meter/api-keys" -H "X-API-Key: $SERVER_KEY")
if [ "$code" != 200 ]; then
  echo "schemathesis: the admin key answers $code after the run, expected 200" >&2
  status=1
fi
if [ "$status" != 0 ]; then
  echo "schemathesis: FAILED (server log: $SERVER_LOG)" >&2
fi
exit "$status"
