"""The console at `/ui`: a web page a person can watch the account on, served by the gateway itself.

Why the gateway serves it: AIQT installs with pip and nothing else, so the page is plain HTML, CSS and
JavaScript modules shipped as package data (`gateway/console/`), with no build step and nothing fetched
from the internet at run time. The page draws its own candlestick chart on a `<canvas>`.

Why the page signs every request itself: the API key's secret never leaves the browser. The page
imports it with WebCrypto as a non-extractable HMAC key, kept in memory only (never in storage), and
signs each REST request and the `/api/stream` WebSocket exactly as any other client does
(`schemas.signing`). There is no session token to steal; signing out drops the key.

Two small gateway-local reads exist for the page (and for anyone):

- `GET /api/session` → the key's account and scopes, so the page shows only the actions the key may
  take (a read key sees no button that would fail), and whether the account is halted (the kill
  switch's flag, read from the bus as every worker reads it: `bus.halts`). Any valid key may ask about
  itself; it is not a command, so it never reaches a worker.
- `GET /api/audit?since=<ms>&limit=<n>` → the command journal (the audit stream, `bus.audit`) of the
  key's own account, newest last; `read` scope. The journal is already on the bus the gateway is
  connected to, and reading it is not a trading command: a worker has nothing to add, so the gateway
  reads the stream directly (on the event hub's connection) rather than through the command registry.
  It reads from `since` (default: an hour ago) until the stream is idle for a moment, so each call
  costs one short-lived stream consumer; the page asks every few seconds.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from aio_pika.abc import AbstractConnection
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from bus.audit import NoJournal, read
from bus.halts import Halts, HaltUnknown
from bus.topology import Topology
from gateway import docs
from gateway.auth import Authenticator, Verified
from gateway.requests import AUTH_PARAMS, Refused, parse_params
from schemas import codec, errors
from schemas.enums import Scope
from schemas.registry import MUTATING_COMMANDS

log = logging.getLogger("aiqt.gateway.console")

#: The page's files (package data).
STATIC = Path(str(resources.files("gateway") / "console"))
#: Default and largest look-back of `GET /api/audit`.
AUDIT_DEFAULT_MS = 3600 * 1000
AUDIT_MAX_MS = 7 * 24 * 3600 * 1000
AUDIT_LIMIT = 100
AUDIT_MAX_LIMIT = 1000
#: The journal counts as read to its end after this long without a new entry.
AUDIT_IDLE = 0.25
#: Longest a `GET /api/audit` reads the stream (a busy journal is cut short, newest entries last).
AUDIT_BUDGET = 3.0

#: Headers of the page's files: revalidated on each load (cheap, a 304), so an upgrade is never half
#: cached; only its own files and its own origin (no inline script, nothing from elsewhere); never
#: framed (a framed page could be clicked on through another site: Halt is a button).
_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _answer(status: int, code: int, msg: str, data: Any = None) -> Response:
    return Response(codec.envelope(code, msg, data), status, None, "application/json")


def _verify(auth: Authenticator, request: Request, allowed: set[str], route: str) -> tuple[Verified, dict[str, str]]:
    raw_query = request.scope["query_string"].decode("latin-1")
    raw_path = (request.scope.get("raw_path") or request.scope["path"].encode()).decode("latin-1")
    verified = auth.verify(request.headers.get("x-api-key"), request.method, raw_path, raw_query, b"")
    return verified, parse_params(raw_query, {*allowed, *AUTH_PARAMS}, route)


def _int(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise Refused(400, errors.BAD_REQUEST, f"{name}: must be an integer from {low} to {high}")
    return int(raw)


async def read_audit(
    connection: AbstractConnection, topology: Topology, account: str, since_ms: int, limit: int, writes: bool = False
) -> list[dict[str, Any]]:
    """The account's journal entries since `since_ms` (with `writes`, only commands that change state at
    the exchange), oldest first, at most the newest `limit`."""
    wanted = {t.value for t in MUTATING_COMMANDS} if writes else None
    since = datetime.fromtimestamp(since_ms / 1000, UTC)
    entries: list[dict[str, Any]] = []
    deadline = time.monotonic() + AUDIT_BUDGET
    with contextlib.suppress(NoJournal):
        async for entry in read(connection, topology, since=since, idle=AUDIT_IDLE):
            if entry.account == account and (wanted is None or entry.type in wanted):
                entries.append(entry.model_dump(exclude={"amqpUser"}))
            if time.monotonic() > deadline:
                break
    return entries[-limit:]


def register(
    app: FastAPI, auth: Authenticator, topology: Topology, bus: Callable[[], AbstractConnection | None]
) -> None:
    """Add `/ui` (the page), `GET /api/session` and `GET /api/audit` to the gateway app. `bus` gives the
    current connection to RabbitMQ (None while it is down)."""

    halts = Halts(topology)

    async def halted(account: str) -> bool | None:
        connection = bus()
        if connection is None:
            return None
        halts.bind(connection)
        try:
            return await halts.is_halted(account)
        except HaltUnknown:
            return None

    @app.get("/api/session", tags=["system"], **docs.local_read([], "The key's account, scopes and halt state"))
    async def session(request: Request) -> Response:
        """The API key's account and scopes, and whether the account is halted (null: cannot be read
        now). Signed like every request; any valid key may ask."""
        try:
            verified, _ = _verify(auth, request, set(), "GET /api/session")
        except Refused as exc:
            return _answer(exc.status, exc.code, exc.msg)
        client = verified.client
        data = {
            "account": client.account,
            "key": client.key,
            "scopes": sorted(s.value for s in client.scopes),
            "halted": await halted(client.account),
        }
        return _answer(200, 200, "Success", data)

    @app.get("/api/audit", tags=["system"], **docs.local_read(docs.AUDIT_PARAMETERS, "Journal entries, oldest first"))
    async def audit(request: Request) -> Response:
        """The command journal of the key's own account: `since` (Unix ms, default an hour ago, at most a
        week back), `limit` (default 100, at most 1000) newest entries, oldest first; `writes=true` for
        only the commands that change state at the exchange (no reads). Needs `read`."""
        now = int(time.time() * 1000)
        try:
            verified, params = _verify(auth, request, {"since", "limit", "writes"}, "GET /api/audit")
            if Scope.READ not in verified.client.scopes:
                raise Refused(403, errors.FORBIDDEN, "This API key may not read: GET /api/audit needs the 'read' scope")
            since = _int(params, "since", now - AUDIT_DEFAULT_MS, now - AUDIT_MAX_MS, now + 60_000)
            limit = _int(params, "limit", AUDIT_LIMIT, 1, AUDIT_MAX_LIMIT)
            if params.get("writes", "false") not in ("true", "false"):
                raise Refused(400, errors.BAD_REQUEST, "writes: true or false")
        except Refused as exc:
            return _answer(exc.status, exc.code, exc.msg)
        connection = bus()
        if connection is None:
            return _answer(503, 503, "Message bus unavailable; the journal cannot be read. Retry later.")
        writes = params.get("writes") == "true"
        try:
            entries = await read_audit(connection, topology, verified.client.account, since, limit, writes)
        except Exception as exc:  # the broker's errors (bus/ translates none of a reader's): the journal is away
            log.warning("audit journal unreadable: %r", exc)
            return _answer(503, 503, "The audit journal cannot be read now. Retry later.")
        return _answer(200, 200, "Success", {"account": verified.client.account, "entries": entries})

    @app.get("/ui", include_in_schema=False)
    async def ui() -> Response:
        return RedirectResponse("/ui/", 307)

    app.mount("/ui/", _Static(directory=STATIC, html=True), name="console")


class _Static(StaticFiles):
    """The page's files, with `_HEADERS`."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(_HEADERS)
        return response
