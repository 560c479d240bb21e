"""Usage metering for Python services, with the Rust `metering` client inside.

A drop-in for the original metering library::

    from metering import MeteringClient, meter

    @meter("reports", "export")
    def export(tenant_id: str, report: str) -> bytes: ...

    client = MeteringClient(api_url="http://127.0.0.1:8000", api_key="mk_...")
    client.record_event("org_acme", "api", "call", quantity=3)

Batching, retries and delivery run on a Rust thread without the GIL. See `MeteringClient`
for the settings and their environment variables, `metering.middleware` for FastAPI and
Starlette, and `metering.flask` for Flask.
"""

from __future__ import annotations

from typing import Optional

from .client import (
    DEFAULT_API_URL,
    ClientStats,
    EventRejected,
    MeteringClient,
    MeteringError,
    Quantity,
    QuotaDecision,
    QuotaExceeded,
    get_client,
    set_client,
)
from .decorator import meter

__all__ = [
    "DEFAULT_API_URL",
    "ClientStats",
    "EventRejected",
    "MeteringClient",
    "MeteringError",
    "Quantity",
    "QuotaDecision",
    "QuotaExceeded",
    "flush",
    "get_client",
    "meter",
    "set_client",
    "stats",
]


def flush(timeout: Optional[float] = None) -> ClientStats:
    """Sends everything the shared client (the one `meter` uses) holds, and waits."""
    return get_client().flush(timeout)


def stats() -> ClientStats:
    """The shared client's counters: sent, retried, spilled, dropped..."""
    return get_client().stats()
