"""Fan-out: who is subscribed to what, and one bounded outbox per connection.

A frame is rendered once per stream (raw, and wrapped for combined connections) and appended to
each subscriber's outbox; a writer task per connection drains it. Nothing here awaits a client:
an outbox that fills up (a client that stopped reading) gets its connection closed, so one slow
or stuck client never holds up the engine, the market streams or the other clients.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

from .names import PRIVATE, parse, served_on

log = logging.getLogger("paper.streams")

Send = Callable[[dict[str, Any]], Awaitable[None]]

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_SLOW = 1013  # "try again later": the client fell too far behind

_ids = itertools.count(1)


class Connection:
    """One WebSocket client: its route, subscriptions, properties and outbox."""

    def __init__(self, route: str, combined: bool, max_frames: int, events: frozenset[str] | None = None):
        self.id = next(_ids)
        self.route = route
        self.combined = combined
        self.events = events  # /private ?events= filter (None: every event)
        self.subscriptions: dict[str, None] = {}  # insertion-ordered, as LIST_SUBSCRIPTIONS shows them
        self.api_keys: set[str] = set()  # accounts whose user data this connection receives
        self.opened = time.monotonic()
        self.message_times: deque[float] = deque()
        self.close_code: int | None = None
        self.close_reason = ""
        self._max_frames = max_frames
        self._frames: deque[str] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def push(self, frame: str) -> None:
        """Queue a frame; a full outbox closes the connection instead of waiting for the client."""
        if self.close_code is not None:
            return
        if len(self._frames) >= self._max_frames:
            log.warning("connection %d fell %d frames behind: dropped", self.id, len(self._frames))
            self.close(CLOSE_TOO_SLOW, "Too slow: outbox full")
            return
        self._frames.append(frame)
        self._idle.clear()
        self._wakeup.set()

    def push_json(self, payload: object) -> None:
        self.push(orjson.dumps(payload).decode())

    def close(self, code: int, reason: str = "") -> None:
        """Close after the frame being written (queued frames are discarded)."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            self._frames.clear()
            self._wakeup.set()

    async def write_loop(self, send: Send) -> None:
        """Drain the outbox into the socket until the connection is closed (by either side)."""
        try:
            await self._write(send)
        except OSError:  # the client went away mid-write (uvicorn's ClientDisconnected)
            self.close_code = self.close_code or CLOSE_GOING_AWAY
        finally:
            self._frames.clear()
            self._idle.set()

    async def _write(self, send: Send) -> None:
        frames = self._frames
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while frames and self.close_code is None:
                await send({"type": "websocket.send", "text": frames.popleft()})
            if self.close_code is not None:
                self._idle.set()
                await send({"type": "websocket.close", "code": self.close_code, "reason": self.close_reason})
                return
            self._idle.set()

    @property
    def pending(self) -> int:
        return len(self._frames)

    async def drained(self) -> None:
        await self._idle.wait()


class Hub:
    """Every open connection and the index from stream name to its subscribers."""

    def __init__(self) -> None:
        self.connections: set[Connection] = set()
        self.subscribers: dict[str, set[Connection]] = {}
        self.stalled: dict[str, float] = {}  # stream name -> monotonic time its frames flow again
        self.frames_sent = 0

    # ------------------------------------------------------------------ membership -----------
    def add(self, conn: Connection) -> None:
        self.connections.add(conn)

    def remove(self, conn: Connection) -> None:
        self.connections.discard(conn)
        for name in conn.subscriptions:
            self._unindex(name, conn)
        conn.subscriptions.clear()

    def subscribe(self, conn: Connection, name: str, deliverable: bool) -> None:
        """Record a subscription; index it for delivery only if the connection's route serves it."""
        conn.subscriptions[name] = None
        if deliverable:
            self.subscribers.setdefault(name, set()).add(conn)

    def unsubscribe(self, conn: Connection, name: str) -> None:
        conn.subscriptions.pop(name, None)
        self._unindex(name, conn)

    def _unindex(self, name: str, conn: Connection) -> None:
        held = self.subscribers.get(name)
        if held is not None:
            held.discard(conn)
            if not held:
                del self.subscribers[name]

    def drop_stream(self, name: str) -> set[Connection]:
        """Stop delivering `name` to anyone (an expired or deleted listenKey); returns who had it."""
        held = self.subscribers.pop(name, set())
        for conn in held:
            conn.subscriptions.pop(name, None)
        return held

    def market_deliverable(self, conn: Connection, name: str) -> bool:
        stream = parse(name)
        return stream is not None and conn.route != PRIVATE and served_on(stream, conn.route)

    @staticmethod
    def market_deliverable_name(name: str) -> bool:
        """Whether `name` is a market stream at all (URL-path names that are not are ignored)."""
        return parse(name) is not None

    # ------------------------------------------------------------------ delivery -------------
    def active_streams(self) -> Iterable[str]:
        return list(self.subscribers)

    def has_subscribers(self, name: str) -> bool:
        return name in self.subscribers

    def publish(self, name: str, payload: object, event_type: str | None = None) -> int:
        """Send one payload to every subscriber of `name`; returns how many got it."""
        conns = self.subscribers.get(name)
        if not conns:
            return 0
        if self.stalled:
            until = self.stalled.get(name)
            if until is not None:
                if time.monotonic() < until:
                    return 0
                del self.stalled[name]
        raw = orjson.dumps(payload).decode()
        wrapped = ""
        sent = 0
        for conn in conns:
            if conn.events is not None and event_type not in conn.events:
                continue
            if conn.combined:
                if not wrapped:
                    wrapped = '{"stream":' + orjson.dumps(name).decode() + ',"data":' + raw + "}"
                conn.push(wrapped)
            else:
                conn.push(raw)
            sent += 1
        self.frames_sent += sent
        return sent

    def stall(self, name: str, seconds: float) -> float:
        until = time.monotonic() + seconds
        self.stalled[name] = until
        return until

    async def drain(self, timeout: float = 2.0) -> None:
        """Wait until every outbox has been written (bounded: slow clients are not awaited long)."""
        busy = [conn.drained() for conn in self.connections if conn.pending and conn.close_code is None]
        if busy:
            try:
                await asyncio.wait_for(asyncio.gather(*busy), timeout)
            except TimeoutError:
                log.warning("streams not drained within %.1f s", timeout)
