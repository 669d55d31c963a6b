"""A signed client for AIQT's REST API, async and sync, on httpx.

    async with AsyncAiqtClient(url, api_key, api_secret) as c:
        reply = await c.open_market("BTCUSDT", "BUY", "0.01", stop_loss="90000")
        reply.code, reply.msg, reply.data

Every call returns a `Reply` (the envelope, the HTTP status, the Idempotency-Key used); errors
are replies too, never exceptions, except for transport failures (httpx errors).
Writes get an Idempotency-Key (generated unless given): pass the same key to retry safely.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

import httpx
import websockets

from schemas import codec, signing
from schemas.enums import CommandType
from schemas.registry import COMMANDS

Number = Decimal | str | int


STREAM_PATH = "/api/stream"


class StreamError(Exception):
    """The gateway refused or ended an event stream (its `code` and `msg`)."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


@dataclass(frozen=True)
class Reply:
    status: int
    code: int
    msg: str
    data: Any
    idempotency_key: str | None
    headers: httpx.Headers

    @property
    def ok(self) -> bool:
        return self.code == 200


def sign_request(
    secret: str,
    method: str,
    path: str,
    params: dict[str, Any] | None = None,
    body: bytes = b"",
    *,
    recv_window: int = 5000,
    now_ms: int | None = None,
) -> str:
    """The signed query string of a request: `params`, `timestamp`, `recvWindow`, then `signature` over
    the method, the path, that query and the body (see `schemas.signing`)."""
    items = [(k, _text(v)) for k, v in (params or {}).items() if v is not None]
    items += [
        ("timestamp", str(now_ms if now_ms is not None else int(time.time() * 1000))),
        ("recvWindow", str(recv_window)),
    ]
    query = urlencode(items)
    return f"{query}&signature={signing.sign(secret, method, path, query, body)}"


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Decimal):
        return format(v, "f")
    return str(v)


def _num(v: Number | None) -> Decimal | None:
    return None if v is None else Decimal(str(v))


R = TypeVar("R")


class _Endpoints(Generic[R]):
    """The REST API's endpoints, written once. `R` is `Reply` for the sync client and
    `Awaitable[Reply]` for the async one: each endpoint hands its request to `request`. Method, path
    and where the fields travel (path, query or JSON body) come from the registry
    (`schemas.registry.COMMANDS`); only the Python signatures are written here."""

    def __init__(self, url: str, api_key: str, api_secret: str, *, recv_window: int = 5000) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self._secret = api_secret
        self.recv_window = recv_window

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> R:
        raise NotImplementedError

    def _prepare(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        body: dict[str, Any] | None,
        idempotency_key: str | None,
    ) -> tuple[str, bytes, dict[str, str], str | None]:
        raw = codec.dumps({k: v for k, v in body.items() if v is not None}) if body is not None else b""
        query = sign_request(self._secret, method, path, params, raw, recv_window=self.recv_window)
        headers = {"X-API-KEY": self.api_key}
        if raw:
            headers["Content-Type"] = "application/json"
        key = idempotency_key
        if method != "GET":
            key = key or uuid.uuid4().hex
            headers["Idempotency-Key"] = key
        return f"{self.url}{path}?{query}", raw, headers, key

    @staticmethod
    def _reply(response: httpx.Response, key: str | None) -> Reply:
        try:
            body = codec.loads(response.content)
        except ValueError:
            body = {"code": response.status_code, "msg": response.text[:200], "data": None}
        if not isinstance(body, dict):
            body = {"code": response.status_code, "msg": "unexpected body", "data": body}
        return Reply(
            response.status_code,
            int(body.get("code", response.status_code)),
            str(body.get("msg", "")),
            body.get("data"),
            response.headers.get("idempotency-key", key),
            response.headers,
        )

    def command(self, command: CommandType, fields: dict[str, Any], *, idempotency_key: str | None = None) -> R:
        """Send one command: the path's fields fill its template, the rest go in the query or the body."""
        spec = COMMANDS[command]
        path = spec.path.format(**{name: fields[name] for name in spec.path_fields})
        rest = {k: v for k, v in fields.items() if k not in spec.path_fields}
        if spec.has_body:
            return self.request(spec.method, path, None, rest, idempotency_key=idempotency_key)
        return self.request(spec.method, path, rest, idempotency_key=idempotency_key)

    def account_summary(self, symbol: str | None = None, *, show_zero: bool = False) -> R:
        return self.command(CommandType.ACCOUNT_SUMMARY, {"symbol": symbol, "showZero": "true" if show_zero else None})

    def klines(self, symbol: str, interval: str | None = None, limit: int | None = None) -> R:
        return self.command(CommandType.MARKET_KLINES, {"symbol": symbol, "interval": interval, "limit": limit})

    def funding_rate(self, symbol: str, limit: int | None = None) -> R:
        return self.command(CommandType.MARKET_FUNDING_RATE, {"symbol": symbol, "limit": limit})

    def open_market(
        self,
        symbol: str,
        side: str,
        quantity: Number,
        *,
        reduce_only: bool = False,
        stop_loss: Number | None = None,
        take_profit: Number | None = None,
        idempotency_key: str | None = None,
    ) -> R:
        body = {
            "symbol": symbol,
            "side": side,
            "quantity": _num(quantity),
            "reduceOnly": reduce_only,
            "stopLoss": _num(stop_loss),
            "takeProfit": _num(take_profit),
        }
        return self.command(CommandType.ORDER_OPEN_MARKET, body, idempotency_key=idempotency_key)

    def close_market(
        self, symbol: str, position_side: str, quantity: Number | None = None, *, idempotency_key: str | None = None
    ) -> R:
        body = {"symbol": symbol, "positionSide": position_side, "quantity": _num(quantity)}
        return self.command(CommandType.ORDER_CLOSE_MARKET, body, idempotency_key=idempotency_key)

    def cancel_order(self, order_id: int, symbol: str, *, idempotency_key: str | None = None) -> R:
        fields = {"orderId": order_id, "symbol": symbol}
        return self.command(CommandType.ORDER_CANCEL, fields, idempotency_key=idempotency_key)

    def modify_order(
        self,
        order_id: int,
        symbol: str,
        side: str,
        quantity: Number,
        price: Number,
        *,
        idempotency_key: str | None = None,
    ) -> R:
        body = {"orderId": order_id, "symbol": symbol, "side": side, "quantity": _num(quantity), "price": _num(price)}
        return self.command(CommandType.ORDER_MODIFY, body, idempotency_key=idempotency_key)

    def set_leverage(self, symbol: str, leverage: int, *, idempotency_key: str | None = None) -> R:
        body = {"symbol": symbol, "leverage": leverage}
        return self.command(CommandType.POSITION_LEVERAGE, body, idempotency_key=idempotency_key)

    def set_margin_mode(self, symbol: str, margin_type: str, *, idempotency_key: str | None = None) -> R:
        body = {"symbol": symbol, "marginType": margin_type}
        return self.command(CommandType.POSITION_MARGIN_MODE, body, idempotency_key=idempotency_key)

    def halt(self, flatten: bool = False, *, idempotency_key: str | None = None) -> R:
        """The kill switch (admin scope): cancel every open order, with `flatten` close every position,
        and refuse opening orders until `resume()`."""
        return self.command(CommandType.ACCOUNT_HALT, {"flatten": flatten}, idempotency_key=idempotency_key)

    def resume(self, *, idempotency_key: str | None = None) -> R:
        """Lift the halt (admin scope): opening orders are accepted again."""
        return self.command(CommandType.ACCOUNT_RESUME, {}, idempotency_key=idempotency_key)

    def command_status(self, key: str, symbol: str | None = None) -> R:
        """What became of the command sent with Idempotency-Key `key` (what a 504 points to): the orders
        it placed, looked up at the exchange; never executes anything."""
        return self.command(CommandType.COMMAND_STATUS, {"idempotencyKey": key, "symbol": symbol})

    def ping(self) -> R:
        return self.command(CommandType.SYSTEM_PING, {})


