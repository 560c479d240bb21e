"""`meter`: sync and async functions, tenant rules, transports, enforcement."""

from __future__ import annotations

import asyncio
import logging

import pytest

from metering import MeteringClient, QuotaExceeded, meter

from conftest import Server


def batch_client(server: Server) -> MeteringClient:
    return MeteringClient(server.url, server.key, "batch", batch_interval_seconds=0.05)


def stored(server: Server, tenant: str) -> list:
    return sorted((e["resource"], e["feature"], str(e["quantity"])) for e in server.events(tenant))


def test_sync_function_records_after_it_returns(server: Server, tenant: str) -> None:
    client = batch_client(server)
    calls = []

    @meter("reports", "export", quantity=2, metadata={"plan": "pro"}, transport=client)
    def export(tenant_id: str, name: str) -> str:
        calls.append(name)
        return name.upper()

    assert export(tenant, "q3") == "Q3"
    assert export.__name__ == "export"
    client.flush(timeout=30)
    (event,) = server.events(tenant)
    assert (event["resource"], event["feature"], event["quantity"]) == ("reports", "export", 2)
    assert event["metadata"] == {"plan": "pro"}
    client.close()


def test_nothing_is_recorded_when_the_function_raises(server: Server, tenant: str) -> None:
    client = batch_client(server)

    @meter("reports", "export", transport=client)
    def fail(tenant_id: str) -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        fail(tenant)
    assert client.flush(timeout=30).sent == 0
    client.close()


def test_async_function(server: Server, tenant: str) -> None:
    client = batch_client(server)

    @meter("chat", "completion", quantity=lambda result: len(result), transport=client)
    async def complete(tenant_id: str, prompt: str) -> str:
        await asyncio.sleep(0)
        return prompt * 2

    async def main() -> list:
        return await asyncio.gather(*(complete(tenant, "ab") for _ in range(5)))

    assert asyncio.run(main()) == ["abab"] * 5
    assert asyncio.iscoroutinefunction(complete)
    client.flush(timeout=30)
    assert stored(server, tenant) == [("chat", "completion", "4")] * 5
    client.close()


@pytest.mark.parametrize("mode", ["sync", "async", "batch"])
def test_every_transport_by_name(env: Server, tenant: str, mode: str) -> None:
    @meter("api", "call", transport=mode)
    def handler(tenant_id: str) -> int:
        return 1

    @meter("api", "call_async", transport=mode)
    async def async_handler(tenant_id: str) -> int:
        return 1

    handler(tenant)
    asyncio.run(async_handler(tenant))
    from metering import get_client

    get_client(mode).flush(timeout=30)
    assert stored(env, tenant) == [("api", "call", "1"), ("api", "call_async", "1")]


def test_default_transport_comes_from_the_environment(env: Server, tenant: str) -> None:
    @meter("api", "call")
    def handler(tenant_id: str) -> None:
        return None

    handler(tenant_id=tenant)
    import metering

    metering.flush(timeout=30)
    assert env.event_count(tenant) == 1


def test_tenant_rules(server: Server, tenant: str) -> None:
    client = batch_client(server)
    found = []

    def recorded(feature: str) -> None:
        found.append(feature)

    @meter("t", "explicit", tenant_id=f"{tenant}-explicit", transport=client)
    def explicit(tenant_id: str) -> None: ...

    @meter("t", "positional", transport=client)
    def positional(user: str, tenant_id: str) -> None: ...

    @meter("t", "keyword", transport=client)
    def keyword(**kwargs: object) -> None: ...

    @meter("t", "tenant", transport=client)
    def by_tenant(tenant: str) -> None: ...

    @meter("t", "org", transport=client)
    def by_org(org_id: str) -> None: ...

    @meter("t", "organization", transport=client)
    def by_organization(organization_id: str) -> None: ...

    @meter("t", "order", transport=client)
    def order(organization_id: str, org_id: str, tenant: str, tenant_id: str) -> None: ...

    @meter("t", "unknown", transport=client)
    def nobody(user: str) -> None: ...

    class Service:
        @meter("t", "method", transport=client)
        def handle(self, tenant_id: str) -> None: ...

    explicit(f"{tenant}-ignored")
    positional("u", tenant)
    keyword(tenant_id=f"{tenant}-kw")
    by_tenant(f"{tenant}-tenant")
    by_org(org_id=f"{tenant}-org")
    by_organization(f"{tenant}-organization")
    order("d", "c", "b", f"{tenant}-first")
    nobody("u")
    Service().handle(f"{tenant}-method")
    client.flush(timeout=30)
    expect = {
        f"{tenant}-explicit": "explicit",
        tenant: "positional",
        f"{tenant}-kw": "keyword",
        f"{tenant}-tenant": "tenant",
        f"{tenant}-org": "org",
        f"{tenant}-organization": "organization",
        f"{tenant}-first": "order",
        f"{tenant}-method": "method",
    }
    for who, feature in expect.items():
        assert [e["feature"] for e in server.events(who)] == [feature], who
    assert "unknown" in [e["feature"] for e in server.events("unknown")]
    client.close()


def test_metering_never_raises_into_the_caller(server: Server, tenant: str, caplog: pytest.LogCaptureFixture) -> None:
    client = batch_client(server)

    @meter("api", "call", quantity="not a number", transport=client)
    def handler(tenant_id: str) -> str:
        return "ok"

    closed = batch_client(server)
    closed.close()

    @meter("api", "call", transport=closed)
    def after_close(tenant_id: str) -> str:
        return "still ok"

    with caplog.at_level(logging.WARNING, logger="metering"):
        assert handler(tenant) == "ok"
    assert "could not record" in caplog.text
    assert after_close(tenant) == "still ok"
    client.close()


def test_enforce_raises_quota_exceeded_with_the_decision(server: Server, tenant: str) -> None:
    client = MeteringClient(server.url, server.key, "sync")
    server.set_quota(tenant, "generate", 3)
    runs = []

    @meter("ai", "generate", enforce=True, transport=client)
    def generate(tenant_id: str) -> str:
        runs.append(1)
        return "done"

    assert [generate(tenant) for _ in range(3)] == ["done"] * 3
    with pytest.raises(QuotaExceeded) as refused:
        generate(tenant)
    assert len(runs) == 3
    decision = refused.value.decision
    assert not decision.allowed
    assert (decision.limit, decision.current_usage) == (3, 3)
    assert decision.reset_at is not None and decision.retry_after() >= 1
    assert refused.value.tenant_id == tenant
    assert server.event_count(tenant) == 3

    @meter("ai", "generate", enforce=True, transport=client)
    async def generate_async(tenant_id: str) -> str:
        return "done"

    with pytest.raises(QuotaExceeded):
        asyncio.run(generate_async(tenant))
    # Another tenant is not limited.
    assert asyncio.run(generate_async(f"{tenant}-other")) == "done"
    client.close()


def test_enforce_lets_the_call_run_when_the_check_cannot_be_made(tenant: str) -> None:
    from conftest import free_port

    client = MeteringClient(
        f"http://127.0.0.1:{free_port()}", "mk_x", "batch", retry_max_attempts=0, timeout=1
    )

    @meter("ai", "generate", enforce=True, transport=client)
    def generate(tenant_id: str) -> str:
        return "ran"

    assert generate(tenant) == "ran"
    client.close()
