#!/usr/bin/env bash
# Instructions per request of the axum hello-world with and without `MeteringLayer`,
# counted by valgrind's callgrind over the whole process (server thread, batching client,
# load generator and batch sink; the last two cost the same in every variant, so the
# differences are what the layer and the client cost). Needs valgrind.
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
for variant in without_layer with_layer_noop_recorder with_layer; do
    out=$(valgrind --tool=callgrind --callgrind-out-file="$work/$variant.out" \
        "$bench" --bench "$variant" 2>"$work/$variant.log")
    served=$(sed -n 's/.*: \([0-9]*\) requests$/\1/p' <<<"$out")
    total=$(sed -n 's/^summary: \([0-9]*\)$/\1/p' "$work/$variant.out")
    per=$((total / served))
    if [ -z "$base" ]; then
        base=$per
        printf '%-26s %8d instructions per request (%d requests)\n' "$variant" "$per" "$served"
    else
        printf '%-26s %8d instructions per request (%d requests), %+d over the bare router\n' \
            "$variant" "$per" "$served" $((per - base))
    fi
done
