"""`MeteringClient`: every transport, exact quantities, settings, stats, embedded mode."""

from __future__ import annotations

import asyncio
import json
import logging
import datetime as dt
from decimal import Decimal

import pytest

import metering
from metering import EventRejected, MeteringClient, MeteringError

from conftest import Server, wait_for


def quantities(server: Server, tenant: str) -> list:
    return sorted(str(e["quantity"]) for e in server.events(tenant))


@pytest.mark.parametrize("mode", ["batch", "async", "sync"])
def test_every_transport_stores_each_event_once(server: Server, tenant: str, mode: str) -> None:
    client = MeteringClient(server.url, server.key, mode, batch_interval_seconds=0.05)
    for i in range(25):
        assert client.record_event(tenant, "api.v1.invoices", "create", i + 1) is True
    report = client.flush(timeout=30)
    assert report.sent == 25, report
    assert report.dropped == 0 and report.rejected == 0
    assert server.event_count(tenant) == 25
    assert quantities(server, tenant) == sorted(str(i + 1) for i in range(25))
    client.close()


def test_record_event_sync_waits_for_the_server(server: Server, tenant: str) -> None:
    client = MeteringClient(server.url, server.key, "batch")
    # Batch mode, yet the sync call is stored before it returns.
    assert client.record_event_sync(tenant, "api", "call", 2, {"user": "u_1"}) is True
    events = server.events(tenant)
    assert [(e["quantity"], e["metadata"]) for e in events] == [(2, {"user": "u_1"})]
    client.close()


def test_record_event_async_does_not_block_the_loop(server: Server, tenant: str) -> None:
    client = MeteringClient(server.url, server.key)

    async def main() -> list:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.ensure_future(ticker())
        sent = await asyncio.gather(
            *(client.record_event_async(tenant, "api", "call", 1) for _ in range(20))
        )
        task.cancel()
        assert ticks > 0
        return sent

    assert asyncio.run(main()) == [True] * 20
    assert server.event_count(tenant) == 20
    client.close()


def test_quantities_are_exact(server: Server, tenant: str) -> None:
    client = MeteringClient(server.url, server.key, "batch", batch_interval_seconds=0.05)
    for quantity in (0.1, 0.2, Decimal("0.000000001"), "999999999999999.999999999", 1e-05, 7):
        client.record_event(tenant, "storage", "gb", quantity)
    client.flush(timeout=30)
    stored = sorted(Decimal(str(e["quantity"])) for e in server.events(tenant))
    assert stored == sorted(
        Decimal(x) for x in ("0.1", "0.2", "0.000000001", "999999999999999.999999999", "0.00001", "7")
    )
    response = server.request(
        "GET",
        "/v1/meter/aggregates",
        params={
            "window_type": "monthly",
            "start_date": "2000-01-01T00:00:00Z",
            "end_date": "2100-01-01T00:00:00Z",
            "tenant_id": tenant,
            "group_by": "",
        },
    )
    assert response.status_code == 200, response.text
    summary = json.loads(response.text, parse_float=Decimal)["summary"]
    assert str(summary["total_quantity"]) == "1000000000000007.30001"
    client.close()


def test_timestamps_ids_and_metadata(server: Server, tenant: str) -> None:
    client = MeteringClient(server.url, server.key, "sync")
    naive = dt.datetime.utcnow().replace(microsecond=123456) - dt.timedelta(hours=3)
    assert client.record_event(tenant, "api", "call", 1, {"k": [1, "two"]}, naive, "req-1")
    # The same id again is stored once.
    assert client.record_event(tenant, "api", "call", 1, None, naive, "req-1")
    (event,) = server.events(tenant)
    assert event["id"] == "req-1"
    assert event["metadata"] == {"k": [1, "two"]}
    assert event["timestamp"] == naive.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    client.close()


def test_bad_input_is_refused_clearly(server: Server, tenant: str) -> None:
    client = MeteringClient(server.url, server.key, "batch", batch_interval_seconds=0.05)
    with pytest.raises(ValueError, match="quantity"):
        client.record_event(tenant, "api", "call", True)
    with pytest.raises(ValueError, match="quantity"):
        client.record_event(tenant, "api", "call", -1)
    with pytest.raises(ValueError, match="quantity"):
        client.record_event(tenant, "api", "call", "1.0000000001")
    with pytest.raises(ValueError, match="timestamp"):
        client.record_event(tenant, "api", "call", 1, timestamp="yesterday")
    with pytest.raises(EventRejected, match="quantity"):
        client.record_event_sync(tenant, "api", "call", 0)
    # In a batch, the server refuses only the bad event; the others are stored.
    client.record_event(tenant, "api", "call", 1)
    client.record_event(tenant, "", "call", 1)
    client.record_event(tenant, "api", "call", 2)
    stats = client.flush(timeout=30)
    assert stats.rejected == 2  # the sync one and the batched one
    assert server.event_count(tenant) == 2
    client.close()


