"""The WebSocket side of the paper exchange, on the same port as its REST API.

Routes as on Binance since the 2026 split: ``/{public,market,private}/ws[/<streams>]`` (raw
payloads) and ``/{public,market,private}/stream?streams=…`` (``{"stream","data"}`` wrapped), plus
the legacy unrouted ``/ws`` and ``/stream`` (public-class streams only). Private connections name
their listenKey in the URL (``?listenKey=`` or ``/private/ws/<key>``) or SUBSCRIBE to it.

The engine tells :meth:`StreamServer.on_engine_event` about every change; user-data events are
rendered there and then and queued to the account's subscribers, so the events of an admin call
are in the outboxes before it returns (it then waits for them to be written).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ..engine.events import EngineEvent, Liquidated, OrderChanged
from . import protocol
from .hub import CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_POLICY, Connection, Hub
from .listen_keys import ListenKey, ListenKeys
from .market_streams import MarketStreams
from .names import LEGACY, PRIVATE, ROUTES
from .user_events import listen_key_expired, render

if TYPE_CHECKING:
    from ..app import PaperApp

log = logging.getLogger("paper.streams")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
TICK_S = 0.05
SYNTHETIC_TRADE_MS = 250


def parse_path(path: str) -> tuple[str, bool, list[str]] | None:
    """(route, combined, stream names in the path) of a WebSocket URL path, or None."""
    parts = [p for p in path.split("/") if p]
    route = LEGACY
    if parts and parts[0] in ROUTES:
        route = parts.pop(0)
    if not parts or parts[0] not in ("ws", "stream"):
        return None
    mode = parts.pop(0)
    if mode == "stream" and parts:
        return None
    return route, mode == "stream", parts


class StreamServer:
    """Connections, subscriptions, listenKeys and the market stream publisher of one exchange."""

    def __init__(self, app: PaperApp):
        self.app = app
        self.settings = app.settings
        self.market = app.market
        self.hub = Hub()
        self.market_streams = MarketStreams(app.market, self.hub)
        self.listen_keys = ListenKeys(app.settings.listen_key_validity_s, self._key_expired)
        self._tasks: list[asyncio.Task[None]] = []
        app.engine.listeners.append(self.on_engine_event)

    # ------------------------------------------------------------------ lifecycle ------------
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._market_loop()), loop.create_task(self._housekeeping_loop())]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        for conn in list(self.hub.connections):
            conn.close(CLOSE_GOING_AWAY, "Server shutting down")

    async def _market_loop(self) -> None:
        last_trade = 0
        while True:
            await asyncio.sleep(TICK_S - time.time() % TICK_S)
            wall_ms = int(time.time() * 1000)
            try:
                self.market_streams.tick(wall_ms)
                if wall_ms // SYNTHETIC_TRADE_MS != last_trade:
                    last_trade = wall_ms // SYNTHETIC_TRADE_MS
                    self.market_streams.synthetic_trades()
            except Exception:
                log.exception("market streams tick failed")

    async def _housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self.listen_keys.expire_due()
                cap = self.settings.ws_max_connection_s
                now = time.monotonic()
                for conn in list(self.hub.connections):
                    if now - conn.opened >= cap:
                        conn.close(CLOSE_NORMAL, "Connection reached the 24 hour limit")
            except Exception:
                log.exception("streams housekeeping failed")

    # ------------------------------------------------------------------ engine events --------
    def on_engine_event(self, event: EngineEvent) -> None:
        if isinstance(event, Liquidated):
            self.market_streams.liquidation(event.order, event.price, event.time)
            return
        if isinstance(event, OrderChanged) and event.trade is not None:
            self.market_streams.fill(event.trade)
        key = self.listen_keys.active_key(event.account.api_key)
        if key is None or not self.hub.has_subscribers(key):
            return
        for payload in render(event, self.market, self.market.now()):
            self.hub.publish(key, payload, str(payload["e"]))

    def _key_expired(self, held: ListenKey) -> None:
        self.hub.publish(held.key, listen_key_expired(held.key, self.market.now()), "listenKeyExpired")
        for conn in self.hub.drop_stream(held.key):
            conn.api_keys.discard(held.api_key)

    def key_closed(self, held: ListenKey) -> None:
        for conn in self.hub.drop_stream(held.key):
            conn.api_keys.discard(held.api_key)

    # ------------------------------------------------------------------ subscriptions --------
    def subscribe(self, conn: Connection, name: str) -> None:
        """Subscribe `conn` to a stream name or a listenKey (delivered only on its own route)."""
        if conn.route == PRIVATE:
            account = self.listen_keys.account_of(name)
            self.hub.subscribe(conn, name, account is not None)
            if account is not None:
                conn.api_keys.add(account)
            return
        self.hub.subscribe(conn, name, self.hub.market_deliverable(conn, name))

    # ------------------------------------------------------------------ ASGI -----------------
    async def serve(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        target = parse_path(scope["path"])
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if target is None:
            await send({"type": "websocket.close", "code": CLOSE_POLICY})
            return
        route, combined, path_names = target
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        events = query.get("events")
        conn = Connection(
            route,
            combined,
            self.settings.ws_queue_frames,
            frozenset(events[0].split("/")) if events and route == PRIVATE else None,
        )
        await send({"type": "websocket.accept"})
        self.hub.add(conn)
        for name in self._initial_names(route, path_names, query):
            self.subscribe(conn, name)
        writer = asyncio.get_running_loop().create_task(conn.write_loop(send))
        try:
            await self._read_loop(conn, receive)
        finally:
            self.hub.remove(conn)
            if not writer.done():
                conn.close(CLOSE_NORMAL)
                writer.cancel()

    def _initial_names(self, route: str, path_names: list[str], query: dict[str, list[str]]) -> list[str]:
        names = list(path_names)
        for value in query.get("streams", []):
            names.extend(n for n in value.split("/") if n)
        if route == PRIVATE:
            names.extend(query.get("listenKey", []))
            return [n for n in names if self.listen_keys.account_of(n) is not None]
        return [n for n in names if self.hub.market_deliverable_name(n)]

    async def _read_loop(self, conn: Connection, receive: Receive) -> None:
        limit = self.settings.ws_max_messages_per_s
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                return
            if kind != "websocket.receive" or conn.close_code is not None:
                continue
            now = time.monotonic()
            times = conn.message_times
            times.append(now)
            while times and now - times[0] >= 1.0:
                times.popleft()
            if len(times) > limit:
                conn.close(CLOSE_POLICY, "Too many messages")
                continue
            text = message.get("text")
            if text is None:
                raw = message.get("bytes") or b""
                text = raw.decode("utf-8", "replace")
            protocol.handle(self, conn, text)

    # ------------------------------------------------------------------ test controls --------
    def drop(self, api_key: str | None = None) -> int:
        """Close every connection (or those carrying one account's user data)."""
        doomed = [c for c in self.hub.connections if api_key is None or api_key in c.api_keys]
        for conn in doomed:
            conn.close(CLOSE_GOING_AWAY, "Dropped by /_paper/ws/drop")
        return len(doomed)

    def expire_now(self, api_key: str) -> str | None:
        held = self.listen_keys.live(api_key)
        if held is None:
            return None
        self.listen_keys.expire(held)
        return held.key

    def connections(self) -> list[dict[str, object]]:
        return [
            {
                "id": c.id,
                "route": c.route or "legacy",
                "combined": c.combined,
                "subscriptions": list(c.subscriptions),
                "pending": c.pending,
                "ageSeconds": round(time.monotonic() - c.opened, 3),
            }
            for c in sorted(self.hub.connections, key=lambda c: c.id)
        ]
