"""The REST API: one route per documented endpoint, each publishing a command and returning the
worker's `{code, msg, data}` reply unchanged. No trading logic lives here."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from aiqt.logs import command_id as log_command_id
from bus import BusTimeout, BusUnavailable, RpcClient
from gateway import docs, metrics
from gateway.auth import Authenticator, AuthError
from gateway.idempotency import KEY_RE, IdempotencyCache, Stored, command_id, new_key
from gateway.settings import GatewaySettings
from schemas import codec, errors
from schemas.codec import JsonDecodeError
from schemas.enums import MUTATING_COMMANDS, CommandType
from schemas.validation import InvalidCommand, parse_payload

log = logging.getLogger("aiqt.gateway")

AUTH_PARAMS = frozenset({"timestamp", "recvWindow", "signature"})
#: Replies that say nothing final about the command: not remembered for its Idempotency-Key.
NOT_FINAL = frozenset({errors.CONFLICT, errors.RATE_LIMITED, errors.INTERNAL, errors.UNAVAILABLE, errors.TIMEOUT})


def envelope(status: int, code: int, msg: str, data: Any = None, headers: dict[str, str] | None = None) -> Response:
    return Response(codec.dumps({"code": code, "msg": msg, "data": data}), status, headers, "application/json")


class Gateway:
    """What the routes share: settings, the authenticator, the RPC client, the idempotency cache."""

    def __init__(self, settings: GatewaySettings, rpc: RpcClient) -> None:
        self.settings = settings
        self.rpc = rpc
        self.auth = Authenticator(settings.client_keys)
        self.idempotency = IdempotencyCache(settings.idempotency_ttl, settings.idempotency_max_entries)
        self._ready_at = 0.0
        self._ready = False

    async def dispatch(self, request: Request, command: CommandType, fields: dict[str, Any]) -> Response:
        started = time.perf_counter()
        response = await self._dispatch(request, command, fields)
        code = response.headers.get("x-aiqt-code", str(response.status_code))
        metrics.REQUESTS.labels(command=command.value, code=code).inc()
        metrics.REQUEST_SECONDS.labels(command=command.value).observe(time.perf_counter() - started)
        return response

    async def _dispatch(self, request: Request, command: CommandType, fields: dict[str, Any]) -> Response:
        t0 = time.perf_counter()
        raw_query = request.scope["query_string"].decode("latin-1")
        body = await _read_body(request, self.settings.max_body_bytes)
        if body is None:
            return envelope(400, 400, f"body: larger than {self.settings.max_body_bytes} bytes")
        try:
            client = self.auth.verify(request.headers.get("x-api-key"), raw_query, body)
        except AuthError as exc:
            return envelope(exc.status, exc.code, exc.msg)

        payload = dict(fields)
        if body.strip():
            try:
                parsed = codec.loads(body)
            except JsonDecodeError as exc:
                return envelope(400, 400, f"body: {exc}")
            if not isinstance(parsed, dict):
                return envelope(400, 400, "body: must be a JSON object")
            payload = {**parsed, **payload}
        try:
            model = parse_payload(command, payload)
        except InvalidCommand as exc:
            return envelope(400, exc.code, exc.msg, exc.data)

        idem = request.headers.get("idempotency-key")
        if idem is not None and not KEY_RE.match(idem):
            return envelope(400, 400, "Idempotency-Key: 1 to 64 characters of A-Z a-z 0-9 _ . : -")
        key = idem or new_key()
        cid = command_id(client.key, key)
        log_command_id.set(cid)
        message = codec.dumps({"type": command.value, "account": client.account, "payload": model.model_dump()})
        metrics.STAGE_SECONDS.labels(stage="auth_parse").observe(time.perf_counter() - t0)
        headers = {"Idempotency-Key": key, "X-Command-Id": cid}

        async def call() -> Stored:
            return await self._call(command, message, cid, key)

        if command not in MUTATING_COMMANDS:
            stored = await call()
        else:
            fingerprint = message.decode()
            remembered = self.idempotency.get(cid)
            stored = remembered or await self.idempotency.run(
                cid, fingerprint, call, lambda s: int(s.headers.get("x-aiqt-code", s.status)) not in NOT_FINAL
            )
            if stored.fingerprint != fingerprint:
                return envelope(400, 400, "Idempotency-Key was already used for a different request", None, headers)
        return Response(stored.body, stored.status, {**headers, **stored.headers}, "application/json")

    async def _call(self, command: CommandType, message: bytes, cid: str, key: str) -> Stored:
        fingerprint = message.decode()
        try:
            reply = await self.rpc.call(command.value, message, command_id=cid, timeout=self.settings.request_timeout)
        except BusUnavailable as exc:
            log.warning("bus unavailable: %s", exc)
            body = codec.dumps(
                {
                    "code": 503,
                    "msg": "Message bus unavailable; the command was not accepted. Retry later.",
                    "data": None,
                }
            )
            return Stored(503, body, fingerprint, {"x-aiqt-code": "503", "Retry-After": "1"})
        except BusTimeout:
            msg = (
                f"No reply within {self.settings.request_timeout:g}s; the outcome is unknown. Retry with "
                f"Idempotency-Key: {key} to learn it (command {cid}); it will never be executed twice."
            )
            return Stored(
                504, codec.dumps({"code": 504, "msg": msg, "data": None}), fingerprint, {"x-aiqt-code": "504"}
            )
        h = reply.headers
        metrics.STAGE_SECONDS.labels(stage="publish").observe(reply.publish_ms / 1000)
        metrics.STAGE_SECONDS.labels(stage="roundtrip").observe(reply.total_ms / 1000)
        timing = [f"publish;dur={reply.publish_ms:.3f}", f"roundtrip;dur={reply.total_ms:.3f}"]
        for stage, header in (("queue", "x-queue-ms"), ("worker", "x-worker-ms")):
            value = h.get(header)
            if isinstance(value, int | float):
                metrics.STAGE_SECONDS.labels(stage=stage).observe(value / 1000)
                timing.append(f"{stage};dur={value}")
        headers = {"x-aiqt-code": str(reply.code), "Server-Timing": ", ".join(timing)}
        retry_after = h.get("x-retry-after")
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return Stored(errors.http_status(reply.code), reply.body, fingerprint, headers)

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        """Broker connected and at least one worker consuming (checked at most once a second)."""
        connected = self.rpc.connected
        metrics.BUS_CONNECTED.set(1 if connected else 0)
        detail: dict[str, Any] = {"broker": connected}
        if not connected:
            return False, detail
        try:
            depth, consumers = await self.rpc.queue_status()
        except (BusUnavailable, BusTimeout) as exc:
            return False, {**detail, "error": str(exc)}
        metrics.QUEUE_DEPTH.set(depth)
        metrics.QUEUE_CONSUMERS.set(consumers)
        detail.update(workers=consumers, queued=depth)
        return consumers > 0, detail


async def _read_body(request: Request, limit: int) -> bytes | None:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: GatewaySettings, rpc: RpcClient | None = None) -> FastAPI:
    """The gateway app. It connects to RabbitMQ on startup (and reconnects by itself)."""
    bus = rpc or RpcClient(settings, name="aiqt-gateway")
    gw = Gateway(settings, bus)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await bus.start()
        except BusUnavailable as exc:
            log.error("%s; requests get 503 until it answers", exc)
        yield
        await bus.close()

    app = FastAPI(
        title="AIQT",
        version="0.1.0",
        description=docs.DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=docs.TAGS,
    )
    app.state.gateway = gw

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", [])[1:]) or "request"
        return envelope(400, 400, f"{field}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return envelope(exc.status_code, exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return envelope(500, 500, "Internal error")

    sym_q = Query(None, description="交易对, e.g. BTCUSDT")

    @app.get("/api/account/summary", tags=["account"], **docs.route(CommandType.ACCOUNT_SUMMARY))
    async def account_summary(
        request: Request,
        symbol: str | None = Query(None, description="交易对标识符，用于过滤持仓和活动订单"),
        showZero: str | None = Query(None, description='是否显示数量为零的持仓 (传入 "true")'),
    ) -> Response:
        return await gw.dispatch(request, CommandType.ACCOUNT_SUMMARY, _present(symbol=symbol, showZero=showZero))

    @app.get("/api/market/klines", tags=["market"], **docs.route(CommandType.MARKET_KLINES))
    async def klines(
        request: Request,
        symbol: str | None = Query(None, description="交易对符号（基础币+报价币）"),
        interval: str | None = Query(None, description="K线间隔（支持标准Binance间隔）, default 1h"),
        limit: str | None = Query(None, description="返回数据条数（1-1000, default 500）"),
    ) -> Response:
        return await gw.dispatch(
            request, CommandType.MARKET_KLINES, _present(symbol=symbol, interval=interval, limit=limit)
        )

    @app.get("/api/market/funding-rate", tags=["market"], **docs.route(CommandType.MARKET_FUNDING_RATE))
    async def funding_rate(
        request: Request,
        symbol: str | None = Query(None, description="查询的交易对"),
        limit: str | None = Query(None, description="返回的历史记录数量（1-1000）; adds historyRates"),
    ) -> Response:
        return await gw.dispatch(request, CommandType.MARKET_FUNDING_RATE, _present(symbol=symbol, limit=limit))

    @app.delete("/api/order/{orderId}", tags=["order"], **docs.route(CommandType.ORDER_CANCEL))
    async def cancel_order(
        request: Request, orderId: str = Path(description="订单ID"), symbol: str | None = sym_q
    ) -> Response:
        return await gw.dispatch(request, CommandType.ORDER_CANCEL, _present(orderId=orderId, symbol=symbol))

    @app.patch("/api/order/{orderId}", tags=["order"], **docs.route(CommandType.ORDER_MODIFY, body=True))
    async def modify_order(request: Request, orderId: str = Path(description="订单ID")) -> Response:
        return await gw.dispatch(request, CommandType.ORDER_MODIFY, {"orderId": orderId})

    @app.post("/api/order/open/market", tags=["order/open"], **docs.route(CommandType.ORDER_OPEN_MARKET, body=True))
    async def open_market(request: Request) -> Response:
        return await gw.dispatch(request, CommandType.ORDER_OPEN_MARKET, {})

    @app.post("/api/order/close/market", tags=["order/close"], **docs.route(CommandType.ORDER_CLOSE_MARKET, body=True))
    async def close_market(request: Request) -> Response:
        return await gw.dispatch(request, CommandType.ORDER_CLOSE_MARKET, {})

    @app.post("/api/position/leverage", tags=["position"], **docs.route(CommandType.POSITION_LEVERAGE, body=True))
    async def leverage(request: Request) -> Response:
        return await gw.dispatch(request, CommandType.POSITION_LEVERAGE, {})

    @app.post("/api/position/margin-mode", tags=["position"], **docs.route(CommandType.POSITION_MARGIN_MODE, body=True))
    async def margin_mode(request: Request) -> Response:
        return await gw.dispatch(request, CommandType.POSITION_MARGIN_MODE, {})

    @app.get("/api/system/ping", tags=["system"], **docs.route(CommandType.SYSTEM_PING))
    async def ping(request: Request) -> Response:
        """A signed round trip through RabbitMQ and a worker, with no exchange call."""
        return await gw.dispatch(request, CommandType.SYSTEM_PING, {})

    @app.get("/healthz", tags=["system"], include_in_schema=False)
    async def healthz() -> Response:
        return envelope(200, 200, "ok", {"status": "ok"})

    @app.get("/readyz", tags=["system"], include_in_schema=False)
    async def readyz() -> Response:
        ok, detail = await gw.ready()
        return envelope(200 if ok else 503, 200 if ok else 503, "ready" if ok else "not ready", detail)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        await gw.ready()
        return Response(generate_latest(), 200, media_type=CONTENT_TYPE_LATEST)

    @app.get("/contract/{path:path}", tags=["system"])
    async def contract(path: str) -> Response:
        """The AMQP contract: `asyncapi.json` and `schemas/<name>.json` (as `aiqt schema` writes them)."""
        from aiqt.contract import contract_files

        content = contract_files(settings.bus_namespace, settings.queue_type).get(path)
        if content is None:
            return envelope(404, 404, f"No contract file {path!r}; see /contract/asyncapi.json")
        return Response(content, 200, media_type="application/json")

    return app


def _present(**fields: str | None) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None and k not in AUTH_PARAMS}
