#!/usr/bin/env bash
# Instructions per request of the axum hello-world with and without `MeteringLayer`,
# counted by valgrind's callgrind over the whole process (server thread, the batching
# client's thread, load generator and batch sink; the last two cost the same in every
# variant, so the differences are what the layer and the client cost), and on the server
# thread alone (what the application's thread pays: the layer, and recording into the
# client's queue). Needs valgrind.
#
#   benches/layer_instructions.sh                 # 16,000 requests per variant
#   METERING_BENCH_REQUESTS=32000 benches/layer_instructions.sh
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
bench=$(cargo bench -p metering-benches --bench layer_instructions --no-run 2>&1 |
    sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
[ -x "$bench" ] || { echo "could not build the benchmark" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
base=""
server_base=""
for variant in without_layer with_layer_noop_recorder with_layer; do
    out=$(valgrind --tool=callgrind --separate-threads=yes \
        --callgrind-out-file="$work/$variant.out" \
        "$bench" --bench "$variant" 2>"$work/$variant.log")
    served=$(sed -n 's/.*: \([0-9]*\) requests$/\1/p' <<<"$out")
    # One file per thread: the process is their sum; the busiest is the server's thread.
    counts=$(cat "$work/$variant".out-* | sed -n 's/^summary: \([0-9]*\)$/\1/p')
    total=$(awk '{ s += $1 } END { print s }' <<<"$counts")
    server=$(sort -n <<<"$counts" | tail -1)
    per=$((total / served))
    server_per=$((server / served))
    if [ -z "$base" ]; then
        base=$per
        server_base=$server_per
        printf '%-26s %8d instructions per request, %d on the server thread (%d requests)\n' \
            "$variant" "$per" "$server_per" "$served"
    else
        printf '%-26s %8d instructions per request (%+d), %d on the server thread (%+d)\n' \
            "$variant" "$per" $((per - base)) "$server_per" $((server_per - server_base))
    fi
done
