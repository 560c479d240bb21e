"""Nothing is lost or counted twice while the server crashes: 5,000 events in batch mode,
the server SIGKILLed and restarted twice while they are sent."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path

from metering import MeteringClient

from conftest import Server

EVENTS = 5_000


def test_batch_mode_delivers_exactly_once_across_two_server_crashes(tmp_path: Path, tenant: str) -> None:
    server = Server(f"sqlite://{tmp_path / 'metering.db'}", tmp_path / "server.log")
    server.start()
    client = MeteringClient(
        server.url,
        server.key,
        "batch",
        batch_size=100,
        batch_interval_seconds=0.05,
        retry_max_attempts=3,
        timeout=2,
        spill_path=tmp_path / "spill.db",
    )
    done = threading.Event()

    def produce() -> None:
        # About 4 seconds of steady traffic, so both crashes land mid-stream.
        for i in range(1, EVENTS + 1):
            client.record_event(tenant, "api.v1.invoices", "create", i, {"n": i})
            if i % 50 == 0:
                time.sleep(0.04)
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    downtime = []
    try:
        for _ in range(2):
            time.sleep(1.0)
            server.kill()
            down = time.monotonic()
            time.sleep(0.7)
            server.start()
            downtime.append(time.monotonic() - down)
        producer.join(timeout=120)
        assert done.is_set(), "the producer did not finish"
        deadline = time.monotonic() + 120
        while True:
            stats = client.flush(timeout=10)
            if stats.buffered == 0 and stats.pending_spill == 0:
                break
            assert time.monotonic() < deadline, stats
        stats = client.close()

        events = server.events(tenant)
        print(
            f"\n{EVENTS} events, server down {', '.join(f'{d:.2f} s' for d in downtime)}: "
            f"stored {len(events)}, {stats}"
        )
        assert len(events) == EVENTS
        assert len({e["id"] for e in events}) == EVENTS
        assert sorted(e["metadata"]["n"] for e in events) == list(range(1, EVENTS + 1))
        assert sum(Decimal(str(e["quantity"])) for e in events) == EVENTS * (EVENTS + 1) // 2
        assert stats.sent >= EVENTS and stats.dropped == 0 and stats.rejected == 0
        # The crashes were felt: requests failed and were retried.
        assert stats.retried > 0, stats
    finally:
        client.close()
        server.stop()
