"""`MeteringMiddleware`: meters every request of a FastAPI or Starlette (any ASGI) app.

    from fastapi import FastAPI
    from metering.middleware import MeteringMiddleware

    app = FastAPI()
    app.add_middleware(MeteringMiddleware, api_url="http://127.0.0.1:8000", api_key="mk_...")

As in the original library: the tenant comes from the ``X-Tenant-ID`` header, else a path
parameter, else the query string (``tenant_id``, ``tenant``, ``org_id`` or
``organization_id``), else ``"unknown"``. The resource is the path with ``/`` turned into
``.`` (``/api/v1/invoices`` is ``api.v1.invoices``), the feature the lowercase method.
/health, /docs, /redoc and /openapi.json are skipped, and only responses below 400 are
recorded. With ``enforce=True`` the quota is checked before the app runs, and a request
over it is answered 429 with ``Retry-After`` and the error envelope.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Mapping, MutableMapping, Optional, Tuple
from urllib.parse import parse_qsl

from .client import MeteringClient, QuotaDecision, client_for, get_client
from .decorator import TENANT_PARAMETERS, UNKNOWN_TENANT

__all__ = ["DEFAULT_EXCLUDED_PATHS", "MeteringMiddleware", "resource_of", "quota_exceeded_body"]

logger = logging.getLogger("metering")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths never metered.
DEFAULT_EXCLUDED_PATHS: Tuple[str, ...] = ("/health", "/docs", "/redoc", "/openapi.json")


def resource_of(path: str) -> str:
    """The resource of a request path: ``/api/v1/invoices`` is ``api.v1.invoices`` (``/``
    alone is ``root``)."""
    resource = path.strip("/").replace("/", ".")
    return resource or "root"


def quota_exceeded_body(decision: QuotaDecision, tenant: str, resource: str, feature: str) -> bytes:
    """The 429 body: the server's error envelope, with the decision in ``details``."""
    return json.dumps(
        {
            "error": {
                "code": "QUOTA_EXCEEDED",
                "message": decision.message
                or f"quota exceeded for {tenant}: {resource}/{feature}",
                "details": {
                    "tenant_id": tenant,
                    "resource": resource,
                    "feature": feature,
                    "limit": None if decision.limit is None else str(decision.limit),
                    "current_usage": str(decision.current_usage),
                    "reset_at": decision.raw.get("reset_at"),
                },
            }
        }
    ).encode()


def _pick(params: Mapping[str, Any]) -> Optional[str]:
    for name in TENANT_PARAMETERS:
        value = params.get(name)
        if value not in (None, ""):
            return str(value)
    return None


def _routed_params(scope: Scope) -> Mapping[str, Any]:
    """Path parameters before routing, by matching the app's routes (Starlette/FastAPI)."""
    router = getattr(scope.get("app"), "router", None)
    for route in getattr(router, "routes", ()):
        try:
            match, child = route.matches(scope)
        except Exception:
            continue
        if getattr(match, "name", "") == "FULL":
            return child.get("path_params") or {}
    return {}


class MeteringMiddleware:
    """ASGI middleware recording one event per successful request (see the module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        client: Optional[MeteringClient] = None,
        transport_mode: Optional[str] = None,
        tenant_header: str = "X-Tenant-ID",
        exclude_paths: Iterable[str] = DEFAULT_EXCLUDED_PATHS,
        enforce: bool = False,
        quantity: Any = 1,
    ) -> None:
        self.app = app
        self.client = client_for(client, api_url, api_key, transport_mode) or get_client()
        self.tenant_header = tenant_header.lower().encode("latin-1")
        self.exclude_paths = frozenset(exclude_paths)
        self.enforce = enforce
        self.quantity = quantity

    def _tenant(self, scope: Scope, routed: bool) -> str:
        for name, value in scope.get("headers") or ():
            if name.lower() == self.tenant_header and value:
                return value.decode("latin-1").strip() or UNKNOWN_TENANT
        params = scope.get("path_params")
        if not params and not routed:
            params = _routed_params(scope)
        tenant = _pick(params or {})
        if tenant is None and scope.get("query_string"):
            query: Dict[str, str] = dict(parse_qsl(scope["query_string"].decode("latin-1")))
            tenant = _pick(query)
        return tenant or UNKNOWN_TENANT

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exclude_paths:
            await self.app(scope, receive, send)
            return
        resource = resource_of(scope.get("path", "/"))
        feature = scope.get("method", "GET").lower()
        if self.enforce:
            tenant = self._tenant(scope, routed=False)
            try:
                decision = await self.client.check_quota_async(tenant, resource, feature, self.quantity)
            except Exception:
                logger.warning("metering: quota check failed; letting the request in", exc_info=True)
            else:
                if not decision.allowed:
                    await self._refuse(send, decision, tenant, resource, feature)
                    return

        status: List[int] = []

        async def send_and_watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await self.app(scope, receive, send_and_watch)
        if status and status[0] < 400:
            try:
                tenant = self._tenant(scope, routed=True)
                if self.client.transport_mode == "sync":
                    # Waits for the server without blocking the event loop.
                    await self.client.record_event_async(tenant, resource, feature, self.quantity)
                else:
                    self.client.record_event(tenant, resource, feature, self.quantity)
            except Exception:
                logger.warning("metering: could not record %s %s", feature, resource, exc_info=True)

    async def _refuse(
        self, send: Send, decision: QuotaDecision, tenant: str, resource: str, feature: str
    ) -> None:
        body = quota_exceeded_body(decision, tenant, resource, feature)
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(decision.retry_after()).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
