"""The REST API: one route per documented endpoint, each publishing a command and returning the
worker's `{code, msg, data}` reply unchanged. No trading logic lives here.

Other HTTP surfaces built on top of this API (the MCP endpoint at `/mcp`) are composed in from
above as `Mounted` apps: the gateway serves them and runs their lifespan, but may not import them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp
from starlette.websockets import WebSocketDisconnect

from bus import BusTimeout, BusUnavailable, RpcClient
from bus.logs import command_id as log_command_id
from bus.topology import Topology
from gateway import console, docs, metrics
from gateway.auth import Authenticator, Verified, out_of_scope, replayable_until
from gateway.idempotency import KEY_RE, SIGNATURE_PREFIX, IdempotencyCache, Stored, command_id, signature_key
from gateway.requests import AUTH_PARAMS, Refused, parse_body, parse_params, parse_query
from gateway.settings import GatewaySettings
from gateway.stream import Client, EventHub, parse_topics, serve
from schemas import codec, errors
from schemas.audit import IDEMPOTENCY_KEY_HEADER, KEY_ID_HEADER
from schemas.registry import COMMANDS, CommandSpec
from schemas.validation import InvalidCommand, parse_payload

log = logging.getLogger("aiqt.gateway")


def envelope(status: int, code: int, msg: str, data: Any = None, headers: dict[str, str] | None = None) -> Response:
    return Response(codec.envelope(code, msg, data), status, headers, "application/json")


class Gateway:
    """What the routes share: settings, the authenticator, the RPC client, the idempotency cache."""

    def __init__(self, settings: GatewaySettings, rpc: RpcClient) -> None:
        self.settings = settings
        self.rpc = rpc
        self.auth = Authenticator(settings.client_keys)
        self.idempotency = IdempotencyCache(settings.idempotency_ttl, settings.idempotency_max_entries)

    async def dispatch(self, request: Request, spec: CommandSpec) -> Response:
        started = time.perf_counter()
        try:
            response = await self._dispatch(request, spec)
        except Refused as exc:
            response = envelope(exc.status, exc.code, exc.msg, None, exc.headers)
        code = response.headers.get("x-aiqt-code", str(response.status_code))
        metrics.REQUESTS.labels(command=spec.type.value, code=code).inc()
        metrics.REQUEST_SECONDS.labels(command=spec.type.value).observe(time.perf_counter() - started)
        return response

    async def _dispatch(self, request: Request, spec: CommandSpec) -> Response:
        t0 = time.perf_counter()
        raw_query = request.scope["query_string"].decode("latin-1")
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        body = await _read_body(request, self.settings.max_body_bytes)
        verified = self.auth.verify(
            request.headers.get("x-api-key"), request.method, raw_path.decode("latin-1"), raw_query, body
        )
        if spec.scope not in verified.client.scopes:
            raise out_of_scope(spec, verified.client.scopes)
        params = parse_query(raw_query, spec)
        fields = {name: value for name, value in params.items() if name in spec.query_fields}
        path = {name: str(value) for name, value in request.path_params.items()}
        fields.update(parse_body(body, request.headers.get("content-type"), spec, path))
        fields.update(path)
        if spec.command_id_of is not None:
            # The command id of the Idempotency-Key asked about, for this API key: the worker derives the
            # command's client order ids from it. The client cannot name another key's command.
            fields["commandId"] = command_id(verified.client.key, path.get(spec.command_id_of, ""))
        try:
            model = parse_payload(spec.type, fields)
        except InvalidCommand as exc:
            return envelope(400, exc.code, exc.msg, exc.data)

        key = self._idempotency_key(request, spec, verified)
        cid = command_id(verified.client.key, key)
        bus_headers: dict[str, Any] = {}
        if spec.mutating and key.startswith(SIGNATURE_PREFIX):
            # This command id may be a signature-derived one: its runs leave a start marker (bus/marker.py).
            bus_headers["x-signature-key"] = 1
            if request.headers.get("idempotency-key") is None:
                # Derived here: it comes back only as a verbatim replay, which every gateway refuses
                # once its timestamp is past its recvWindow. Say until when.
                bus_headers["x-replayable-until"] = replayable_until(raw_query)
        log_command_id.set(cid)
        payload = model.model_dump()
        message = codec.dumps({"type": spec.type.value, "account": verified.client.account, "payload": payload})
        metrics.STAGE_SECONDS.labels(stage="auth_parse").observe(time.perf_counter() - t0)
        headers = {"Idempotency-Key": key, "X-Command-Id": cid}

        # Named in the worker's audit entry (schemas.audit): the key id, never anything secret.
        sender = {KEY_ID_HEADER: verified.client.key, IDEMPOTENCY_KEY_HEADER: key}

        async def call() -> Stored:
            return await self._call(spec, message, cid, key, {**sender, **bus_headers})

        if not spec.mutating:
            stored = await call()
        else:
            fingerprint = message.decode()
            remembered = self.idempotency.get(cid)
            stored = remembered or await self.idempotency.run(
                cid, fingerprint, call, lambda s: int(s.headers.get("x-aiqt-code", s.status)) not in errors.NOT_FINAL
            )
            if stored.fingerprint != fingerprint:
                return envelope(400, 400, "Idempotency-Key was already used for a different request", None, headers)
        return Response(stored.body, stored.status, {**headers, **stored.headers}, "application/json")

    @staticmethod
    def _idempotency_key(request: Request, spec: CommandSpec, verified: Verified) -> str:
        """The client's Idempotency-Key; for a write without one, a key derived from the signature, so
        that a replay of the same signed request is the same command on any gateway."""
        given = request.headers.get("idempotency-key")
        if given is not None:
            if not KEY_RE.match(given):
                raise Refused(400, 400, "Idempotency-Key: 1 to 64 characters of A-Z a-z 0-9 _ . : -")
            return given
        return signature_key(verified.signature)

    async def _call(
        self, spec: CommandSpec, message: bytes, cid: str, key: str, headers: dict[str, Any] | None = None
    ) -> Stored:
        fingerprint = message.decode()
        try:
            reply = await self.rpc.call(
                spec.type.value, message, command_id=cid, timeout=self.settings.request_timeout, headers=headers
            )
        except BusUnavailable as exc:
            log.warning("bus unavailable: %s", exc)
            body = codec.envelope(503, "Message bus unavailable; the command was not accepted. Retry later.")
            return Stored(503, body, fingerprint, {"x-aiqt-code": "503", "Retry-After": "1"})
        except BusTimeout:
            msg = (
                f"No reply within {self.settings.request_timeout:g}s; the outcome is unknown. Look it up with "
                f"GET /api/commands/{key} (command {cid}), or retry with Idempotency-Key: {key}; "
                "it will never be executed twice."
            )
            return Stored(504, codec.envelope(504, msg), fingerprint, {"x-aiqt-code": "504"})
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
        source = h.get("x-aiqt-source")
        if source is not None:  # cache | live | exchange: where a read's answer came from
            headers["X-AIQT-Source"] = str(source)
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


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isascii() and length.isdigit() and int(length) > limit:
        raise Refused(400, 400, f"body: larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(400, 400, f"body: larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class Mounted:
    """An ASGI app served at `path` (every method), with a lifespan the gateway runs inside its own."""

    path: str
    app: ASGIApp
    lifespan: Callable[[], AbstractAsyncContextManager[Any]] | None = None


#: Builds a mounted app for the gateway app (which it may call in process, as a client of the REST API).
MountFactory = Callable[[FastAPI], Mounted]


def create_app(
    settings: GatewaySettings,
    rpc: RpcClient | None = None,
    *,
    events: EventHub | None = None,
    mounts: Sequence[MountFactory] = (),
) -> FastAPI:
    """The gateway app. It connects to RabbitMQ on startup (and reconnects by itself). With an `rpc`
    given (a test's fake), no event hub is started unless `events` is given too."""
    bus = rpc or RpcClient(settings, name="aiqt-gateway")
    hub = events if events is not None or rpc is not None else EventHub(settings)
    gw = Gateway(settings, bus)
    mounted: list[Mounted] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await bus.start()
        except BusUnavailable as exc:
            log.error("%s; requests get 503 until it answers", exc)
        hub_start = asyncio.create_task(_start_hub(hub)) if hub is not None else None
        async with AsyncExitStack() as stack:
            for m in mounted:
                if m.lifespan is not None:
                    await stack.enter_async_context(m.lifespan())
            yield
        if hub_start is not None:
            hub_start.cancel()
        if hub is not None:
            await hub.close()
        await bus.close()

    app = FastAPI(
        title="AIQT",
        version="0.1.0",
        description=docs.DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=docs.TAGS,
    )
    app.state.gateway = gw
    app.openapi = lambda: docs.openapi(app)  # type: ignore[method-assign]

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", [])[1:]) or "request"
        return envelope(400, 400, f"{field}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names only the first route on the path; name them all
            headers["Allow"] = ", ".join(_allowed_methods(app, request))
        return envelope(exc.status_code, exc.status_code, str(exc.detail), None, headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return envelope(500, 500, "Internal error")

    for spec in COMMANDS.values():
        app.add_api_route(
            spec.path, _endpoint(gw, spec), methods=[spec.method], name=spec.type.value, **docs.route(spec)
        )

    @app.websocket("/api/stream")
    async def stream(websocket: WebSocket) -> None:
        """Account events (and market data asked for) as JSON text frames; see gateway.stream."""
        await _stream(gw, hub, websocket)

    # The console (/ui) and its two gateway-local reads, /api/session and /api/audit (gateway.console).
    console.register(
        app, gw.auth, Topology(settings.bus_namespace, settings.queue_type), lambda: hub.bus.connection if hub else None
    )

    for factory in mounts:
        m = factory(app)
        mounted.append(m)
        app.router.routes.append(Route(m.path, endpoint=m.app, include_in_schema=False))

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

    @app.get("/contract/{path:path}", tags=["system"], **docs.CONTRACT_ROUTE)
    async def contract(request: Request) -> Response:
        """The AMQP contract: `asyncapi.json` and `schemas/<name>.json` (as `aiqt schema` writes them)."""
        from bus.contract import contract_files

        path = request.path_params["path"]
        content = contract_files(settings.bus_namespace, settings.queue_type).get(path)
        if content is None:
            return envelope(404, 404, f"No contract file {path!r}; see /contract/asyncapi.json")
        return Response(content, 200, media_type="application/json")

    return app


async def _start_hub(hub: EventHub) -> None:
    try:
        await hub.start()
    except BusUnavailable as exc:  # it keeps trying in the background
        log.warning("event stream: %s", exc)


async def _stream(gw: Gateway, hub: EventHub | None, websocket: WebSocket) -> None:
    raw_query = websocket.scope["query_string"].decode("latin-1")
    raw_path = (websocket.scope.get("raw_path") or b"/api/stream").decode("latin-1")
    await websocket.accept()
    try:
        params = parse_params(raw_query, {"topics", "since", "apiKey", *AUTH_PARAMS}, "GET /api/stream")
        api_key = websocket.headers.get("x-api-key") or params.get("apiKey")
        verified = gw.auth.verify(api_key, "GET", raw_path, raw_query, b"")
        if "read" not in verified.client.scopes:
            raise Refused(403, 403, "This API key may not read: GET /api/stream needs the 'read' scope")
        topics, markets = parse_topics(params.get("topics"))
        since = params.get("since")
        if (since is not None and not since.isascii()) or (since is not None and not since.isdigit()):
            raise Refused(400, 400, "since: must be a seq (an integer)")
        if hub is None:
            raise Refused(503, 503, "Event stream unavailable")
    except Refused as exc:
        await websocket.send_text(codec.envelope(exc.code, exc.msg).decode())
        await websocket.close(4000 + exc.status)
        return
    except ValueError as exc:
        await websocket.send_text(codec.envelope(400, str(exc)).decode())
        await websocket.close(4400)
        return
    client = Client(verified.client.account, topics, markets)
    with contextlib.suppress(WebSocketDisconnect):
        await serve(websocket, hub, client, int(since) if since is not None else None)


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def _endpoint(gw: Gateway, spec: CommandSpec) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await gw.dispatch(request, spec)

    endpoint.__doc__ = spec.payload.__doc__
    return endpoint
