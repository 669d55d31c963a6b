"""`GET /api/stream`: a key's account events (and any market data asked for) over a WebSocket.

Authenticated like REST: `X-API-KEY` (or, for browsers, which cannot set headers on a WebSocket, the
query parameter `apiKey`) and a signed query — `timestamp`, `recvWindow`, `signature` over
`GET\\n/api/stream\\nQUERY\\n` (an empty body). Query: `topics=order,position,…` (default: every
account event; `market.BTCUSDT.markPrice` adds market data), `since=<seq>` to first receive what was
missed.

The gateway follows `{ns}.events` with a queue of its own and keeps, per account, the last
`REPLAY` events: a client that reconnects with `since` gets the events after that seq from there, or
from the journal (the stream `{ns}.events.journal`) when they are older; if they are older than the
journal too, the client gets a documented error (code 410) and should resync from REST. Each client
has a bounded queue: one that does not keep up is disconnected (close code 4008) and never slows the
others or the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from aio_pika.abc import AbstractConnection
from starlette.websockets import WebSocket, WebSocketDisconnect

from bus.config import BusSettings
from bus.connection import ClusterConnection
from bus.events import EventSubscription, EventTopology, read_journal
from schemas import codec
from schemas.events import EventType

log = logging.getLogger("aiqt.gateway.stream")

#: Events kept per account for `since`.
REPLAY = 10_000
#: Frames a client may have waiting before it counts as too slow.
CLIENT_QUEUE = 1_000
#: How far back the journal is read for a `since` older than the replay buffer.
JOURNAL_LOOKBACK_MS = 24 * 3600 * 1000
TOO_SLOW = 4008
GONE = 4410
ACCOUNT_TOPICS = frozenset(t.value for t in EventType)


@dataclass(eq=False)
class Client:
    account: str
    topics: frozenset[str]
    markets: frozenset[str]
    queue: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))
    too_slow: bool = False

    def wants(self, event_type: str) -> bool:
        return event_type in self.topics

    def offer(self, frame: bytes) -> None:
        if self.too_slow:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.too_slow = True
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.get_nowait()
                self.queue.put_nowait(None)  # wakes the writer, which closes the socket


class EventHub:
    """The gateway's view of `{ns}.events`: a replay buffer per account and the connected clients."""

    def __init__(self, settings: BusSettings) -> None:
        self.topology = EventTopology(settings.bus_namespace)
        self.bus = ClusterConnection(settings.amqp_url, name="aiqt-gateway-events", on_connect=self._setup)
        self.replay: dict[str, deque[tuple[int, bytes]]] = {}
        self.clients: set[Client] = set()
        self._subscription: EventSubscription | None = None
        self._markets: set[str] = set()

    async def start(self) -> None:
        await self.bus.start(timeout=5)

    async def close(self) -> None:
        for client in list(self.clients):
            client.offer(b"")  # nothing; the socket closes with the app
        await self.bus.close()

    async def _setup(self, connection: AbstractConnection) -> None:
        patterns = [f"#.{t}" for t in sorted(ACCOUNT_TOPICS)] + sorted(self._markets)
        self._subscription = await EventSubscription.open(connection, self.topology, patterns, self._on_event)

    async def _on_event(self, routing_key: str, body: bytes) -> None:
        try:
            event = codec.loads(body)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        if event.get("type") == "market":
            for client in list(self.clients):
                if routing_key in client.markets:
                    client.offer(body)
            return
        account, seq = event.get("account"), event.get("seq")
        if not isinstance(account, str) or not isinstance(seq, int):
            return
        buffer = self.replay.setdefault(account, deque(maxlen=REPLAY))
        if buffer and seq <= buffer[-1][0]:
            return  # a repeat (at-least-once delivery) or one already replayed
        buffer.append((seq, body))
        for client in list(self.clients):
            if client.account == account and client.wants(str(event.get("type"))):
                client.offer(body)

    async def watch_market(self, keys: frozenset[str]) -> None:
        new = keys - self._markets
        self._markets |= new
        if new and self._subscription is not None:
            for key in new:
                await self._subscription.bind(key)

    async def missed(self, account: str, since: int) -> list[bytes] | None:
        """The account's events after `since`, in order; None if they are no longer to be had."""
        buffer = self.replay.get(account, deque())
        if buffer and buffer[0][0] <= since + 1:
            return [body for seq, body in buffer if seq > since]
        connection = self.bus.connection
        if connection is None:
            return None
        events = await read_journal(connection, self.topology, since_ms=int(time.time() * 1000) - JOURNAL_LOOKBACK_MS)
        mine = [e for e in events if e.get("account") == account and isinstance(e.get("seq"), int)]
        after = sorted((e for e in mine if e["seq"] > since), key=lambda e: e["seq"])
        if after and after[0]["seq"] != since + 1:
            return None
        if not after and buffer and buffer[0][0] > since + 1:
            return None
        return [codec.dumps(e) for e in after]


