#!/usr/bin/env bash
# The added cost per call of the Python `@meter` decorator in batch mode (see
# benches/README.md, "Python decorator"). Builds the release server and the wheel, installs
# the wheel into a virtual environment under target/, and runs benches/python/decorator_cost.py
# against the server on a fresh SQLite store.
#
#   benches/python_decorator.sh            # BENCH_ROUNDS, BENCH_ROUND_CALLS to change the run
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/server.sh

target=${CARGO_TARGET_DIR:-target}
cargo build --release -p metering-http --bin metering-server
venv="$target/bench-python-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "maturin>=1.9,<2"
rm -rf "$target/bench-wheels"
"$venv/bin/maturin" build --release -m metering-py/Cargo.toml -o "$target/bench-wheels"
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall "$(ls "$target"/bench-wheels/metering-*.whl)"

work=$(mktemp -d)
start_server --store "sqlite://$work/bench.db"
"$venv/bin/python" benches/python/decorator_cost.py "$SERVER_URL" "$SERVER_KEY"