def test_settings_come_from_the_environment(env: Server, tenant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERING_TRANSPORT_MODE", "sync")
    monkeypatch.setenv("METERING_BATCH_SIZE", "7")
    monkeypatch.setenv("METERING_BATCH_INTERVAL_SECONDS", "0.25")
    monkeypatch.setenv("METERING_RETRY_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("METERING_TIMEOUT", "2.5")
    client = MeteringClient()
    assert (client.api_url, client.api_key) == (env.url, env.key)
    assert client.transport_mode == "sync"
    assert (client.batch_size, client.batch_interval_seconds) == (7, 0.25)
    assert (client.retry_max_attempts, client.timeout) == (5, 2.5)
    assert client.record_event(tenant, "api", "call") is True
    assert env.event_count(tenant) == 1
    assert env.key not in repr(client)
    client.close()
    monkeypatch.setenv("METERING_TRANSPORT_MODE", "carrier-pigeon")
    with pytest.raises(MeteringError, match="transport mode"):
        MeteringClient()
    monkeypatch.setenv("METERING_TRANSPORT_MODE", "batch")
    monkeypatch.setenv("METERING_BATCH_SIZE", "many")
    with pytest.raises(MeteringError, match="batch_size"):
        MeteringClient()


def test_a_wrong_key_keeps_the_event_waiting_instead_of_losing_it(server: Server, tenant: str) -> None:
    # 401 is a deployment problem someone will fix: the event is queued (and spilled, with
    # a spill file) rather than thrown away, and the call says it was not stored yet.
    client = MeteringClient(server.url, "mk_wrong", "sync", retry_max_attempts=1)
    assert client.record_event(tenant, "api", "call") is False
    assert client.stats().retried >= 1
    assert server.event_count(tenant) == 0
    client.close()


def test_stats_count_spilled_and_replayed_events(server: Server, tenant: str, tmp_path) -> None:
    # Nothing listens on this port: the batch is retried, then spilled to the file.
    from conftest import free_port

    down = f"http://127.0.0.1:{free_port()}"
    spill = tmp_path / "spill.db"
    client = MeteringClient(
        down, server.key, "batch", batch_interval_seconds=0.05, retry_max_attempts=1, spill_path=spill
    )
    for _ in range(10):
        client.record_event(tenant, "api", "call")
    wait_for(lambda: client.stats().spilled == 10)
    assert client.stats().pending_spill == 10
    assert client.stats().retried >= 10
    client.close()
    # The next run, pointed at a live server, replays them.
    again = MeteringClient(server.url, server.key, "batch", spill_path=spill)
    wait_for(lambda: again.stats().replayed == 10)
    assert server.event_count(tenant) == 10
    assert again.close().pending_spill == 0


def test_without_a_spill_file_undeliverable_events_are_counted_dropped_and_logged(
    tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    from conftest import free_port

    client = MeteringClient(
        f"http://127.0.0.1:{free_port()}", "mk_secret_key", "batch", batch_interval_seconds=0.05, retry_max_attempts=0
    )
    with caplog.at_level(logging.WARNING, logger="metering"):
        client.record_event(tenant, "api", "call")
        wait_for(lambda: client.stats().dropped == 1)
        client.close()
    # The Rust client's messages reach Python's logging, under `metering.`.
    dropped = [r for r in caplog.records if r.name.startswith("metering.metering_client")]
    assert dropped and dropped[0].levelno >= logging.WARNING, caplog.records
    assert "mk_secret_key" not in caplog.text


def test_after_close_events_are_dropped_and_counted(server: Server, tenant: str) -> None:
    client = MeteringClient(server.url, server.key)
    client.close()
    client.record_event(tenant, "api", "call")
    assert client.stats().dropped == 1
    with MeteringClient(server.url, server.key) as scoped:
        scoped.record_event(tenant, "api", "call")
    assert scoped.stats().sent == 1
    assert server.event_count(tenant) == 1


def test_embedded_mode_needs_no_server(tmp_path, tenant: str) -> None:
    path = tmp_path / "usage.db"
    client = MeteringClient.embedded(path)
    assert client.embedded_store
    for quantity in (1, 2, "0.5"):
        client.record_event(tenant, "reports", "export", quantity)
    assert client.record_event_sync(tenant, "reports", "export", 4) is True
    assert client.flush().sent == 4
    assert client.check_quota(tenant, "reports", "export").allowed
    client.close()
    # The same file, served by metering-server afterwards, holds them.
    served = Server(f"sqlite://{path}", tmp_path / "server.log")
    served.start()
    try:
        assert sorted(str(e["quantity"]) for e in served.events(tenant)) == ["0.5", "1", "2", "4"]
    finally:
        served.stop()
    # METERING_API_URL may name the file instead of a server.
    other = MeteringClient(api_url=f"sqlite://{path}", transport_mode="sync")
    assert other.record_event(tenant, "reports", "export") is True
    other.close()


def test_module_level_flush_and_stats(env: Server, tenant: str) -> None:
    metering.get_client().record_event(tenant, "api", "call")
    assert metering.flush(timeout=30).sent == 1
    assert metering.stats().sent == 1
    assert env.event_count(tenant) == 1


def test_a_forked_child_records_with_clients_of_its_own(env: Server, tenant: str) -> None:
    # As under gunicorn --preload or multiprocessing's fork: the parent made its shared client
    # (and runtime threads, which a child does not inherit) before forking.
    import os

    parent = metering.get_client()
    parent.record_event(tenant, "api", "parent")
    pid = os.fork()
    if pid == 0:  # the child: exit with 0 only if its events were delivered
        code = 1
        try:
            child = metering.get_client()
            code = 0 if child is not parent else 2
            child.record_event(tenant, "api", "child")
            own = MeteringClient(env.url, env.key, "sync")
            own.record_event(tenant, "api", "child_sync")
            if metering.flush(timeout=30).sent != 1:
                code = 3
            own.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    metering.flush(timeout=30)
    assert sorted(e["feature"] for e in env.events(tenant)) == ["child", "child_sync", "parent"]
