"""The fapi dispatch: one request through Binance's steps, each its own function.

1. armed test faults that answer instead of the exchange (5xx, 429, 418, -1021),
2. route lookup (404 / 405 as Binance words them),
3. request-weight limit, then authentication (API key, signature, recvWindow),
4. order-rate limits for order routes, then the handler,
5. an "executed but the response was lost" fault, applied after the handler ran.

Errors are :class:`~paper.errors.BinanceError` and become Binance's ``{"code", "msg"}`` bodies.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson

from .auth import check_signature, check_timestamp, parse_params
from .errors import (
    MSG_INTERNAL,
    MSG_KEY_FORMAT,
    MSG_KEY_INVALID,
    MSG_ME_WINDOW,
    MSG_TIMEOUT,
    MSG_TS_WINDOW,
    MSG_UNKNOWN_503,
    BinanceError,
)
from .faults import Fault
from .market import now_ms
from .models import Account
from .routes import ROUTES, Route

if TYPE_CHECKING:
    from .app import PaperApp

Headers = list[tuple[bytes, bytes]]
Response = tuple[int, bytes, Headers]
JSON_CT = (b"content-type", b"application/json")
USED_WEIGHT = b"x-mbx-used-weight-1m"


def _body(code: int, msg: str) -> bytes:
    return orjson.dumps({"code": code, "msg": msg})


def request_headers(scope: dict[str, Any], body: bytes) -> tuple[str | None, bool]:
    """(API key, whether the body is form-encoded) of a request."""
    api_key: str | None = None
    form = False
    for name, value in scope["headers"]:
        if name == b"x-mbx-apikey":
            api_key = value.decode("latin-1")
        elif name == b"content-type":
            form = value.startswith(b"application/x-www-form-urlencoded")
    if body and not form:
        form = b"=" in body and not body.startswith(b"{")
    return api_key, form


def client_ip(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "?"


class FapiDispatch:
    """Serves /fapi/* for one paper exchange."""

    def __init__(self, app: PaperApp):
        self.app = app

    async def handle(self, method: str, path: str, scope: dict[str, Any], body: bytes) -> Response:
        api_key, form = request_headers(scope, body)
        now = now_ms()
        ip = client_ip(scope)
        app = self.app
        fault = app.faults.take(method, path, api_key) if app.faults.armed else None
        if fault is not None:
            answered = self.fault_response(fault, ip, now)
            if answered is not None:
                return answered
        route = ROUTES.get((method, path))
        if route is None:
            return self.unknown_route(method, path, ip, now)
        status, out, headers = await self.call(route, scope, body, form, api_key, ip, now, fault)
        if fault is not None and fault.kind == "executed_response_lost":
            return await self.lost_response(fault, status, out, headers)
        return status, out, headers

    def fault_response(self, fault: Fault, ip: str, now: int) -> Response | None:
        """The answer of an armed fault that replaces the exchange's, or None if it does not."""
        headers: Headers = [JSON_CT]
        kind = fault.kind
        if kind == "http_5xx":
            return fault.status or 503, _body(-1001, MSG_INTERNAL), headers
        if kind == "service_unavailable":
            return 503, _body(-1001, "Service Unavailable."), headers
        if kind == "rate_limit_429":
            limit = self.app.settings.weight_limit_1m
            msg = (
                f"Too many requests; current limit is {limit} requests per minute. "
                "Please use the websocket for live updates to avoid polling the API."
            )
            return 429, _body(-1003, msg), [*headers, (b"retry-after", b"1")]
        if kind == "ban_418":
            msg = (
                f"Way too many requests; IP({ip}) banned until {now + 120_000}. "
                "Please use the websocket for live updates to avoid bans."
            )
            return 418, _body(-1003, msg), [*headers, (b"retry-after", b"120")]
        if kind == "timestamp_1021":
            return 400, _body(-1021, MSG_TS_WINDOW), headers
        return None

    def unknown_route(self, method: str, path: str, ip: str, now: int) -> Response:
        headers: Headers = [JSON_CT, (USED_WEIGHT, str(self.app.limiter.used(ip, now)).encode())]
        if any(known == path for _, known in ROUTES):
            return 405, _body(-1000, f"Method {method} is not allowed for {path}"), headers
        return 404, _body(-5000, f"Path {path}, Method {method} is invalid"), headers

    async def call(
        self,
        route: Route,
        scope: dict[str, Any],
        body: bytes,
        form: bool,
        api_key: str | None,
        ip: str,
        now: int,
        fault: Fault | None,
    ) -> Response:
        """Limits, authentication, then the handler; a BinanceError becomes its error body."""
        app = self.app
        query: bytes = scope["query_string"]
        headers: Headers = [JSON_CT]
        try:
            params = parse_params(query, body, form)
            headers.append((USED_WEIGHT, str(self.charge_weight(route, params, ip, now)).encode()))
            acc = None
            if route.signed:
                acc = self.authenticate(api_key, params, query, body, now)
            elif route.api_key_only:
                acc = self.account_of(api_key)
            if fault is not None and fault.kind == "delay":
                await asyncio.sleep((fault.delay_ms or 0) / 1000)
                if route.signed:
                    check_timestamp(params, now_ms(), -5028, MSG_ME_WINDOW)
            if route.order and acc is not None:
                count_10s, count_1m = app.limiter.order(acc.api_key, now)
                headers.append((b"x-mbx-order-count-10s", str(count_10s).encode()))
                headers.append((b"x-mbx-order-count-1m", str(count_1m).encode()))
            return 200, orjson.dumps(route.handler(app, acc, params)), headers
        except BinanceError as e:
            if e.status in (418, 429):
                app.limiter.refused(ip, e.status)
            return e.status, _body(e.code, e.msg), _with_error_headers(headers, e)

    def charge_weight(self, route: Route, params: dict[str, str], ip: str, now: int) -> int:
        try:
            return self.app.limiter.weight(ip, route.weight(params), now)
        except BinanceError as e:
            e.headers.setdefault("x-mbx-used-weight-1m", str(self.app.settings.weight_limit_1m))
            raise

    def authenticate(self, api_key: str | None, params: dict[str, str], query: bytes, body: bytes, now: int) -> Account:
        acc = self.account_of(api_key)
        check_signature(acc.secret_bytes, query, body)
        check_timestamp(params, now)
        return acc

    def account_of(self, api_key: str | None) -> Account:
        """The account of an X-MBX-APIKEY header (-2014 malformed, -2015 unknown)."""
        if not api_key or len(api_key) > 256 or not api_key.isprintable() or " " in api_key:
            raise BinanceError(-2014, MSG_KEY_FORMAT, 401)
        acc = self.app.engine.accounts.get(api_key)
        if acc is None:
            raise BinanceError(-2015, MSG_KEY_INVALID, 401)
        return acc

    async def lost_response(self, fault: Fault, status: int, out: bytes, headers: Headers) -> Response:
        """The request was executed; the client is told something else (or nothing in time)."""
        how = fault.lost_as or "503"
        if how == "-1007":
            return 408, _body(-1007, MSG_TIMEOUT), headers
        if how == "timeout":
            store = self.app.store
            if store.pending:
                store.flush()
            await asyncio.sleep((fault.delay_ms if fault.delay_ms is not None else 30_000) / 1000)
            return status, out, headers
        return 503, _body(-1000, MSG_UNKNOWN_503), headers


def _with_error_headers(headers: Headers, e: BinanceError) -> Headers:
    for name, value in e.headers.items():
        key = name.lower().encode()
        headers = [h for h in headers if h[0] != key]
        headers.append((key, value.encode()))
    if not any(h[0] == USED_WEIGHT for h in headers):
        headers.append((USED_WEIGHT, b"0"))
    return headers
