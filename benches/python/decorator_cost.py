"""The added cost of `@meter` per call in batch mode, in microseconds.

Times a plain function and the same function under `@meter` (batch transport, a real
`metering-server`), in rounds of ROUND_CALLS calls; between rounds (not timed) the client is
flushed, so the buffer never fills and nothing is dropped. Every event is checked to have
reached the server. Prints one line per variant: the median per-call time over the rounds,
and the added cost (decorated minus plain).

    python decorator_cost.py URL KEY
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

from metering import MeteringClient, meter

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
ROUND_CALLS = int(os.environ.get("BENCH_ROUND_CALLS", "50000"))


def per_call_us(call, client=None) -> float:
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for i in range(ROUND_CALLS):
            call(i)
        samples.append((time.perf_counter_ns() - start) / ROUND_CALLS / 1000)
        if client is not None:
            client.flush(timeout=120)
    return statistics.median(samples)


def per_call_async_us(call, client=None) -> float:
    async def round_() -> float:
        start = time.perf_counter_ns()
        for i in range(ROUND_CALLS):
            await call(i)
        return (time.perf_counter_ns() - start) / ROUND_CALLS / 1000

    samples = []
    for _ in range(ROUNDS):
        samples.append(asyncio.run(round_()))
        if client is not None:
            client.flush(timeout=120)
    return statistics.median(samples)


def main() -> None:
    url, key = sys.argv[1], sys.argv[2]
    client = MeteringClient(url, key, "batch", batch_size=1000, batch_interval_seconds=0.2)
    tenants = [f"org_{n:03d}" for n in range(50)]

    def plain(tenant_id: str, n: int) -> int:
        return n

    metered = meter("api.v1.invoices", "create", transport=client)(plain)
    with_metadata = meter(
        "api.v1.invoices", "create", metadata={"plan": "pro", "region": "eu-west-1"}, transport=client
    )(plain)

    class Service:
        @meter("api.v1.invoices", "create", transport=client)
        def handle(self, user: str, organization_id: str, n: int) -> int:
            return n

        def handle_plain(self, user: str, organization_id: str, n: int) -> int:
            return n

    async def plain_async(tenant_id: str, n: int) -> int:
        return n

    metered_async = meter("api.v1.invoices", "create", transport=client)(plain_async)
    service = Service()

    rows = []
    base = per_call_us(lambda i: plain(tenants[i % 50], i))
    rows.append(("sync function, tenant_id positional", base, per_call_us(lambda i: metered(tenants[i % 50], i), client)))
    rows.append(
        ("sync function, tenant_id keyword", per_call_us(lambda i: plain(tenant_id=tenants[i % 50], n=i)),
         per_call_us(lambda i: metered(tenant_id=tenants[i % 50], n=i), client))
    )
    rows.append(("sync function, static metadata", base, per_call_us(lambda i: with_metadata(tenants[i % 50], i), client)))
    rows.append(
        ("method, organization_id (4th rule)", per_call_us(lambda i: service.handle_plain("u", tenants[i % 50], i)),
         per_call_us(lambda i: service.handle("u", tenants[i % 50], i), client))
    )
    rows.append(
        ("async function", per_call_async_us(lambda i: plain_async(tenants[i % 50], i)),
         per_call_async_us(lambda i: metered_async(tenants[i % 50], i), client))
    )
    stats = client.close()
    print(f"{ROUNDS} rounds of {ROUND_CALLS} calls each; median per call")
    print(f"{'variant':40} {'plain us':>9} {'@meter us':>10} {'added us':>9}")
    for name, plain_us, metered_us in rows:
        print(f"{name:40} {plain_us:9.3f} {metered_us:10.3f} {metered_us - plain_us:9.3f}")
    print(f"events: sent {stats.sent}, dropped {stats.dropped}, rejected {stats.rejected}")
    expected = 5 * ROUNDS * ROUND_CALLS
    if stats.sent != expected or stats.dropped or stats.rejected:
        sys.exit(f"expected {expected} events delivered, got {stats}")


if __name__ == "__main__":
    main()
