"""The paper exchange inside the current process, for tests and ``aiqt dev``.

with EmbeddedPaper(PaperSettings(db=tmp_path / "p.sqlite3", port=0)) as paper:
    admin = PaperAdmin(paper.url, paper.admin_token)
    acct = admin.create_account(balance="10000")
    ...  # point a Binance client at paper.url
"""

from __future__ import annotations

import socket
import threading
import time
from decimal import Decimal
from types import TracebackType
from typing import Any

import httpx

from .app import PaperApp
from .main import build
from .settings import PaperSettings


class EmbeddedPaper:
    """Runs uvicorn with the paper exchange in a background thread (sync context manager)."""

    def __init__(self, settings: PaperSettings, start_timeout: float = 10.0):
        self.settings = settings
        self.start_timeout = start_timeout
        self.app: PaperApp | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self.url = ""
        self.port = 0
        self._sock: socket.socket | None = None

    @property
    def admin_token(self) -> str:
        assert self.app is not None, "not started"
        return self.app.admin_token

    def start(self) -> EmbeddedPaper:
        app, server = build(self.settings)
        self.app, self._server = app, server
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.host, self.settings.port))
        self.port = sock.getsockname()[1]
        self.url = f"http://{self.settings.host}:{self.port}"
        self._sock = sock
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"paper-{self.port}"
        )
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if server.started:
                try:
                    r = httpx.get(self.url + "/_paper/health", timeout=1.0)
                    if r.status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
            if not self._thread.is_alive():
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"paper exchange did not start on {self.url}")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.app is not None:
            self.app.close()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> EmbeddedPaper:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class PaperAdmin:
    """Thin sync client of the ``/_paper/`` test controls."""

    def __init__(self, url: str, admin_token: str, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, headers={"X-Paper-Admin-Token": admin_token}, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PaperAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, json: dict[str, Any] | None = None) -> Any:
        r = self._client.request(method, path, json=json)
        r.raise_for_status()
        return r.json()

    def create_account(
        self,
        balance: str | Decimal | int | None = None,
        name: str | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if balance is not None:
            body["balance"] = str(balance)
        if name is not None:
            body["name"] = name
        if api_key is not None:
            body["apiKey"] = api_key
        if api_secret is not None:
            body["apiSecret"] = api_secret
        return dict(self._call("POST", "/_paper/accounts", body))

    def state(self, api_key: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/_paper/accounts/{api_key}/state"))

    def set_mark(self, symbol: str, price: str | Decimal | float) -> dict[str, Any]:
        return dict(self._call("POST", "/_paper/mark", {"symbol": symbol, "price": str(price)}))

    def step_mark(self, symbol: str, pct: str | Decimal | float) -> dict[str, Any]:
        return dict(self._call("POST", "/_paper/mark/step", {"symbol": symbol, "pct": str(pct)}))

    def unpin(self, symbol: str) -> dict[str, Any]:
        return dict(self._call("DELETE", f"/_paper/mark/{symbol}"))

    def advance(self, ms: int) -> dict[str, Any]:
        return dict(self._call("POST", "/_paper/clock/advance", {"ms": int(ms)}))

    def clock(self) -> dict[str, Any]:
        return dict(self._call("GET", "/_paper/clock"))

    def fault(self, **kw: Any) -> dict[str, Any]:
        return dict(self._call("POST", "/_paper/faults", kw))

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/_paper/faults"))

    def clear_faults(self) -> dict[str, Any]:
        return dict(self._call("DELETE", "/_paper/faults"))

    def limits(self) -> dict[str, Any]:
        return dict(self._call("GET", "/_paper/limits"))

    def reset(self) -> dict[str, Any]:
        return dict(self._call("POST", "/_paper/reset"))

    def expire_listen_key(self, api_key: str) -> dict[str, Any]:
        """Let the account's listenKey lapse now (its subscribers get listenKeyExpired)."""
        return dict(self._call("POST", "/_paper/listenKey/expire", {"apiKey": api_key}))

    def drop_connections(self, api_key: str | None = None) -> dict[str, Any]:
        """Close every WebSocket connection, or those carrying one account's user data."""
        return dict(self._call("POST", "/_paper/ws/drop", {} if api_key is None else {"apiKey": api_key}))

    def stall(self, seconds: float, stream: str | None = None, api_key: str | None = None) -> dict[str, Any]:
        """Withhold a stream's frames (or an account's user data) for `seconds`."""
        body: dict[str, Any] = {"seconds": seconds}
        if stream is not None:
            body["stream"] = stream
        if api_key is not None:
            body["apiKey"] = api_key
        return dict(self._call("POST", "/_paper/ws/stall", body))

    def connections(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/_paper/ws"))
