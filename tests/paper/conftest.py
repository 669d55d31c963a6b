"""Fixtures for the paper exchange's own tests: one shared server per session, a fresh account
per test, and a tiny signed Binance client (query style like the official SDK, or form-body
style like ccxt)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from paper.embedded import EmbeddedPaper, PaperAdmin
from paper.settings import PaperSettings


class Fapi:
    """Signed fapi calls against the paper exchange."""

    def __init__(self, url: str, api_key: str, api_secret: str, style: str = "query"):
        self.client = httpx.Client(base_url=url, timeout=10.0)
        self.api_key = api_key
        self.secret = api_secret.encode()
        self.style = style

    def close(self) -> None:
        self.client.close()

    def raw(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        signed: bool = True,
        style: str | None = None,
        recv_window: int | None = None,
        timestamp: int | None = None,
        api_key: str | None = None,
    ) -> httpx.Response:
        p = {k: v for k, v in (params or {}).items() if v is not None}
        headers = {"X-MBX-APIKEY": api_key if api_key is not None else self.api_key}
        if not signed:
            return self.client.request(method, path, params=p, headers=headers)
        p["timestamp"] = timestamp if timestamp is not None else int(time.time() * 1000)
        if recv_window is not None:
            p["recvWindow"] = recv_window
        qs = urlencode(p)
        sig = hmac.new(self.secret, qs.encode(), hashlib.sha256).hexdigest()
        style = style or self.style
        if style == "form" and method in ("POST", "PUT"):
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return self.client.request(method, path, content=f"{qs}&signature={sig}", headers=headers)
        return self.client.request(method, f"{path}?{qs}&signature={sig}", headers=headers)

    def raw_with_timeout(self, method: str, path: str, params: dict[str, Any], timeout: float) -> httpx.Response:
        p = {**params, "timestamp": int(time.time() * 1000)}
        qs = urlencode(p)
        sig = hmac.new(self.secret, qs.encode(), hashlib.sha256).hexdigest()
        return self.client.request(
            method, f"{path}?{qs}&signature={sig}", headers={"X-MBX-APIKEY": self.api_key}, timeout=timeout
        )

    def call(self, method: str, path: str, **params: Any) -> Any:
        r = self.raw(method, path, params)
        assert r.status_code == 200, r.text
        return r.json()

    def error(self, method: str, path: str, **params: Any) -> tuple[int, int, str]:
        r = self.raw(method, path, params)
        assert r.status_code != 200, r.text
        assert r.headers["content-type"].startswith("application/json")
        body = r.json()
        return r.status_code, body["code"], body["msg"]

    def order(self, **params: Any) -> Any:
        return self.call("POST", "/fapi/v1/order", **params)

    def market(self, symbol: str, side: str, qty: str, **extra: Any) -> Any:
        return self.order(symbol=symbol, side=side, type="MARKET", quantity=qty, newOrderRespType="RESULT", **extra)


@pytest.fixture(scope="session")
def paper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPaper]:
    db: Path = tmp_path_factory.mktemp("paper-own") / "paper.sqlite3"
    settings = PaperSettings(port=0, db=db, admin_token=secrets.token_hex(8), rate_limits=False, tick_interval_s=3600.0)
    with EmbeddedPaper(settings) as server:
        yield server


@pytest.fixture(scope="session")
def admin(paper: EmbeddedPaper) -> Iterator[PaperAdmin]:
    a = PaperAdmin(paper.url, paper.admin_token)
    yield a
    a.close()


@pytest.fixture
def fapi(paper: EmbeddedPaper, admin: PaperAdmin) -> Iterator[Fapi]:
    acct = admin.create_account(balance="10000")
    f = Fapi(paper.url, acct["apiKey"], acct["apiSecret"])
    yield f
    f.close()


@pytest.fixture
def pinned(admin: PaperAdmin) -> Iterator[list[str]]:
    """Symbols a test pins; unpinned afterwards so the walk resumes for the next test."""
    syms: list[str] = []
    yield syms
    for s in syms:
        admin.unpin(s)
