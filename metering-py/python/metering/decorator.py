"""`meter`: the original library's decorator, for sync and async functions."""

from __future__ import annotations

import functools
import inspect
import json
import logging
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple, TypeVar, Union

from .client import MeteringClient, Quantity, QuotaExceeded, get_client

__all__ = ["TENANT_PARAMETERS", "meter"]

logger = logging.getLogger("metering")

F = TypeVar("F", bound=Callable[..., Any])

#: The parameters the tenant is read from, in this order, when `tenant_id` is not given.
TENANT_PARAMETERS: Tuple[str, ...] = ("tenant_id", "tenant", "org_id", "organization_id")

#: The tenant recorded when none is found.
UNKNOWN_TENANT = "unknown"

Transport = Union[None, str, MeteringClient]


def _tenant_finder(
    func: Callable[..., Any], explicit: Optional[str]
) -> Callable[[Sequence[Any], Mapping[str, Any]], str]:
    """Reads the tenant of one call: `explicit`, else the first of TENANT_PARAMETERS given
    (by keyword or by position), else "unknown". Positions are worked out once, here."""
    if explicit is not None:
        tenant = str(explicit)
        return lambda args, kwargs: tenant
    try:
        names = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        names = []
    slots = tuple(
        (name, names.index(name) if name in names else -1) for name in TENANT_PARAMETERS
    )

    def find(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        for name, position in slots:
            value = kwargs.get(name) if kwargs else None
            if value is None and 0 <= position < len(args):
                value = args[position]
            if value is not None and value != "":
                return value if isinstance(value, str) else str(value)
        return UNKNOWN_TENANT

    return find


def _client_for(transport: Transport) -> MeteringClient:
    if isinstance(transport, MeteringClient):
        return transport
    return get_client(transport)


def meter(
    resource: str,
    feature: str,
    quantity: Union[Quantity, Callable[[Any], Quantity]] = 1,
    tenant_id: Optional[str] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    transport: Transport = None,
    *,
    enforce: bool = False,
) -> Callable[[F], F]:
    """Records one usage event each time the decorated function returns.

    The tenant is `tenant_id` when given, else the function's `tenant_id`, `tenant`,
    `org_id` or `organization_id` argument (in that order), else ``"unknown"``. `quantity`
    may be a callable, given the function's result. `transport` is a `MeteringClient`, or
    a transport mode (``"sync"``, ``"async"``, ``"batch"``) for a client made from the
    environment; by default the shared client (`metering.get_client()`).

    Nothing is recorded when the function raises, and metering never raises into the
    caller: a failure to record is logged. With ``enforce=True`` the quota is checked
    first, and `QuotaExceeded` (carrying the decision) is raised instead of running the
    function when it is over; when the check itself fails, the function runs.
    """
    metadata_json = (
        json.dumps(dict(metadata), default=str, separators=(",", ":")) if metadata else None
    )
    per_result = callable(quantity)

    def decorate(func: F) -> F:
        find_tenant = _tenant_finder(func, tenant_id)

        def amount(result: Any) -> Any:
            return quantity(result) if per_result else quantity  # type: ignore[operator]

        def record(client: MeteringClient, tenant: str, result: Any) -> None:
            try:
                if client.transport_mode == "sync":
                    client._native.send(tenant, resource, feature, amount(result), metadata_json)
                else:
                    client._native.record(tenant, resource, feature, amount(result), metadata_json)
            except Exception:
                logger.warning("metering: could not record %s/%s", resource, feature, exc_info=True)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                client = _client_for(transport)
                tenant = find_tenant(args, kwargs)
                if enforce:
                    await _enforce_async(client, tenant, resource, feature, quantity, per_result)
                result = await func(*args, **kwargs)
                try:
                    if client.transport_mode == "sync":
                        await client.record_event_async(
                            tenant, resource, feature, amount(result), metadata
                        )
                    else:
                        client._native.record(
                            tenant, resource, feature, amount(result), metadata_json
                        )
                except Exception:
                    logger.warning(
                        "metering: could not record %s/%s", resource, feature, exc_info=True
                    )
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            client = _client_for(transport)
            tenant = find_tenant(args, kwargs)
            if enforce:
                _enforce(client, tenant, resource, feature, quantity, per_result)
            result = func(*args, **kwargs)
            record(client, tenant, result)
            return result

        return wrapper  # type: ignore[return-value]

    return decorate


def _check_amount(quantity: Any, per_result: bool) -> Any:
    # A quantity computed from the result is not known before the call: check one unit.
    return 1 if per_result else quantity


def _enforce(
    client: MeteringClient, tenant: str, resource: str, feature: str, quantity: Any, per_result: bool
) -> None:
    try:
        decision = client.check_quota(tenant, resource, feature, _check_amount(quantity, per_result))
    except Exception:
        logger.warning("metering: quota check failed; running the call", exc_info=True)
        return
    if not decision.allowed:
        raise QuotaExceeded(decision, tenant, resource, feature)


async def _enforce_async(
    client: MeteringClient, tenant: str, resource: str, feature: str, quantity: Any, per_result: bool
) -> None:
    try:
        decision = await client.check_quota_async(
            tenant, resource, feature, _check_amount(quantity, per_result)
        )
    except Exception:
        logger.warning("metering: quota check failed; running the call", exc_info=True)
        return
    if not decision.allowed:
        raise QuotaExceeded(decision, tenant, resource, feature)
