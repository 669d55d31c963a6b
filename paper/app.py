"""The paper exchange's ASGI application.

A plain ASGI callable (no framework on the hot path): WebSocket upgrades go to
:class:`~paper.streams.StreamServer`, /fapi/* goes through
:class:`~paper.fapi.FapiDispatch` (a dict lookup from (method, path) to a route, Binance's
auth and rate-limit rules, then a synchronous call into the in-memory engine), /_paper/* to
:mod:`paper.admin`. The app also owns the process's lifecycle: the background market tick and
the write-behind flush to SQLite.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import orjson

from . import admin
from .engine import Engine
from .errors import MSG_UNKNOWN
from .fapi import JSON_CT, USED_WEIGHT, FapiDispatch, client_ip
from .faults import Faults
from .limits import Limiter
from .market import Market, now_ms
from .routes import ROUTES, Route
from .settings import PaperSettings
from .store import Store
from .streams import StreamServer

__all__ = ["ROUTES", "PaperApp", "Route"]

log = logging.getLogger("paper")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class PaperApp:
    """One paper exchange: engine + protocol. Call :meth:`close` (or let lifespan do it) to flush."""

    def __init__(self, settings: PaperSettings, freeze_gc: bool = False):
        self.settings = settings
        self.freeze_gc = freeze_gc
        if settings.admin_token is not None:
            token = settings.admin_token.get_secret_value()
        else:
            token = secrets.token_urlsafe(24)
            log.warning("no AIQT_PAPER_ADMIN_TOKEN set; generated admin token: %s", token)
        self.admin_token = token
        self.store = Store(settings.db)
        self.market = Market(settings.seed)
        self.engine = Engine(self.market, self.store, settings.starting_balance)
        self.engine.load()
        for seed in settings.accounts:
            if seed.api_key not in self.engine.accounts:
                self.engine.create_account(seed.api_key, seed.api_secret.get_secret_value(), seed.name, seed.balance)
        self.store.flush()
        self.limiter = Limiter(
            settings.rate_limits, settings.weight_limit_1m, settings.order_limit_10s, settings.order_limit_1m
        )
        self.faults = Faults()
        self.fapi = FapiDispatch(self)
        self.streams = StreamServer(self)
        self._flush_handle: asyncio.TimerHandle | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._closed = False
        self._flush_delay = settings.flush_interval_ms / 1000
        self._next_tick = time.monotonic() + settings.tick_interval_s

    # ------------------------------------------------------------------ lifecycle ------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self.engine.save_clock()
        self.store.close()

    def _schedule_flush(self) -> None:
        if self._flush_handle is None and self.store.pending:
            self._flush_handle = asyncio.get_running_loop().call_later(self._flush_delay, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        try:
            self.store.flush()
        except Exception:
            log.exception("SQLite flush failed")
            self._schedule_flush()

    def tick(self) -> None:
        """One background step of the market: funding settlements, triggers, fills, liquidations."""
        self.engine.settle_funding(self.market.now())
        self.engine.evaluate()

    def pin_mark(self, symbol: str, price: Decimal) -> dict[str, object]:
        """Pin a symbol's mark and let it act at once (stops fire, orders fill, liquidations)."""
        self.market.pins[symbol] = price
        triggered, liquidated = self.engine.evaluate([symbol])
        self.store.flush()
        return {"symbol": symbol, "markPrice": str(price), "triggered": triggered, "liquidated": liquidated}

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(min(self.settings.tick_interval_s, 1.0))
            # State objects live for the life of the process and hold no reference cycles: move them
            # out of the cyclic GC's sight, so full collections stay short as the state grows. Only
            # in a process of our own: embedded in a test process it would freeze everyone's objects.
            if self.freeze_gc:
                gc.freeze()
            if time.monotonic() < self._next_tick:
                continue
            self._next_tick = time.monotonic() + self.settings.tick_interval_s
            try:
                self.tick()
                self._schedule_flush()
            except Exception:
                log.exception("market tick failed")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())
                self.streams.start()
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                if self._ticker is not None:
                    self._ticker.cancel()
                self.streams.stop()
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------ ASGI -----------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self.streams.serve(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    @staticmethod
    async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        path: str = scope["path"]
        method: str = scope["method"]
        try:
            if path.startswith("/_paper/"):
                status, payload = await admin.handle(self, method, path, scope, body)
                await self._send(send, status, orjson.dumps(payload), [JSON_CT])
                return
            status, out, headers = await self.fapi.handle(method, path, scope, body)
            if not any(h[0] == USED_WEIGHT for h in headers):
                used = self.limiter.used(client_ip(scope), now_ms())
                headers = [*headers, (USED_WEIGHT, str(used).encode())]
        except Exception:
            log.exception("unexpected error on %s %s", method, path)
            status, out, headers = 500, orjson.dumps({"code": -1000, "msg": MSG_UNKNOWN}), [JSON_CT]
        await self._send(send, status, out, headers)
        if self.store.pending and self._flush_handle is None:
            self._schedule_flush()
