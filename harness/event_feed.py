"""A WebSocket client of the gateway's `GET /api/stream`, as the event benchmarks need it.

The benchmarks judge the event path from the outside, the way a client of AIQT sees it, so this is
a plain client — not the gateway's or the streamer's code: it signs the upgrade like REST (X-API-KEY
header, `timestamp`/`recvWindow`/`signature` in the query), keeps every account event by its `seq`,
and when its connection ends for any reason it reconnects with `since=<the last seq it has>`, the
way the API document tells clients to. What it records is what the verdicts are computed from:

- `events`: seq -> event (a repeat of a seq is counted in `duplicates` and dropped);
- `arrivals`: (local receive time, seq, event time) of each first receipt, for latencies;
- `closes`: the close codes the server sent, `errors`: `{"type": "error"}` frames.

Every loop here ends: `run()` returns when its `stop` event is set, and a connect attempt is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import websockets

from aiqt.client import sign_request

#: Pause before a reconnect (a dropped client comes back at once, as a real one would).
RECONNECT_PAUSE = 0.05


async def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; whether it held."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        await asyncio.sleep(step)
    return predicate()


def stream_url(gateway_url: str, api_secret: str, query: dict[str, str] | None = None) -> str:
    """The signed URL of `/api/stream` (sign again for every connection: the timestamp ages)."""
    signed = sign_request(api_secret, "GET", "/api/stream", query or {})
    return gateway_url.replace("http://", "ws://", 1).rstrip("/") + f"/api/stream?{signed}"


@dataclass
class AccountFeed:
    """One client of one account's events, reconnecting with `since` until told to stop."""

    gateway_url: str
    api_key: str
    api_secret: str
    account: str
    topics: str | None = None
    compression: bool = True  # offer permessage-deflate, as the websockets library and browsers do
    events: dict[int, dict[str, Any]] = field(default_factory=dict)
    arrivals: list[tuple[float, int, int]] = field(default_factory=list)
    duplicates: int = 0
    connects: int = 0
    closes: Counter[int] = field(default_factory=Counter)
    errors: list[dict[str, Any]] = field(default_factory=list)
    _ws: websockets.ClientConnection | None = None

    @property
    def last_seq(self) -> int:
        return max(self.events, default=0)

    def holes(self) -> list[int]:
        """The seqs missing between 1 and the last one received."""
        return [s for s in range(1, self.last_seq + 1) if s not in self.events]

    async def run(self, stop: asyncio.Event, *, since_start: int | None = 0) -> None:
        """Connect (first with `since=since_start`, None = live only), read, reconnect — until `stop`."""
        since = since_start
        while not stop.is_set():
            query = {} if since is None else {"since": str(since)}
            if self.topics:
                query["topics"] = self.topics
            try:
                async with websockets.connect(
                    stream_url(self.gateway_url, self.api_secret, query),
                    additional_headers={"X-API-KEY": self.api_key},
                    open_timeout=10,
                    max_queue=None,
                    compression="deflate" if self.compression else None,
                ) as ws:
                    self._ws = ws
                    self.connects += 1
                    await self._read(ws, stop)
            except websockets.exceptions.ConnectionClosed as exc:
                if exc.rcvd is not None:
                    self.closes[exc.rcvd.code] += 1
            except (OSError, TimeoutError, websockets.exceptions.InvalidHandshake) as exc:
                self.errors.append({"type": "connect", "msg": repr(exc)})
            finally:
                self._ws = None
            since = self.last_seq
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RECONNECT_PAUSE)

    async def _read(self, ws: websockets.ClientConnection, stop: asyncio.Event) -> None:
        stopper = asyncio.create_task(stop.wait())
        try:
            while True:
                receive = asyncio.ensure_future(ws.recv())
                done, _ = await asyncio.wait({receive, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if receive not in done:
                    receive.cancel()
                    with contextlib.suppress(asyncio.CancelledError, websockets.exceptions.ConnectionClosed):
                        await receive
                    return
                self.take(receive.result())
        finally:
            stopper.cancel()

    def take(self, frame: str | bytes) -> None:
        at = time.time()
        event = json.loads(frame)
        if not isinstance(event, dict):
            return
        if event.get("type") == "error":
            self.errors.append(event)
            return
        seq = event.get("seq")
        if not isinstance(seq, int):
            return
        if seq in self.events:
            self.duplicates += 1
            return
        self.events[seq] = event
        self.arrivals.append((at, seq, int(event.get("time", 0))))

    async def drop(self) -> None:
        """Close this client's connection from its side (it reconnects with `since`)."""
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()


#: The gateway closes a client that does not keep up with this code.
TOO_SLOW = 4008
#: Account events that carry the exchange's event time (a resync's carry its own).
LIVE_TYPES = frozenset({"order", "position", "balance", "protection", "margin_call", "liquidation"})


@dataclass
class SlowClient:
    close_code: int | None = None
    frames_before_close: int = 0
    cut_after_s: float | None = None  # from the start of the load to the last event it was sent


async def slow_client(
    gateway_url: str, api_key: str, api_secret: str, rcvbuf: int, resume: asyncio.Event
) -> SlowClient:
    """Connect, read nothing until `resume`, then read what is there: the frames, then the close."""
    parts = urlsplit(gateway_url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (parts.hostname or "127.0.0.1", parts.port or 80))
    out = SlowClient()
    events: list[dict[str, Any]] = []
    async with websockets.connect(
        stream_url(gateway_url, api_secret),
        sock=sock,
        additional_headers={"X-API-KEY": api_key},
        max_queue=4,  # the library stops reading the socket after 4 frames: the kernel buffers fill
        compression=None,  # frames cross the socket at their size (permessage-deflate shrinks them ~4x)
        ping_interval=None,
        open_timeout=10,
    ) as ws:
        await resume.wait()
        try:
            while True:
                frame = await asyncio.wait_for(ws.recv(), 30)
                events.append(json.loads(frame))
        except websockets.exceptions.ConnectionClosed as exc:
            out.close_code = exc.rcvd.code if exc.rcvd is not None else None
        except TimeoutError:
            out.close_code = None
    out.frames_before_close = len(events)
    times = [int(e["time"]) for e in events if e.get("type") in LIVE_TYPES]
    out.cut_after_s = max(times) / 1000 if times else None
    return out
