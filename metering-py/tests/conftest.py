"""Fixtures: the release `metering-server` on a fresh SQLite store, and an admin client.

The binary is `$METERING_SERVER_BIN`, else `target/release/metering-server` of this
repository (`cargo build --release -p metering-http --bin metering-server`).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


def server_binary() -> Path:
    explicit = os.environ.get("METERING_SERVER_BIN")
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")
    path = Path(explicit) if explicit else Path(target) / "release" / "metering-server"
    if not path.is_file():
        pytest.fail(
            f"metering-server not found at {path}: build it with "
            "`cargo build --release -p metering-http --bin metering-server` "
            "or set METERING_SERVER_BIN",
            pytrace=False,
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `metering-server serve` process; `kill()` and `start()` keep the port and store."""

    def __init__(self, store: str, log: Path) -> None:
        self.binary = server_binary()
        self.store = store
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = "mk_test_" + secrets.token_hex(16)
        self.log = log
        self.process: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> None:
        env = dict(os.environ, METERING_ADMIN_KEY=self.key)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(self.binary), "serve", "--bind", f"127.0.0.1:{self.port}", "--store", self.store],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"metering-server exited:\n{self.log.read_text()}", pytrace=False)
            try:
                if httpx.get(self.url + "/v1/meter/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        pytest.fail(f"metering-server did not answer within 60 s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    # Admin requests ---------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method, self.url + path, headers={"X-API-Key": self.key}, timeout=30, **kwargs
        )

    def event_count(self, tenant: str) -> int:
        response = self.request("GET", "/v1/meter/events", params={"tenant_id": tenant, "page_size": 1})
        assert response.status_code == 200, response.text
        return int(response.json()["pagination"]["total"])

    def events(self, tenant: str) -> list:
        found: list = []
        page = 1
        while True:
            response = self.request(
                "GET", "/v1/meter/events", params={"tenant_id": tenant, "page_size": 1000, "page": page}
            )
            assert response.status_code == 200, response.text
            body = json.loads(response.text, parse_float=Decimal)
            found.extend(body["events"])
            if page >= body["pagination"]["total_pages"]:
                return found
            page += 1

    def set_quota(self, tenant: str, feature: str, limit: int, resource: Optional[str] = None) -> Dict[str, Any]:
        response = self.request(
            "PUT",
            "/v1/meter/quotas",
            json={"tenant_id": tenant, "resource": resource, "feature": feature, "limit": limit, "period": "daily"},
        )
        assert response.status_code == 200, response.text
        return response.json()

    def ingest_key(self) -> str:
        response = self.request("POST", "/v1/meter/api-keys", json={"name": "python", "role": "ingest"})
        assert response.status_code == 201, response.text
        return response.json()["key"]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the session, on a fresh SQLite store."""
    folder = tmp_path_factory.mktemp("server")
    running = Server(f"sqlite://{folder / 'metering.db'}", folder / "server.log")
    running.start()
    yield running
    running.stop()


@pytest.fixture
def tenant() -> str:
    """A tenant no other test writes."""
    return f"org_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, server: Server) -> Server:
    """The METERING_* variables point at the session's server (with an ingest key)."""
    for name in list(os.environ):
        if name.startswith("METERING_") and name not in ("METERING_SERVER_BIN",):
            monkeypatch.delenv(name)
    monkeypatch.setenv("METERING_API_URL", server.url)
    monkeypatch.setenv("METERING_API_KEY", server.key)
    return server


@pytest.fixture(autouse=True)
def fresh_shared_client() -> Iterator[None]:
    """Each test starts without a shared client, and closes the one it made."""
    import metering.client as client_module

    client_module.set_client(None)
    client_module._by_mode.clear()
    yield
    shared = [client_module._default, *client_module._by_mode.values()]
    client_module.set_client(None)
    client_module._by_mode.clear()
    for client in shared:
        if client is not None:
            client.close()


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
