"""Phase 1: latency at concurrency 1. Gateway and direct calls interleaved: klines, account summary,
open + close market (direct: the minimal signed calls a user would make; "direct, same calls": the
exact exchange calls the worker makes, including its idempotency look-up)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import httpx

from aiqt.client import sign_request
from bench.phases import KLINES, QTY, SYMBOL, metric_urls
from bench.stats import scrape_all, server_timing, stage_means_ms, summary_ms, worker_means_ms
from harness.fapi import signed_query
from harness.processes import ProcessStack

Timed = Callable[[], Awaitable[float]]


class Clients:
    """Signed calls to the gateway and straight to the paper exchange, over one keep-alive connection each."""

    def __init__(self, stack: ProcessStack) -> None:
        self.s = stack
        limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
        self.gw = httpx.AsyncClient(base_url=stack.gateway_url, limits=limits, timeout=15)
        self.ex = httpx.AsyncClient(base_url=stack.paper_url, limits=limits, timeout=15)
        self.timings: dict[str, list[dict[str, float]]] = {}

    async def close(self) -> None:
        await self.gw.aclose()
        await self.ex.aclose()

    # gateway ---------------------------------------------------------------------------------
    async def gateway(self, name: str, method: str, path: str, params: dict[str, str], body: Any = None) -> float:
        raw = json.dumps(body).encode() if body is not None else b""
        headers = {"X-API-KEY": self.s.keys.api_key}
        if raw:
            headers["Content-Type"] = "application/json"
        if method == "POST":
            headers["Idempotency-Key"] = uuid.uuid4().hex
        url = f"{path}?{sign_request(self.s.keys.api_secret, method, path, params, raw)}"
        t0 = time.perf_counter()
        r = await self.gw.request(method, url, content=raw or None, headers=headers)
        elapsed = time.perf_counter() - t0
        reply = r.json()
        if reply.get("code") != 200:
            raise RuntimeError(f"gateway {path}: {r.status_code} {reply}")
        self.timings.setdefault(name, []).append(server_timing(r.headers.get("server-timing")))
        return elapsed

    # direct ----------------------------------------------------------------------------------
    async def _ex(self, method: str, path: str, params: dict[str, str], *, signed: bool = True) -> httpx.Response:
        query = signed_query(self.s.keys.exchange_secret, params, recv_window=5000) if signed else urlencode(params)
        return await self.ex.request(method, f"{path}?{query}", headers={"X-MBX-APIKEY": self.s.keys.exchange_key})

    async def _ok(self, method: str, path: str, params: dict[str, str], *, signed: bool = True) -> Any:
        r = await self._ex(method, path, params, signed=signed)
        if r.status_code != 200:
            raise RuntimeError(f"paper {path}: {r.status_code} {r.text[:200]}")
        return r.json()

    async def direct_klines(self) -> float:
        t0 = time.perf_counter()
        await self._ok("GET", "/fapi/v1/klines", KLINES, signed=False)
        return time.perf_counter() - t0

    async def direct_summary(self) -> float:
        t0 = time.perf_counter()
        await asyncio.gather(
            self._ok("GET", "/fapi/v2/account", {}),
            self._ok("GET", "/fapi/v2/positionRisk", {}),
            self._ok("GET", "/fapi/v1/openOrders", {}),
            self._ok("GET", "/fapi/v1/openAlgoOrders", {}),
            self._ok("GET", "/fapi/v1/accountConfig", {}),
        )
        return time.perf_counter() - t0

    async def direct_open(self, *, lookup: bool) -> float:
        cid = uuid.uuid4().hex[:30]
        t0 = time.perf_counter()
        if lookup:  # what the worker does first: is this client order id already placed?
            await self._ex("GET", "/fapi/v1/order", {"symbol": SYMBOL, "origClientOrderId": cid})
        order = {
            "symbol": SYMBOL,
            "side": "BUY",
            "type": "MARKET",
            "quantity": QTY,
            "newClientOrderId": cid,
            "newOrderRespType": "RESULT",
        }
        await self._ok("POST", "/fapi/v1/order", order)
        return time.perf_counter() - t0

    async def direct_close(self, *, lookup: bool) -> float:
        cid = uuid.uuid4().hex[:30]
        t0 = time.perf_counter()
        if lookup:
            await self._ex("GET", "/fapi/v1/order", {"symbol": SYMBOL, "origClientOrderId": cid})
            await self._ok("GET", "/fapi/v2/positionRisk", {"symbol": SYMBOL})
        order = {
            "symbol": SYMBOL,
            "side": "SELL",
            "type": "MARKET",
            "quantity": QTY,
            "reduceOnly": "true",
            "newClientOrderId": cid,
            "newOrderRespType": "RESULT",
        }
        await self._ok("POST", "/fapi/v1/order", order)
        return time.perf_counter() - t0

    async def gw_klines(self) -> float:
        return await self.gateway("klines", "GET", "/api/market/klines", KLINES)

    async def gw_summary(self) -> float:
        return await self.gateway("summary", "GET", "/api/account/summary", {})

    async def gw_ping(self) -> float:
        return await self.gateway("ping", "GET", "/api/system/ping", {})

    async def gw_open(self) -> float:
        return await self.gateway(
            "open", "POST", "/api/order/open/market", {}, {"symbol": SYMBOL, "side": "BUY", "quantity": QTY}
        )

    async def gw_close(self) -> float:
        return await self.gateway(
            "close", "POST", "/api/order/close/market", {}, {"symbol": SYMBOL, "positionSide": "LONG"}
        )


class Samples:
    """Latencies by name; a failed call (say, a broker restart by someone else) is counted, not timed."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self.errors: dict[str, int] = {}

    async def timed(self, name: str, fn: Timed) -> float | None:
        try:
            value = await fn()
        except Exception as exc:
            self.errors[name] = self.errors.get(name, 0) + 1
            if self.errors[name] == 1:
                print(f"  {name} failed: {exc!r:.300}", flush=True)
            return None
        self.samples.setdefault(name, []).append(value)
        return value

    async def pair(self, prefix: str, tail: str, open_fn: Timed, close_fn: Timed) -> None:
        opened = await self.timed(f"{prefix} open{tail}", open_fn)
        if opened is not None:
            closed = await self.timed(f"{prefix} close{tail}", close_fn)
            if closed is not None:
                self.samples.setdefault(f"{prefix} open+close{tail}", []).append(opened + closed)


