#!/usr/bin/env bash
# First load of the dashboard: the release `metering-server` with the demo month (50
# tenants, 30 days), and Debian's chromium through playwright-core opening the overview
# with an empty browser cache, several times per range. Prints the time until the overview
# is interactive with its data (see ui/e2e/first-load.mjs).
#
#   benches/dashboard.sh                 # 7 runs per range
#   FIRST_LOAD_RUNS=15 benches/dashboard.sh
set -euo pipefail
cd "$(dirname "$0")/.."

command -v chromium >/dev/null || { echo "chromium is missing: apt-get install -y chromium" >&2; exit 1; }
cargo build --release -q -p metering-http --bin metering-server
[ -d ui/node_modules ] || npm --prefix ui ci --no-audit --no-fund
source scripts/server.sh
work=$(mktemp -d)
start_server --demo --store "sqlite://$work/dashboard.db"
grep -a "Demo data loaded" "$SERVER_LOG" || true
echo "metering-server $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, $(chromium --version 2>/dev/null)"
echo "JS bundle: $(cat ui/dist/assets/*.js | gzip -9 | wc -c | awk '{printf "%.0f KB gzipped", $1/1024}')"
METERING_E2E_URL="$SERVER_URL" METERING_E2E_KEY="$SERVER_KEY" node ui/e2e/first-load.mjs
