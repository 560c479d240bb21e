"""The ASGI middleware on a FastAPI app, and the Flask extension, through test clients."""

from __future__ import annotations

import flask
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from metering import MeteringClient
from metering.flask import Metering
from metering.middleware import MeteringMiddleware

from conftest import Server


def fastapi_app(server: Server, **options: object) -> FastAPI:
    app = FastAPI()
    app.add_middleware(MeteringMiddleware, api_url=server.url, api_key=server.key, **options)

    @app.get("/api/v1/invoices")
    def invoices() -> dict:
        return {"ok": True}

    @app.post("/api/v1/orgs/{tenant_id}/reports")
    def report(tenant_id: str) -> dict:
        return {"tenant": tenant_id}

    @app.get("/api/v1/missing")
    def missing() -> None:
        from fastapi import HTTPException

        raise HTTPException(404)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    return app


def flask_app(server: Server, **options: object) -> flask.Flask:
    app = flask.Flask(__name__)
    Metering(app, api_url=server.url, api_key=server.key, **options)

    @app.get("/api/v1/invoices")
    def invoices() -> dict:
        return {"ok": True}

    @app.post("/api/v1/orgs/<tenant_id>/reports")
    def report(tenant_id: str) -> dict:
        return {"tenant": tenant_id}

    @app.get("/api/v1/missing")
    def missing() -> flask.Response:
        flask.abort(404)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    return app


def fastapi_metering(app: FastAPI, http: TestClient) -> MeteringClient:
    http.get("/health")  # the middleware stack is built on the first request
    layer = app.middleware_stack
    while not isinstance(layer, MeteringMiddleware):
        layer = layer.app
    return layer.client


def run(kind: str, server: Server, **options: object):
    """(an HTTP test client, the MeteringClient the app records with)."""
    if kind == "fastapi":
        app = fastapi_app(server, **options)
        http = TestClient(app)
        return http, fastapi_metering(app, http)
    app = flask_app(server, **options)
    return app.test_client(), app.extensions["metering"].client


@pytest.mark.parametrize("kind", ["fastapi", "flask"])
def test_requests_are_metered_as_the_original_did(server: Server, tenant: str, kind: str) -> None:
    http, client = run(kind, server)
    assert http.get("/api/v1/invoices", headers={"X-Tenant-ID": tenant}).status_code == 200
    assert http.get(f"/api/v1/invoices?tenant_id={tenant}-query").status_code == 200
    assert http.get(f"/api/v1/invoices?org_id={tenant}-org").status_code == 200
    assert http.post(f"/api/v1/orgs/{tenant}-path/reports").status_code == 200
    # The header wins over the path and the query.
    assert http.post(f"/api/v1/orgs/{tenant}-path/reports?tenant_id=x", headers={"X-Tenant-ID": tenant}).status_code == 200
    # Skipped: errors, /health, /docs.
    assert http.get("/api/v1/missing", headers={"X-Tenant-ID": tenant}).status_code == 404
    assert http.get("/health", headers={"X-Tenant-ID": tenant}).status_code == 200
    http.get("/docs", headers={"X-Tenant-ID": tenant})
    client.flush(timeout=30)
    rows = sorted((e["resource"], e["feature"]) for e in server.events(tenant))
    assert rows == [("api.v1.invoices", "get"), (f"api.v1.orgs.{tenant}-path.reports", "post")]
    assert [e["feature"] for e in server.events(f"{tenant}-query")] == ["get"]
    assert [e["feature"] for e in server.events(f"{tenant}-org")] == ["get"]
    assert [e["resource"] for e in server.events(f"{tenant}-path")] == [f"api.v1.orgs.{tenant}-path.reports"]
    client.close()


@pytest.mark.parametrize("kind", ["fastapi", "flask"])
def test_enforcement_answers_429_with_retry_after(server: Server, tenant: str, kind: str) -> None:
    server.set_quota(tenant, "get", 2)
    http, client = run(kind, server, enforce=True, transport_mode="sync")
    headers = {"X-Tenant-ID": tenant}
    assert [http.get("/api/v1/invoices", headers=headers).status_code for _ in range(2)] == [200, 200]
    refused = http.get("/api/v1/invoices", headers=headers)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    body = refused.json() if callable(refused.json) else refused.json
    assert body["error"]["code"] == "QUOTA_EXCEEDED"
    assert body["error"]["details"]["limit"] == "2"
    # The path parameter names the tenant before the route runs, too.
    server.set_quota(f"{tenant}-p", "post", 1)
    assert http.post(f"/api/v1/orgs/{tenant}-p/reports").status_code == 200
    assert http.post(f"/api/v1/orgs/{tenant}-p/reports").status_code == 429
    # Other tenants are not limited; refused requests are not recorded.
    assert http.get("/api/v1/invoices", headers={"X-Tenant-ID": f"{tenant}-b"}).status_code == 200
    client.flush(timeout=30)
    assert server.event_count(tenant) == 2
    assert server.event_count(f"{tenant}-p") == 1
    client.close()
