"""`MeteringClient`: the original library's client, with the Rust client inside."""

from __future__ import annotations

import asyncio
import atexit
import datetime as _dt
import json
import logging
import os
import threading
import weakref
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from . import _native
from ._native import EventRejected, MeteringError

__all__ = [
    "ClientStats",
    "EventRejected",
    "MeteringClient",
    "MeteringError",
    "QuotaDecision",
    "QuotaExceeded",
    "Quantity",
    "DEFAULT_API_URL",
]

logger = logging.getLogger("metering")

#: Where the original service listened; used when neither `api_url` nor
#: `METERING_API_URL` is given.
DEFAULT_API_URL = "http://localhost:8000"

#: What `quantity` may be: exact decimals are kept exact (`0.1` is 0.1, not a binary float).
Quantity = Union[int, float, Decimal, str]

_MODES = {
    "sync": "sync",
    "async": "fire_and_forget",
    "fire_and_forget": "fire_and_forget",
    "batch": "batching",
    "batching": "batching",
}


@dataclass(frozen=True)
class ClientStats:
    """What a client did with the events it was given, in events (not requests)."""

    #: Acknowledged by the server (or written by the embedded store).
    sent: int
    #: Resent after a failed attempt; one event retried twice counts two.
    retried: int
    #: Written to the spill file because the server stayed unreachable.
    spilled: int
    #: Lost: the buffer was full, the client was closed, or the server stayed unreachable
    #: with no spill file.
    dropped: int
    #: Refused by the server as invalid (logged); never retried.
    rejected: int
    #: Delivered from the spill file.
    replayed: int
    #: Held in memory now, waiting to be sent.
    buffered: int
    #: Waiting in the spill file now.
    pending_spill: int

    @classmethod
    def _from(cls, counters: Mapping[str, int]) -> "ClientStats":
        return cls(**{name: int(counters[name]) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class QuotaDecision:
    """The answer to a quota check (`POST /v1/meter/validate`)."""

    #: Whether the usage fits under the quota (always true when no quota applies).
    allowed: bool
    #: Usage in the current period.
    current_usage: Decimal
    #: The limit, or None when no quota applies.
    limit: Optional[Decimal]
    #: What is left of the limit, or None when no quota applies.
    remaining: Optional[Decimal]
    #: The quota's period (`hour`, `day`, `month`...), when one applies.
    period: Optional[str]
    #: When usage resets, when a quota applies.
    reset_at: Optional[_dt.datetime]
    #: Why it was refused, or that no quota applies.
    message: Optional[str]
    #: The whole answer, as the server sent it.
    raw: Dict[str, Any]

    @classmethod
    def _from_json(cls, text: str) -> "QuotaDecision":
        raw = json.loads(text, parse_float=Decimal)

        def number(value: Any) -> Optional[Decimal]:
            return None if value is None else Decimal(str(value))

        reset = raw.get("reset_at")
        return cls(
            allowed=bool(raw["allowed"]),
            current_usage=Decimal(str(raw.get("current_usage", 0))),
            limit=number(raw.get("limit")),
            remaining=number(raw.get("remaining")),
            period=raw.get("period"),
            reset_at=_parse_time(reset) if reset else None,
            message=raw.get("message"),
            raw=raw,
        )

    def retry_after(self) -> int:
        """Whole seconds until the quota resets (at least 1), for a `Retry-After` header."""
        if self.reset_at is None:
            return 1
        left = (self.reset_at - _dt.datetime.now(_dt.timezone.utc)).total_seconds()
        return max(1, int(left) + (0 if left == int(left) else 1))


class QuotaExceeded(MeteringError):
    """Raised by `meter(..., enforce=True)` instead of running a call over its quota."""

    def __init__(self, decision: QuotaDecision, tenant_id: str, resource: str, feature: str):
        self.decision = decision
        self.tenant_id = tenant_id
        self.resource = resource
        self.feature = feature
        super().__init__(
            decision.message
            or f"quota exceeded for {tenant_id}: {resource}/{feature}"
        )


def _parse_time(text: str) -> _dt.datetime:
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return _dt.datetime.fromisoformat(text)


def _env(name: str) -> Optional[str]:
    value = os.environ.get(name)
    return value if value is not None and value.strip() else None


def _number(name: str, value: Any, kind: type) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise MeteringError(f"{name} must be a number, got {value!r}") from None
    if number < 0:
        raise MeteringError(f"{name} must not be negative, got {value!r}")
    return number


def _timestamp(value: Union[None, str, _dt.datetime]) -> Optional[str]:
    if value is None or isinstance(value, str):
        return value
    # A naive datetime is UTC, as in the original library (datetime.utcnow()).
    return value.isoformat()


def _metadata(value: Optional[Mapping[str, Any]]) -> Optional[str]:
    if value is None:
        return None
    return json.dumps(value, default=str, separators=(",", ":"))


def _wire(
    tenant_id: str,
    resource: str,
    feature: str,
    quantity: Quantity,
    metadata: Optional[Mapping[str, Any]],
    timestamp: Union[None, str, _dt.datetime],
    event_id: Optional[str],
) -> Tuple[str, str, str, Quantity, Optional[str], Optional[str], Optional[str]]:
    """One event's arguments as the native client takes them."""
    return (
        tenant_id,
        resource,
        feature,
        quantity,
        _metadata(metadata),
        _timestamp(timestamp),
        event_id,
    )


# Clients not closed yet: closed (and so flushed) when the interpreter exits.
_open_clients: "weakref.WeakSet[MeteringClient]" = weakref.WeakSet()
_open_lock = threading.Lock()


@atexit.register
def _close_all() -> None:
    with _open_lock:
        clients = list(_open_clients)
    for client in clients:
        try:
            client.close()
        except Exception:  # pragma: no cover - best effort at exit
            logger.exception("closing a metering client at exit failed")


class MeteringClient:
    """Records usage events for a `metering-server`, or for a local SQLite file.

    The arguments and environment variables are those of the original library:

    ============================ ======================================================
    ``api_url``                  ``METERING_API_URL`` (default ``http://localhost:8000``);
                                 a ``sqlite:`` URL (``sqlite:///var/lib/app/usage.db``)
                                 writes to that file in this process, with no server
    ``api_key``                  ``METERING_API_KEY`` (a key with the ``ingest`` role)
    ``transport_mode``           ``METERING_TRANSPORT_MODE``: ``batch`` (default),
                                 ``async`` or ``sync``
    ``batch_size``               ``METERING_BATCH_SIZE`` (default 100)
    ``batch_interval_seconds``   ``METERING_BATCH_INTERVAL_SECONDS`` (default 5)
    ``retry_max_attempts``       ``METERING_RETRY_MAX_ATTEMPTS``: retries after the first
                                 attempt (default 3)
    ``timeout``                  ``METERING_TIMEOUT``: seconds per request (default 10)
    ``spill_path``               ``METERING_SPILL_PATH``: a file where batches the server
                                 did not take wait (across restarts) to be sent again
    ``max_buffered``             ``METERING_MAX_BUFFERED``: events held in memory at most
                                 (default 100,000; more are dropped and counted)
    ============================ ======================================================

    Every event gets its id and timestamp when it is recorded, so a retry never counts it
    twice. Sending, batching and retries run on a Rust thread that does not hold the GIL.
    """

    def __init__(
        self,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        transport_mode: Optional[str] = None,
        *,
        batch_size: Optional[int] = None,
        batch_interval_seconds: Optional[float] = None,
        retry_max_attempts: Optional[int] = None,
        timeout: Optional[float] = None,
        spill_path: Optional[Union[str, "os.PathLike[str]"]] = None,
        max_buffered: Optional[int] = None,
    ) -> None:
        self.api_url: str = (api_url or _env("METERING_API_URL") or DEFAULT_API_URL).rstrip("/")
        self.api_key: Optional[str] = api_key or _env("METERING_API_KEY")
        mode = (transport_mode or _env("METERING_TRANSPORT_MODE") or "batch").strip().lower()
        if mode not in _MODES:
            raise MeteringError(
                f"unknown transport mode {mode!r}; expected sync, async or batch"
            )
        self.transport_mode: str = mode
        self.batch_size: int = _number(
            "batch_size", batch_size if batch_size is not None else _env("METERING_BATCH_SIZE") or 100, int
        )
        self.batch_interval_seconds: float = _number(
            "batch_interval_seconds",
            batch_interval_seconds
            if batch_interval_seconds is not None
            else _env("METERING_BATCH_INTERVAL_SECONDS") or 5,
            float,
        )
        self.retry_max_attempts: int = _number(
            "retry_max_attempts",
            retry_max_attempts
            if retry_max_attempts is not None
            else _env("METERING_RETRY_MAX_ATTEMPTS") or 3,
            int,
        )
        self.timeout: float = _number(
            "timeout", timeout if timeout is not None else _env("METERING_TIMEOUT") or 10, float
        )
        spill = spill_path if spill_path is not None else _env("METERING_SPILL_PATH")
        self.spill_path: Optional[str] = os.fspath(spill) if spill is not None else None
        buffered = max_buffered if max_buffered is not None else _env("METERING_MAX_BUFFERED")
        self.max_buffered: Optional[int] = (
            _number("max_buffered", buffered, int) if buffered is not None else None
        )
        if self.batch_size < 1 or self.batch_interval_seconds <= 0:
            raise MeteringError("batch_size and batch_interval_seconds must be positive")
        self._native = _native.Client(
            self.api_url,
            self.api_key,
            _MODES[mode],
            self.batch_size,
            max(1, int(self.batch_interval_seconds * 1000)),
            self.retry_max_attempts,
            max(1, int(self.timeout * 1000)),
            self.spill_path,
            self.max_buffered,
        )
        self._closed = False
        with _open_lock:
            _open_clients.add(self)

    @classmethod
    def embedded(
        cls, path: Union[str, "os.PathLike[str]"], transport_mode: Optional[str] = None, **settings: Any
    ) -> "MeteringClient":
        """A client that writes to the SQLite file at `path` (created when missing), in this
        process, with no server. A `metering-server` started later on the same file
        (`--store sqlite:///path`) serves what was recorded."""
        path = os.path.abspath(os.fspath(path))
        return cls(api_url=f"sqlite://{path}", transport_mode=transport_mode, **settings)

    @property
    def embedded_store(self) -> bool:
        """Whether events go to a local SQLite file rather than a server."""
        return self.api_url.startswith("sqlite:")

    def __repr__(self) -> str:
        where = self.api_url if self.embedded_store else self.api_url.split("@")[-1]
        return f"MeteringClient(api_url={where!r}, transport_mode={self.transport_mode!r})"

    # Recording -------------------------------------------------------------------------

    def record_event(
        self,
        tenant_id: str,
        resource: str,
        feature: str,
        quantity: Quantity = 1,
        metadata: Optional[Mapping[str, Any]] = None,
        timestamp: Union[None, str, _dt.datetime] = None,
        event_id: Optional[str] = None,
    ) -> bool:
        """Records one event the way the transport mode says.

        ``batch`` and ``async`` hand it over and return at once (True); ``sync`` sends it
        and waits, as `record_event_sync` does. Raises ``ValueError`` for a quantity,
        timestamp or metadata that cannot be read.
        """
        if self.transport_mode == "sync":
            return self.record_event_sync(
                tenant_id, resource, feature, quantity, metadata, timestamp, event_id
            )
        self._native.record(
            *_wire(tenant_id, resource, feature, quantity, metadata, timestamp, event_id)
        )
        return True

    def record_event_sync(
        self,
        tenant_id: str,
        resource: str,
        feature: str,
        quantity: Quantity = 1,
        metadata: Optional[Mapping[str, Any]] = None,
        timestamp: Union[None, str, _dt.datetime] = None,
        event_id: Optional[str] = None,
    ) -> bool:
        """Sends one event now and waits for the server (with retries), whatever the mode.

        Returns True once it is stored. When the server stays unreachable the event is
        queued (and spilled, with a spill file) to be sent later under the same id, and
        this returns False; unlike the original library, that copy is delivered. Raises
        `EventRejected` when the server refuses the event as invalid.
        """
        return self._native.send(
            *_wire(tenant_id, resource, feature, quantity, metadata, timestamp, event_id)
        )

    async def record_event_async(
        self,
        tenant_id: str,
        resource: str,
        feature: str,
        quantity: Quantity = 1,
        metadata: Optional[Mapping[str, Any]] = None,
        timestamp: Union[None, str, _dt.datetime] = None,
        event_id: Optional[str] = None,
    ) -> bool:
        """`record_event_sync` for asyncio: the event loop never waits for the network."""
        loop = asyncio.get_running_loop()
        future: "asyncio.Future[bool]" = loop.create_future()

        def done(value: Optional[bool], error: Optional[str]) -> None:
            if future.done():
                return
            if error is None:
                future.set_result(bool(value))
            else:
                future.set_exception(EventRejected(error))

        self._native.send_soon(
            loop,
            done,
            *_wire(tenant_id, resource, feature, quantity, metadata, timestamp, event_id),
        )
        return await future

    # Quotas ----------------------------------------------------------------------------

    @staticmethod
    def _check_body(tenant_id: str, resource: Optional[str], feature: str, quantity: Quantity) -> str:
        body: Dict[str, Any] = {"tenant_id": tenant_id, "feature": feature, "quantity": str(quantity)}
        if isinstance(quantity, float):
            body["quantity"] = repr(quantity)
        if resource is not None:
            body["resource"] = resource
        return json.dumps(body)

    def check_quota(
        self, tenant_id: str, resource: Optional[str], feature: str, quantity: Quantity = 1
    ) -> QuotaDecision:
        """Asks whether `quantity` more of `feature` fits under the tenant's quota (without
        recording anything). Raises `MeteringError` when the server cannot answer."""
        body = self._check_body(tenant_id, resource, feature, quantity)
        return QuotaDecision._from_json(self._native.validate(body))

    async def check_quota_async(
        self, tenant_id: str, resource: Optional[str], feature: str, quantity: Quantity = 1
    ) -> QuotaDecision:
        """`check_quota` for asyncio."""
        loop = asyncio.get_running_loop()
        future: "asyncio.Future[str]" = loop.create_future()

        def done(value: Optional[str], error: Optional[str]) -> None:
            if future.done():
                return
            if error is None and value is not None:
                future.set_result(value)
            else:
                future.set_exception(MeteringError(error or "quota check failed"))

        self._native.validate_soon(loop, done, self._check_body(tenant_id, resource, feature, quantity))
        return QuotaDecision._from_json(await future)

    # Lifecycle -------------------------------------------------------------------------

    def flush(self, timeout: Optional[float] = None) -> ClientStats:
        """Sends everything recorded so far and waits for it (at most `timeout` seconds).
        Events the server still does not take stay in the spill file
        (`stats().pending_spill`)."""
        return ClientStats._from(self._native.flush(timeout))

    def stats(self) -> ClientStats:
        """The counters: sent, retried, spilled, dropped, rejected and more."""
        return ClientStats._from(self._native.stats())

    def close(self) -> ClientStats:
        """Flushes and stops the client. Later events are dropped (and counted). Called for
        every open client when the interpreter exits."""
        if not self._closed:
            self._closed = True
            with _open_lock:
                _open_clients.discard(self)
            return ClientStats._from(self._native.close())
        return self.stats()

    def __enter__(self) -> "MeteringClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The shared client of `meter` and the middleware, made on first use ----------------------

_default: Optional[MeteringClient] = None
_by_mode: Dict[str, MeteringClient] = {}
_default_lock = threading.Lock()


def get_client(transport_mode: Optional[str] = None) -> MeteringClient:
    """The client `meter` uses when given none: made from the environment on first use
    (one per transport mode asked for)."""
    global _default
    if transport_mode is None:
        client = _default
        if client is None:
            with _default_lock:
                if _default is None:
                    _default = MeteringClient()
                client = _default
        return client
    mode = transport_mode.strip().lower()
    client = _by_mode.get(mode)
    if client is None:
        with _default_lock:
            client = _by_mode.get(mode)
            if client is None:
                client = _by_mode[mode] = MeteringClient(transport_mode=mode)
    return client


def client_for(
    client: Optional[MeteringClient],
    api_url: Optional[str] = None,
    api_key: Optional[str] = None,
    transport_mode: Optional[str] = None,
) -> Optional[MeteringClient]:
    """What the middleware records with: `client` when given, else a client of its own when
    any setting is given, else None (the shared client, made on first use)."""
    if client is not None or (api_url is None and api_key is None and transport_mode is None):
        return client
    return MeteringClient(api_url, api_key, transport_mode)


def set_client(client: Optional[MeteringClient]) -> None:
    """Makes `client` the one `meter` and the middleware use by default (None: make one
    from the environment again on next use)."""
    global _default
    with _default_lock:
        _default = client


def _forget_after_fork() -> None:
    # The parent's client threads do not exist in a forked child: start over there.
    global _default
    _default = None
    _by_mode.clear()
    _open_clients.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
