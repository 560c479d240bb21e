# Sourced by scripts and benchmarks: runs the release `metering-server` in the background
# on a free local port with a fresh admin key, and stops it when the calling shell exits.
#
#   source scripts/server.sh
#   start_server --store "sqlite://$dir/x.db" [--demo]   # any `serve` options
#   curl "$SERVER_URL/v1/meter/health" -H "x-api-key: $SERVER_KEY"
#
# Sets SERVER_URL, SERVER_KEY, SERVER_PID and SERVER_LOG (each call starts one more server). Build the binary first
# (`cargo build --release -p metering-http --bin metering-server`).

start_server() {
  local target=${CARGO_TARGET_DIR:-target}
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  SERVER_URL="http://127.0.0.1:$port"
  SERVER_KEY="mk_local_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  SERVER_LOG=$(mktemp)
  METERING_ADMIN_KEY="$SERVER_KEY" "$target/release/metering-server" serve \
    --bind "127.0.0.1:$port" "$@" >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  SERVER_PIDS="${SERVER_PIDS:-} $SERVER_PID"
  trap 'for p in $SERVER_PIDS; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done' EXIT
  for _ in $(seq 1 600); do
    curl -fsS "$SERVER_URL/v1/meter/health" >/dev/null 2>&1 && return 0
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "metering-server exited:" >&2
      cat "$SERVER_LOG" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "metering-server did not answer within 60 s:" >&2
  cat "$SERVER_LOG" >&2
  return 1
}

# Samples the RSS of process `$1` every 200 ms in the background, keeping its peak (KiB) in
# file `$2`; `peak_mib FILE` prints that peak in MiB.
watch_rss() {
  local pid=$1 file=$2
  (
    peak=0
    while kill -0 "$pid" 2>/dev/null; do
      rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      if [ "${rss:-0}" -gt "$peak" ]; then peak=$rss; echo "$peak" >"$file"; fi
      sleep 0.2
    done
  ) &
}

peak_mib() {
  echo $(( $(cat "$1" 2>/dev/null || echo 0) / 1024 ))
}