class AsyncAiqtClient(_Endpoints[Awaitable[Reply]]):
    """Async client: `await c.open_market(...)`. Use as an async context manager, or pass your own
    httpx.AsyncClient."""

    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        recv_window: int = 5000,
    ) -> None:
        super().__init__(url, api_key, api_secret, recv_window=recv_window)
        self._http = http or httpx.AsyncClient(timeout=timeout)

    async def __aenter__(self) -> AsyncAiqtClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Awaitable[Reply]:
        return self._send(*self._prepare(method, path, params, body, idempotency_key), method)

    async def _send(self, url: str, raw: bytes, headers: dict[str, str], key: str | None, method: str) -> Reply:
        response = await self._http.request(method, url, content=raw, headers=headers)
        return self._reply(response, key)

    async def events(
        self, topics: list[str] | None = None, *, since: int | None = None, reconnect: bool = True
    ) -> AsyncIterator[dict[str, Any]]:
        """Account events as they happen (`GET /api/stream`), as dicts `{type, account, seq, time, data}`
        (market data: `{type: "market", stream, symbol, time, data}`).

        With `reconnect` (the default) a dropped connection is re-made with `since=<last seq>`, so the
        gateway first sends what was missed: the iteration sees every seq once, in order. An error
        frame (`{"type": "error", ...}`, e.g. code 410 when the gap is too old to replay) ends it with
        `StreamError`."""
        last = since
        backoff = 0.2
        while True:
            params: dict[str, Any] = {}
            if topics:
                params["topics"] = ",".join(topics)
            if last is not None:
                params["since"] = last
            query = sign_request(self._secret, "GET", STREAM_PATH, params, recv_window=self.recv_window)
            url = self.url.replace("http", "ws", 1) + f"{STREAM_PATH}?{query}"
            try:
                async with websockets.connect(url, additional_headers={"X-API-KEY": self.api_key}) as ws:
                    backoff = 0.2
                    async for frame in ws:
                        event = codec.loads(frame)
                        if event.get("type") == "error":
                            raise StreamError(int(event.get("code", 0)), str(event.get("msg", "")))
                        seq = event.get("seq")
                        if isinstance(seq, int):
                            if last is not None and seq <= last:
                                continue  # a repeat: delivery is at least once
                            last = seq
                        yield event
            except (OSError, websockets.exceptions.WebSocketException):
                if not reconnect:
                    raise
            if not reconnect:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


class AiqtClient(_Endpoints[Reply]):
    """Sync client with the same methods as AsyncAiqtClient."""

    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        *,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
        recv_window: int = 5000,
    ) -> None:
        super().__init__(url, api_key, api_secret, recv_window=recv_window)
        self._http = http or httpx.Client(timeout=timeout)

    def __enter__(self) -> AiqtClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Reply:
        url, raw, headers, key = self._prepare(method, path, params, body, idempotency_key)
        return self._reply(self._http.request(method, url, content=raw, headers=headers), key)