async def _warm(c: Clients) -> None:
    """Every path once warm (connections, caches such as the worker's hedge-mode cache)."""
    for _ in range(20):
        await c.gw_ping()
        await c.gw_klines()
        await c.direct_klines()
        await c.gw_summary()
        await c.direct_summary()
    for _ in range(5):
        await c.gw_open()
        await c.gw_close()
        await c.direct_open(lookup=False)
        await c.direct_close(lookup=False)
    c.timings.clear()


async def latency_phase(stack: ProcessStack, n_read: int, n_write: int) -> dict[str, Any]:
    c = Clients(stack)
    urls = metric_urls(stack)
    s = Samples()
    exchange: dict[str, Any] = {}
    stages: dict[str, Any] = {}

    async def measured(tag: str, pairs: list[tuple[str, Timed]], n: int) -> None:
        before = scrape_all(urls)
        for _ in range(n):
            for name, fn in pairs:  # interleaved, so background noise hits every variant alike
                await s.timed(name, fn)
        after = scrape_all(urls)
        exchange[tag] = worker_means_ms(before, after, "aiqt_exchange_request_seconds")
        stages[tag] = stage_means_ms(before["gateway"], after["gateway"], "aiqt_gateway_stage_seconds")

    try:
        await _warm(c)
        await measured("ping", [("gateway ping", c.gw_ping)], n_read)
        await measured("klines", [("gateway klines", c.gw_klines), ("direct klines", c.direct_klines)], n_read)
        await measured("summary", [("gateway summary", c.gw_summary), ("direct summary", c.direct_summary)], n_read)

        before = scrape_all(urls)
        for _ in range(n_write):
            await s.pair("gateway", "", c.gw_open, c.gw_close)
            await s.pair("direct", "", lambda: c.direct_open(lookup=False), lambda: c.direct_close(lookup=False))
            await s.pair(
                "direct", ", same calls", lambda: c.direct_open(lookup=True), lambda: c.direct_close(lookup=True)
            )
        exchange["open+close"] = worker_means_ms(before, scrape_all(urls), "aiqt_exchange_request_seconds")
    finally:
        await c.close()

    per_request_stages = {
        name: {
            stage: round(statistics.median([t[stage] for t in rows if stage in t]), 3)
            for stage in ("publish", "queue", "worker", "roundtrip")
            if any(stage in t for t in rows)
        }
        for name, rows in c.timings.items()
    }
    return {
        "latency": {name: summary_ms(v) for name, v in s.samples.items()},
        "errors": s.errors,
        "server_timing_p50_ms": per_request_stages,
        "gateway_stage_means": stages,
        "exchange_calls": exchange,
    }
