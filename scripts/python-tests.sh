#!/usr/bin/env bash
# The Python package's tests: builds the `metering` wheel with maturin (installed from PyPI
# into a fresh virtual environment), installs it with its test extras, checks the type stubs
# against the built module (mypy's stubtest) and the package with `mypy --strict`, and runs
# pytest against the release `metering-server` ($METERING_SERVER_BIN, else the one in
# target/).
#
#   scripts/python-tests.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
export METERING_SERVER_BIN=${METERING_SERVER_BIN:-$PWD/$target/release/metering-server}
if [ ! -x "$METERING_SERVER_BIN" ]; then
  echo "build the server first: cargo build --release -p metering-http --bin metering-server" >&2
  exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "python3 is required for the Python package's tests (apt-get install python3 python3-venv)" >&2
  exit 1
fi

venv="$target/python-venv"
wheels="$target/wheels"
rm -rf "$venv" "$wheels"
if ! python3 -m venv "$venv"; then
  echo "python3 cannot make a virtual environment (apt-get install python3-venv)" >&2
  exit 1
fi
"$venv/bin/pip" install -q --disable-pip-version-check "maturin>=1.9,<2"
"$venv/bin/maturin" build --release -m metering-py/Cargo.toml -o "$wheels"
wheel=$(ls "$wheels"/metering-*.whl)
"$venv/bin/pip" install -q --disable-pip-version-check "$wheel[test]"
# The type stubs match the native module as built, and the package type-checks strictly.
"$venv/bin/python" -m mypy.stubtest metering._native
"$venv/bin/python" -m mypy --strict --no-incremental metering-py/python/metering
# The tests import the installed package, never the sources next to them.
cd metering-py
"../$venv/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
