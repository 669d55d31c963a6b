"""The paper exchange's ASGI application.

A plain ASGI callable (no framework on the hot path): a dict lookup from (method, path) to a
route, Binance's auth and rate-limit rules, then a synchronous call into the in-memory engine.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from . import params as P
from .auth import check_signature, check_timestamp, parse_params
from .engine import Engine
from .errors import (
    MSG_INTERNAL,
    MSG_KEY_FORMAT,
    MSG_KEY_INVALID,
    MSG_ME_WINDOW,
    MSG_TIMEOUT,
    MSG_TS_WINDOW,
    MSG_UNKNOWN,
    MSG_UNKNOWN_503,
    BinanceError,
    err,
)
from .faults import KINDS as FAULT_KINDS
from .faults import LOST_AS, Faults
from .limits import Limiter
from .market import INTERVALS, Market, now_ms, quantize
from .models import Account, fmt
from .settings import PaperSettings
from .store import Store
from .symbols import MAKER_FEE, SYMBOLS, TAKER_FEE, SymbolSpec, bracket_json, exchange_info_symbol

log = logging.getLogger("paper")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[["PaperApp", Account | None, dict[str, str]], object]

JSON_CT = (b"content-type", b"application/json")


@dataclass(frozen=True, slots=True)
class Route:
    handler: Handler
    signed: bool
    weight: Callable[[dict[str, str]], int]
    order: bool = False


def _w(n: int) -> Callable[[dict[str, str]], int]:
    return lambda p: n


def _w_sym(with_symbol: int, without: int) -> Callable[[dict[str, str]], int]:
    return lambda p: with_symbol if p.get("symbol") else without


def _w_klines(p: dict[str, str]) -> int:
    lim_s = p.get("limit") or "500"
    lim = int(lim_s) if lim_s.isdigit() else 500
    return 1 if lim < 100 else 2 if lim < 500 else 5 if lim <= 1000 else 10


class PaperApp:
    """One paper exchange: engine + protocol. Call :meth:`close` (or let lifespan do it) to flush."""

    def __init__(self, settings: PaperSettings, freeze_gc: bool = False):
        self.settings = settings
        self.freeze_gc = freeze_gc
        if settings.admin_token is not None:
            tok = settings.admin_token.get_secret_value()
        else:
            tok = secrets.token_urlsafe(24)
            log.warning("no AIQT_PAPER_ADMIN_TOKEN set; generated admin token: %s", tok)
        self.admin_token = tok
        self._admin_token_b = tok.encode()
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
        # Rate-limit answers the limiter gave (not injected faults), for GET /_paper/limits.
        self.limited = {"429": 0, "418": 0}
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
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                if self._ticker is not None:
                    self._ticker.cancel()
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------ ASGI -----------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        typ = scope["type"]
        if typ == "http":
            await self._http(scope, receive, send)
        elif typ == "lifespan":
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
                status, payload = await self._admin(method, path, scope, body)
                await self._send(send, status, orjson.dumps(payload), [JSON_CT])
                return
            status, out, headers = await self._fapi(method, path, scope, body)
            if not any(h[0] == b"x-mbx-used-weight-1m" for h in headers):
                client = scope.get("client")
                used = self.limiter.used(client[0] if client else "?", now_ms())
                headers = [*headers, (b"x-mbx-used-weight-1m", str(used).encode())]
        except Exception:
            log.exception("unexpected error on %s %s", method, path)
            status, out, headers = 500, orjson.dumps({"code": -1000, "msg": MSG_UNKNOWN}), [JSON_CT]
        await self._send(send, status, out, headers)
        if self.store.pending and self._flush_handle is None:
            self._schedule_flush()

    # ------------------------------------------------------------------ fapi -----------------
    async def _fapi(
        self, method: str, path: str, scope: Scope, body: bytes
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        api_key: str | None = None
        form = False
        for k, v in scope["headers"]:
            if k == b"x-mbx-apikey":
                api_key = v.decode("latin-1")
            elif k == b"content-type":
                form = v.startswith(b"application/x-www-form-urlencoded")
        if body and not form:
            form = b"=" in body and not body.startswith(b"{")
        query: bytes = scope["query_string"]
        now = now_ms()
        client = scope.get("client")
        ip = client[0] if client else "?"
        headers: list[tuple[bytes, bytes]] = [JSON_CT]

        fault = self.faults.take(method, path, api_key) if self.faults.armed else None
        lost = None
        if fault is not None:
            kind = fault.kind
            if kind == "http_5xx":
                return fault.status or 503, orjson.dumps({"code": -1001, "msg": MSG_INTERNAL}), headers
            if kind == "service_unavailable":
                return 503, orjson.dumps({"code": -1001, "msg": "Service Unavailable."}), headers
            if kind == "rate_limit_429":
                return (
                    429,
                    orjson.dumps(
                        {
                            "code": -1003,
                            "msg": (
                                f"Too many requests; current limit is {self.settings.weight_limit_1m} "
                                "requests per minute. "
                                "Please use the websocket for live updates to avoid polling the API."
                            ),
                        }
                    ),
                    [*headers, (b"retry-after", b"1")],
                )
            if kind == "ban_418":
                return (
                    418,
                    orjson.dumps(
                        {
                            "code": -1003,
                            "msg": (
                                f"Way too many requests; IP({ip}) banned until {now + 120_000}. "
                                "Please use the websocket for live updates to avoid bans."
                            ),
                        }
                    ),
                    [*headers, (b"retry-after", b"120")],
                )
            if kind == "timestamp_1021":
                return 400, orjson.dumps({"code": -1021, "msg": MSG_TS_WINDOW}), headers
            if kind == "executed_response_lost":
                lost = fault
        route = ROUTES.get((method, path))
        if route is None:
            if any(p == path for _, p in ROUTES):
                return (
                    405,
                    orjson.dumps({"code": -1000, "msg": f"Method {method} is not allowed for {path}"}),
                    [*headers, (b"x-mbx-used-weight-1m", str(self.limiter.used(ip, now)).encode())],
                )
            return (
                404,
                orjson.dumps({"code": -5000, "msg": f"Path {path}, Method {method} is invalid"}),
                [*headers, (b"x-mbx-used-weight-1m", str(self.limiter.used(ip, now)).encode())],
            )
        try:
            params = parse_params(query, body, form)
            try:
                used = self.limiter.weight(ip, route.weight(params), now)
            except BinanceError as e:
                e.headers.setdefault("x-mbx-used-weight-1m", str(self.settings.weight_limit_1m))
                raise
            headers.append((b"x-mbx-used-weight-1m", str(used).encode()))
            acc = None
            if route.signed:
                acc = self._authenticate(api_key, params, query, body, now)
            if fault is not None and fault.kind == "delay":
                await asyncio.sleep((fault.delayMs or 0) / 1000)
                if route.signed:
                    check_timestamp(params, now_ms(), -5028, MSG_ME_WINDOW)
            if route.order and acc is not None:
                c10, c1m = self.limiter.order(acc.api_key, now)
                headers.append((b"x-mbx-order-count-10s", str(c10).encode()))
                headers.append((b"x-mbx-order-count-1m", str(c1m).encode()))
            result = route.handler(self, acc, params)
            status, out = 200, orjson.dumps(result)
        except BinanceError as e:
            status, out = e.status, orjson.dumps({"code": e.code, "msg": e.msg})
            if e.status in (418, 429):
                self.limited[str(e.status)] += 1
            for hk, hv in e.headers.items():
                hkb = hk.lower().encode()
                headers = [h for h in headers if h[0] != hkb]
                headers.append((hkb, hv.encode()))
            if not any(h[0] == b"x-mbx-used-weight-1m" for h in headers):
                headers.append((b"x-mbx-used-weight-1m", b"0"))
        if lost is not None:
            how = lost.lostAs or "503"
            if how == "-1007":
                return 408, orjson.dumps({"code": -1007, "msg": MSG_TIMEOUT}), headers
            if how == "timeout":
                if self.store.pending:
                    self.store.flush()
                await asyncio.sleep((lost.delayMs if lost.delayMs is not None else 30_000) / 1000)
                return status, out, headers
            return 503, orjson.dumps({"code": -1000, "msg": MSG_UNKNOWN_503}), headers
        return status, out, headers

    def _authenticate(
        self, api_key: str | None, params: dict[str, str], query: bytes, body: bytes, now: int
    ) -> Account:
        if not api_key or len(api_key) > 256 or not api_key.isprintable() or " " in api_key:
            raise BinanceError(-2014, MSG_KEY_FORMAT, 401)
        acc = self.engine.accounts.get(api_key)
        if acc is None:
            raise BinanceError(-2015, MSG_KEY_INVALID, 401)
        check_signature(acc.secret_bytes, query, body)
        check_timestamp(params, now)
        return acc

    # ------------------------------------------------------------------ admin ----------------
    async def _admin(self, method: str, path: str, scope: Scope, body: bytes) -> tuple[int, object]:
        if path == "/_paper/health":
            return 200, {"status": "ok"}
        token = b""
        for k, v in scope["headers"]:
            if k == b"x-paper-admin-token":
                token = v
        if not hmac.compare_digest(token, self._admin_token_b):
            return 401, {"code": 401, "msg": "Missing or invalid X-Paper-Admin-Token."}
        try:
            data = orjson.loads(body) if body else {}
            if not isinstance(data, dict):
                raise ValueError("body must be a JSON object")
            return 200, await self._admin_route(method, path, data)
        except _AdminError as e:
            return e.status, {"code": e.status, "msg": e.msg}
        except (ValueError, TypeError, KeyError, InvalidOperation, orjson.JSONDecodeError) as e:
            return 400, {"code": 400, "msg": f"Bad request: {e}"}

    async def _admin_route(self, method: str, path: str, data: dict[str, Any]) -> object:
        eng = self.engine
        parts = path.split("/")[2:]  # after "/_paper/"
        match method, parts:
            case "POST", ["accounts"]:
                key = data.get("apiKey") or eng.new_key()
                secret = data.get("apiSecret") or eng.new_key()
                if key in eng.accounts:
                    raise _AdminError(409, "apiKey already exists")
                bal = data.get("balance")
                acc = eng.create_account(
                    str(key),
                    str(secret),
                    str(data.get("name") or f"acct-{len(eng.accounts) + 1}"),
                    None if bal is None else Decimal(str(bal)),
                )
                self.store.flush()
                return {
                    "name": acc.name,
                    "apiKey": acc.api_key,
                    "apiSecret": acc.api_secret,
                    "balance": fmt(acc.balance, 8),
                }
            case "GET", ["accounts"]:
                return [
                    {"name": a.name, "apiKey": a.api_key, "balance": fmt(a.balance, 8)} for a in eng.accounts.values()
                ]
            case "GET", ["accounts", key, "state"]:
                held = eng.accounts.get(key)
                if held is None:
                    raise _AdminError(404, "unknown apiKey")
                return eng.state(held)
            case "POST", ["mark"]:
                spec = self._spec(data)
                price = Decimal(str(data["price"]))
                if price <= 0:
                    raise _AdminError(400, "price must be > 0")
                return self._pin(spec.symbol, quantize(price, spec.tick))
            case "POST", ["mark", "step"]:
                spec = self._spec(data)
                pct = Decimal(str(data["pct"]))
                cur = self.market.price(spec.symbol)
                new = quantize(cur * (1 + pct / 100), spec.tick)
                if new <= 0:
                    raise _AdminError(400, "resulting price must be > 0")
                return self._pin(spec.symbol, new)
            case "DELETE", ["mark", sym]:
                spec = self._spec({"symbol": sym})
                self.market.pins.pop(spec.symbol, None)
                return {"symbol": spec.symbol, "markPrice": str(self.market.price(spec.symbol))}
            case "GET", ["mark"]:
                return {s: {"markPrice": str(self.market.price(s)), "pinned": s in self.market.pins} for s in SYMBOLS}
            case "POST", ["clock", "advance"]:
                ms = int(data["ms"])
                if ms < 0:
                    raise _AdminError(400, "ms must be >= 0")
                # walk the skipped interval in steps (≤ 5 min, ≤ 500 steps), so a stop whose price
                # was crossed on the way fires and funding settles in order with it
                target = self.market.offset + ms
                step = max(300_000, -(-ms // 500))
                settled = 0
                triggered: list[int] = []
                liquidated: list[dict[str, object]] = []
                while True:
                    self.market.offset = min(self.market.offset + step, target)
                    self.market._cache.clear()
                    settled += eng.settle_funding(self.market.now())
                    tr, lq = eng.evaluate()
                    triggered += tr
                    liquidated += lq
                    if self.market.offset >= target:
                        break
                eng.save_clock()
                self.store.flush()
                return {
                    "marketTime": self.market.now(),
                    "wallTime": now_ms(),
                    "fundingSettled": settled,
                    "triggered": triggered,
                    "liquidated": liquidated,
                }
            case "GET", ["clock"]:
                return {"marketTime": self.market.now(), "wallTime": now_ms()}
            case "POST", ["faults"]:
                kind = data.get("kind")
                if kind not in FAULT_KINDS:
                    raise _AdminError(400, f"kind must be one of {', '.join(FAULT_KINDS)}")
                lost = data.get("lostAs")
                if lost is not None and str(lost) not in LOST_AS:
                    raise _AdminError(400, "lostAs must be 503, -1007 or timeout")
                f = self.faults.arm(
                    kind,
                    count=int(data.get("count", 1)),
                    method=data.get("method"),
                    path=data.get("path"),
                    apiKey=data.get("apiKey"),
                    status=None if data.get("status") is None else int(data["status"]),
                    delayMs=None if data.get("delayMs") is None else int(data["delayMs"]),
                    lostAs=None if lost is None else str(lost),
                )
                return f.json()
            case "GET", ["faults"]:
                return [f.json() for f in self.faults.armed]
            case "DELETE", ["faults"]:
                self.faults.clear()
                return {"status": "ok"}
            case "POST", ["reset"]:
                eng.reset()
                self.faults.clear()
                self.limiter.reset()
                self.store.flush()
                return {"status": "ok"}
            case "POST", ["flush"]:
                return {"rows": self.store.flush()}
            case "GET", ["limits"]:
                lim, now = self.limiter, now_ms()
                return {
                    "enforced": lim.enforce,
                    "limits": {"weight1m": lim.weight_1m, "orders10s": lim.orders_10s, "orders1m": lim.orders_1m},
                    "usedWeight1m": {ip: lim.used(ip, now) for ip in lim._ips},
                    "limited": dict(self.limited),
                }
        raise _AdminError(404, f"no such control: {method} {path}")

    def _spec(self, data: dict[str, Any]) -> Any:
        spec = SYMBOLS.get(str(data.get("symbol", "")).upper())
        if spec is None:
            raise _AdminError(400, "unknown symbol")
        return spec

    def _pin(self, sym: str, price: Decimal) -> dict[str, object]:
        self.market.pins[sym] = price
        triggered, liquidated = self.engine.evaluate([sym])
        self.store.flush()
        return {"symbol": sym, "markPrice": str(price), "triggered": triggered, "liquidated": liquidated}


class _AdminError(Exception):
    def __init__(self, status: int, msg: str):
        super().__init__(msg)
        self.status = status
        self.msg = msg


# ---------------------------------------------------------------------- fapi handlers --------
def _ping(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    return {}


def _time(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    return {"serverTime": now_ms()}


_EXCHANGE_INFO_SYMBOLS = [exchange_info_symbol(s) for s in SYMBOLS.values()]


def _exchange_info(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    s = app.settings
    return {
        "timezone": "UTC",
        "serverTime": now_ms(),
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": s.weight_limit_1m},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": s.order_limit_1m},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": s.order_limit_10s},
        ],
        "exchangeFilters": [],
        "assets": [
            {"asset": a, "marginAvailable": True, "autoAssetExchange": "0" if a == "USDT" else "-100"}
            for a in ("USDT", "USDC", "FDUSD", "BNB", "ETH", "BTC")
        ],
        "symbols": _EXCHANGE_INFO_SYMBOLS,
    }


def _klines(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    spec = P.symbol(p)
    assert spec is not None
    interval = P.req(p, "interval")
    if interval not in INTERVALS:
        raise err(-1120, "Invalid interval.")
    lim = P.limit(p, 500, 1500)
    start = P.integer(p, "startTime")
    end = P.integer(p, "endTime")
    if start is not None and end is not None and start > end:
        raise err(-1023, "Start time is greater than end time.")
    return app.market.klines(spec, interval, start, end, lim)


def _premium_one(app: PaperApp, sym: str) -> dict[str, object]:
    m = app.market
    t = m.now()
    mark = m.price(sym, t)
    nft = m.next_funding_time(t)
    return {
        "symbol": sym,
        "markPrice": fmt(mark, 8),
        "indexPrice": fmt(mark * Decimal("0.99985"), 8),
        "estimatedSettlePrice": fmt(mark * Decimal("0.99990"), 8),
        "lastFundingRate": fmt(m.funding_rate(sym, nft), 8),
        "interestRate": "0.00010000",
        "nextFundingTime": nft,
        "time": t,
    }


def _premium_index(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    spec = P.symbol(p, required=False)
    if spec is not None:
        return _premium_one(app, spec.symbol)
    return [_premium_one(app, s) for s in SYMBOLS]


def _ticker_price(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    spec = P.symbol(p, required=False)
    t = app.market.now()

    def one(sym: str) -> dict[str, object]:
        return {"symbol": sym, "price": fmt(app.market.price(sym, t), SYMBOLS[sym].price_precision), "time": t}

    return one(spec.symbol) if spec is not None else [one(s) for s in SYMBOLS]


def _ticker_24hr(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    spec = P.symbol(p, required=False)
    m = app.market
    now = m.now()

    def one(s: SymbolSpec) -> dict[str, object]:
        rows = m.klines(s, "1h", now - 24 * 3_600_000 + 1, None, 25)
        last = m.price(s.symbol, now)
        opn = m.walk_price(s.symbol, now - 24 * 3_600_000)
        hi = max([Decimal(str(r[2])) for r in rows] + [opn, last])
        lo = min([Decimal(str(r[3])) for r in rows] + [opn, last])
        vol = sum((Decimal(str(r[5])) for r in rows), Decimal(0))
        qvol = sum((Decimal(str(r[7])) for r in rows), Decimal(0))
        pp = s.price_precision
        change = last - opn
        return {
            "symbol": s.symbol,
            "priceChange": fmt(change, pp),
            "priceChangePercent": fmt(change / opn * 100, 3),
            "weightedAvgPrice": fmt(qvol / vol if vol else last, pp),
            "lastPrice": fmt(last, pp),
            "lastQty": fmt(s.min_qty, s.qty_precision),
            "openPrice": fmt(opn, pp),
            "highPrice": fmt(hi, pp),
            "lowPrice": fmt(lo, pp),
            "volume": fmt(vol, s.qty_precision),
            "quoteVolume": fmt(qvol, 2),
            "openTime": now - 24 * 3_600_000,
            "closeTime": now,
            "firstId": 1,
            "lastId": int(vol / s.min_qty) or 1,
            "count": int(vol / s.min_qty) or 1,
        }

    return one(spec) if spec is not None else [one(x) for x in SYMBOLS.values()]


def _book_ticker(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    spec = P.symbol(p, required=False)
    t = app.market.now()

    def one(s: SymbolSpec) -> dict[str, object]:
        px = app.market.price(s.symbol, t)
        q = fmt(s.min_qty * 40, s.qty_precision)
        return {
            "symbol": s.symbol,
            "bidPrice": fmt(px, s.price_precision),
            "bidQty": q,
            "askPrice": fmt(px + s.tick, s.price_precision),
            "askQty": q,
            "time": t,
        }

    return one(spec) if spec is not None else [one(x) for x in SYMBOLS.values()]


_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)


def _depth(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    """A synthetic book around the current price: best bid = the price, best ask one tick above."""
    spec = P.symbol(p)
    assert spec is not None
    n = P.integer(p, "limit", default=500) or 500
    if n not in _DEPTH_LIMITS:
        raise err(-1130, "Data sent for parameter 'limit' is not valid.")
    t = app.market.now()
    px = app.market.price(spec.symbol, t)
    qp = spec.qty_precision
    base = spec.min_qty * 20

    def qty(i: int, side: int) -> str:
        return fmt(base * (1 + (i * 7 + side * 3 + t // 1000) % 13), qp)

    bids = [[fmt(px - i * spec.tick, spec.price_precision), qty(i, 0)] for i in range(n)]
    asks = [[fmt(px + (i + 1) * spec.tick, spec.price_precision), qty(i, 1)] for i in range(n)]
    return {"lastUpdateId": t, "E": t, "T": t, "bids": bids, "asks": asks}


def _leverage_bracket(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    spec = P.symbol(p, required=False)
    if spec is not None:
        return bracket_json(spec)
    return [bracket_json(s) for s in SYMBOLS.values()]


def _commission(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    spec = P.symbol(p)
    assert spec is not None
    return {
        "symbol": spec.symbol,
        "makerCommissionRate": str(MAKER_FEE),
        "takerCommissionRate": str(TAKER_FEE),
        "rpiCommissionRate": "0",
    }


def _e(fn: Callable[[Engine, Account, dict[str, str]], object]) -> Handler:
    def h(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
        assert acc is not None
        return fn(app.engine, acc, p)

    return h


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/fapi/v1/ping"): Route(_ping, False, _w(1)),
    ("GET", "/fapi/v1/time"): Route(_time, False, _w(1)),
    ("GET", "/fapi/v1/exchangeInfo"): Route(_exchange_info, False, _w(1)),
    ("GET", "/fapi/v1/klines"): Route(_klines, False, _w_klines),
    ("GET", "/fapi/v1/premiumIndex"): Route(_premium_index, False, _w_sym(1, 10)),
    ("GET", "/fapi/v1/fundingRate"): Route(lambda a, acc, p: a.engine.funding_history(p), False, _w(1)),
    ("GET", "/fapi/v1/ticker/price"): Route(_ticker_price, False, _w_sym(1, 2)),
    ("GET", "/fapi/v2/ticker/price"): Route(_ticker_price, False, _w_sym(1, 2)),
    ("GET", "/fapi/v1/ticker/24hr"): Route(_ticker_24hr, False, _w_sym(1, 40)),
    ("GET", "/fapi/v1/ticker/bookTicker"): Route(_book_ticker, False, _w_sym(2, 5)),
    ("GET", "/fapi/v1/depth"): Route(
        _depth,
        False,
        lambda p: {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10}.get(
            int(p["limit"]) if (p.get("limit") or "").isdigit() else 500, 20
        ),
    ),
    ("GET", "/fapi/v1/fundingInfo"): Route(lambda a, acc, p: [], False, _w(0)),
    ("GET", "/fapi/v2/account"): Route(_e(lambda e, a, p: e.account(a, v3=False)), True, _w(5)),
    ("GET", "/fapi/v3/account"): Route(_e(lambda e, a, p: e.account(a, v3=True)), True, _w(5)),
    ("GET", "/fapi/v2/balance"): Route(_e(lambda e, a, p: e.balances(a)), True, _w(5)),
    ("GET", "/fapi/v3/balance"): Route(_e(lambda e, a, p: e.balances(a)), True, _w(5)),
    ("GET", "/fapi/v2/positionRisk"): Route(_e(lambda e, a, p: e.position_risk(a, p, v3=False)), True, _w(5)),
    ("GET", "/fapi/v3/positionRisk"): Route(_e(lambda e, a, p: e.position_risk(a, p, v3=True)), True, _w(5)),
    ("GET", "/fapi/v1/openOrders"): Route(_e(Engine.open_orders), True, _w_sym(1, 40)),
    ("GET", "/fapi/v1/openOrder"): Route(_e(Engine.open_order), True, _w(1)),
    ("POST", "/fapi/v1/order"): Route(_e(Engine.new_order), True, _w(0), order=True),
    ("POST", "/fapi/v1/order/test"): Route(_e(lambda e, a, p: e.new_order(a, p, test=True)), True, _w(1)),
    ("GET", "/fapi/v1/order"): Route(_e(Engine.query_order), True, _w(1)),
    ("DELETE", "/fapi/v1/order"): Route(_e(Engine.cancel_order), True, _w(1)),
    ("PUT", "/fapi/v1/order"): Route(_e(Engine.modify_order), True, _w(1), order=True),
    ("DELETE", "/fapi/v1/allOpenOrders"): Route(_e(Engine.cancel_all), True, _w(1)),
    ("GET", "/fapi/v1/allOrders"): Route(_e(Engine.all_orders), True, _w(5)),
    ("GET", "/fapi/v1/userTrades"): Route(_e(Engine.user_trades), True, _w(5)),
    ("POST", "/fapi/v1/algoOrder"): Route(_e(Engine.new_algo), True, _w(0), order=True),
    ("GET", "/fapi/v1/algoOrder"): Route(_e(Engine.query_algo), True, _w(1)),
    ("DELETE", "/fapi/v1/algoOrder"): Route(_e(Engine.cancel_algo), True, _w(1)),
    ("GET", "/fapi/v1/openAlgoOrders"): Route(_e(Engine.open_algos), True, _w_sym(1, 40)),
    ("GET", "/fapi/v1/allAlgoOrders"): Route(_e(Engine.all_algos), True, _w(5)),
    ("DELETE", "/fapi/v1/algoOpenOrders"): Route(_e(Engine.cancel_all_algo), True, _w(1)),
    ("POST", "/fapi/v1/leverage"): Route(_e(Engine.set_leverage), True, _w(1)),
    ("POST", "/fapi/v1/marginType"): Route(_e(Engine.set_margin_type), True, _w(1)),
    ("GET", "/fapi/v1/positionSide/dual"): Route(_e(lambda e, a, p: {"dualSidePosition": a.dual}), True, _w(30)),
    ("POST", "/fapi/v1/positionSide/dual"): Route(_e(Engine.set_dual), True, _w(1)),
    ("GET", "/fapi/v1/leverageBracket"): Route(_leverage_bracket, True, _w(1)),
    ("GET", "/fapi/v1/symbolConfig"): Route(_e(Engine.symbol_config), True, _w(5)),
    ("GET", "/fapi/v1/accountConfig"): Route(_e(lambda e, a, p: e.account_config(a)), True, _w(5)),
    ("GET", "/fapi/v1/income"): Route(_e(Engine.income), True, _w(30)),
    ("GET", "/fapi/v1/commissionRate"): Route(_commission, True, _w(20)),
}