def parse_topics(raw: str | None) -> tuple[frozenset[str], frozenset[str]]:
    """(account event types, market routing keys) asked for; ValueError naming an unknown topic."""
    if not raw:
        return ACCOUNT_TOPICS, frozenset()
    topics, markets = set(), set()
    for item in (t.strip() for t in raw.split(",")):
        if item in ACCOUNT_TOPICS:
            topics.add(item)
        elif item.startswith("market.") and len(item.split(".")) == 3 and all(item.split(".")):
            markets.add(item)
        else:
            raise ValueError(
                f"topics: unknown topic {item!r} (order, position, balance, protection, "
                "margin_call, liquidation, stream, or market.<SYMBOL>.<stream>)"
            )
    return frozenset(topics), frozenset(markets)


async def serve(websocket: WebSocket, hub: EventHub, client: Client, since: int | None) -> None:
    """Send the client what it missed (if `since`), then live events, until it leaves or lags."""
    hub.clients.add(client)  # before the replay is read: nothing falls between the two
    try:
        if client.markets:
            await hub.watch_market(client.markets)
        if since is not None:
            missed = await hub.missed(client.account, since)
            if missed is None:
                await websocket.send_text(
                    _error(
                        410,
                        f"events after seq {since} are no longer available; "
                        "resync from GET /api/account/summary and reconnect without since",
                    )
                )
                await websocket.close(GONE)
                return
            last = since
            for body in missed:
                event = codec.loads(body)
                last = max(last, int(event["seq"]))
                if client.wants(str(event.get("type"))):
                    await websocket.send_text(body.decode())
            _drop_replayed(client, last)
        await _pump(websocket, client)
    finally:
        hub.clients.discard(client)


def _drop_replayed(client: Client, last: int) -> None:
    """Live events queued during the replay that the replay already sent."""
    kept: list[bytes | None] = []
    while not client.queue.empty():
        frame = client.queue.get_nowait()
        if frame is None or b'"type":"market"' in frame or int(codec.loads(frame).get("seq", 0)) > last:
            kept.append(frame)
    for frame in kept:
        client.queue.put_nowait(frame)


async def _pump(websocket: WebSocket, client: Client) -> None:
    """Send the client's queue until it leaves or falls behind. One task reads what the client sends
    (nothing, until it closes) and wakes the sender with None when it has gone: no task per frame."""
    gone = False

    async def read_until_gone() -> None:
        nonlocal gone
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                await websocket.receive_text()
        gone = True
        if client.queue.full():
            client.queue.get_nowait()
        client.queue.put_nowait(None)

    receiver = asyncio.create_task(read_until_gone())
    try:
        while True:
            frame = await client.queue.get()
            if frame is None or client.too_slow:
                if not gone:
                    await websocket.close(TOO_SLOW, "too slow: more than 1000 events waiting")
                return
            await websocket.send_text(frame.decode())
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver


def _error(code: int, msg: str) -> str:
    return codec.dumps({"type": "error", "code": code, "msg": msg, "data": None}).decode()
