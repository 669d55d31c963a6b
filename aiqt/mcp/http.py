"""`/mcp` on the gateway: Streamable HTTP with a bearer token per API key (see aiqt.mcp)."""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from mcp.server.transport_security import TransportSecuritySettings

from aiqt.client import AsyncAiqtClient
from aiqt.mcp.server import build_server
from schemas import codec, errors

log = logging.getLogger("aiqt.mcp")

# --- Streamable HTTP on the gateway ---------------------------------------------------------------

BEARER_CONTEXT = b"aiqt-mcp-bearer-v1\n"


def bearer_token(api_key: str, api_secret: str) -> str:
    """The bearer token of an API key for `/mcp`: `<api key>.<hex HMAC-SHA256(secret, label + key)>`.

    Derived, not stored: nothing new to configure, rotate or leak beside the key pair, and the gateway
    checks it with the secret it already has. It does not reveal the secret, but it is as powerful as
    the key (whoever holds it trades with the key's scopes): keep it like the secret. Rotating the
    secret revokes it."""
    mac = hmac.new(api_secret.encode(), BEARER_CONTEXT + api_key.encode(), hashlib.sha256).hexdigest()
    return f"{api_key}.{mac}"


@dataclass(frozen=True)
class KeyPair:
    key: str
    secret: str


_caller: contextvars.ContextVar[AsyncAiqtClient] = contextvars.ContextVar("aiqt_mcp_caller")

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class BearerAuth:
    """ASGI middleware in front of the SDK's Streamable HTTP app: a valid bearer token selects the signed
    client of its key for the tool calls of this request (the SDK carries context variables into its
    handlers); anything else gets 401 in the gateway's envelope."""

    def __init__(self, app: ASGIApp, keys: Sequence[KeyPair], client_of: Callable[[KeyPair], AsyncAiqtClient]) -> None:
        self.app = app
        self._keys = {k.key: k for k in keys}
        self._client_of = client_of

    def verify(self, header: str | None) -> KeyPair | None:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        key, dot, _mac = token.strip().rpartition(".")
        pair = self._keys.get(key) if dot else None
        if pair is None or not hmac.compare_digest(bearer_token(pair.key, pair.secret), token.strip()):
            return None
        return pair

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        pair = self.verify(headers.get("authorization"))
        if pair is None:
            body = codec.envelope(errors.UNAUTHORIZED, "Invalid or missing bearer token: Authorization: Bearer <token>")
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b'Bearer realm="aiqt"'),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        token = _caller.set(self._client_of(pair))
        try:
            await self.app(scope, receive, send)
        finally:
            _caller.reset(token)


#: Hosts the /mcp endpoint answers to besides loopback (DNS-rebinding guard), comma-separated: "gw.example:*".
ALLOWED_HOSTS_ENV = "AIQT_MCP_ALLOWED_HOSTS"


def transport_security(extra_hosts: Sequence[str] = ()) -> TransportSecuritySettings:
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", *extra_hosts]
    origins = [f"http://{h}" for h in hosts] + [f"https://{h}" for h in extra_hosts]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


@dataclass
class HttpEndpoint:
    """The `/mcp` endpoint as the gateway mounts it: an ASGI app and the lifespan it needs."""

    app: ASGIApp
    lifespan: Callable[[], Any]


def http_endpoint(
    gateway_app: Any,
    keys: Sequence[KeyPair],
    *,
    path: str = "/mcp",
    extra_hosts: Sequence[str] | None = None,
) -> HttpEndpoint:
    """The Streamable HTTP endpoint for a gateway app: tool calls go to `gateway_app` in process (through
    httpx's ASGI transport, so through its auth, scopes, limits and idempotency), signed with the key
    the bearer token names."""
    if extra_hosts is None:
        extra_hosts = [h.strip() for h in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",") if h.strip()]
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway_app), base_url="http://aiqt-gateway")
    clients: dict[str, AsyncAiqtClient] = {}

    def client_of(pair: KeyPair) -> AsyncAiqtClient:
        client = clients.get(pair.key)
        if client is None:
            client = clients[pair.key] = AsyncAiqtClient("http://aiqt-gateway", pair.key, pair.secret, http=http)
        return client

    server = build_server(_caller.get)
    starlette = server.streamable_http_app(
        streamable_http_path=path,
        stateless_http=True,  # any gateway process can answer any request: no sticky sessions
        json_response=True,  # one JSON answer per call; these tools neither stream nor ask back
        transport_security=transport_security(extra_hosts),
    )

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with server.session_manager.run():
            try:
                yield
            finally:
                await http.aclose()

    return HttpEndpoint(BearerAuth(starlette, keys, client_of), lifespan)


def gateway_mount(keys: Sequence[KeyPair], *, path: str = "/mcp") -> Callable[[Any], Any]:
    """What `aiqt gateway` hands to `gateway.app.create_app(mounts=...)`: the `/mcp` endpoint of that app."""
    from gateway.app import Mounted

    def factory(app: Any) -> Mounted:
        endpoint = http_endpoint(app, keys, path=path)
        return Mounted(path, endpoint.app, endpoint.lifespan)

    return factory
