"""`Metering`: a Flask extension recording one event per successful request.

    from flask import Flask
    from metering.flask import Metering

    app = Flask(__name__)
    Metering(app, api_url="http://127.0.0.1:8000", api_key="mk_...")

The rules are the ASGI middleware's: the tenant from the ``X-Tenant-ID`` header, else a
URL variable, else the query string (``tenant_id``, ``tenant``, ``org_id`` or
``organization_id``), else ``"unknown"``; the resource is the path with ``/`` turned into
``.``, the feature the lowercase method; /health, /docs, /redoc and /openapi.json are
skipped and only responses below 400 are recorded. ``enforce=True`` answers 429 with
``Retry-After`` before the view runs when the tenant is over its quota.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Optional

from flask import Flask, Response, request

from .client import MeteringClient, client_for, get_client
from .decorator import TENANT_PARAMETERS, UNKNOWN_TENANT
from .middleware import DEFAULT_EXCLUDED_PATHS, quota_exceeded_body, resource_of

__all__ = ["Metering"]

logger = logging.getLogger("metering")


class Metering:
    """The extension; `init_app` supports the application factory pattern."""

    def __init__(
        self,
        app: Optional[Flask] = None,
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
        self._client = client_for(client, api_url, api_key, transport_mode)
        self.tenant_header = tenant_header
        self.exclude_paths = frozenset(exclude_paths)
        self.enforce = enforce
        self.quantity = quantity
        if app is not None:
            self.init_app(app)

    @property
    def client(self) -> MeteringClient:
        """The client events go to (the shared one unless given)."""
        if self._client is None:
            self._client = get_client()
        return self._client

    def init_app(self, app: Flask) -> None:
        """Registers the hooks on `app`."""
        app.extensions["metering"] = self
        app.before_request(self._before)
        app.after_request(self._after)

    def _tenant(self) -> str:
        header = request.headers.get(self.tenant_header, "").strip()
        if header:
            return header
        for source in (request.view_args or {}, request.args):
            for name in TENANT_PARAMETERS:
                value = source.get(name)
                if value not in (None, ""):
                    return str(value)
        return UNKNOWN_TENANT

    def _skipped(self) -> bool:
        return request.path in self.exclude_paths

    def _before(self) -> Optional[Response]:
        if not self.enforce or self._skipped():
            return None
        tenant, resource, feature = self._tenant(), resource_of(request.path), request.method.lower()
        try:
            decision = self.client.check_quota(tenant, resource, feature, self.quantity)
        except Exception:
            logger.warning("metering: quota check failed; letting the request in", exc_info=True)
            return None
        if decision.allowed:
            return None
        response = Response(
            quota_exceeded_body(decision, tenant, resource, feature),
            status=429,
            mimetype="application/json",
        )
        response.headers["Retry-After"] = str(decision.retry_after())
        return response

    def _after(self, response: Response) -> Response:
        if response.status_code < 400 and not self._skipped():
            try:
                self.client.record_event(
                    self._tenant(), resource_of(request.path), request.method.lower(), self.quantity
                )
            except Exception:
                logger.warning("metering: could not record %s", request.path, exc_info=True)
        return response
