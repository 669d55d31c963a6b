"""Helpers for the paper exchange's WebSocket tests: real sockets against the embedded server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from paper.embedded import EmbeddedPaper

Frame = Any


def ws_base(paper: EmbeddedPaper) -> str:
    return paper.url.replace("http://", "ws://", 1)


def open_ws(paper: EmbeddedPaper, path: str) -> Any:
    """An async context manager of a client connection to `path` on the paper exchange."""
    return connect(ws_base(paper) + path, open_timeout=5, close_timeout=2)


async def recv(ws: ClientConnection, timeout: float = 3.0) -> Frame:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws: ClientConnection, match: Callable[[Frame], bool], timeout: float = 5.0) -> list[Frame]:
    """Frames up to and including the first one `match` accepts (TimeoutError if none comes)."""
    seen: list[Frame] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no matching frame in {timeout}s; got {seen[-5:]}")
        frame = await recv(ws, left)
        seen.append(frame)
        if match(frame):
            return seen


async def drain(ws: ClientConnection, seconds: float) -> list[Frame]:
    """Every frame that arrives within `seconds`."""
    out: list[Frame] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            out.append(await recv(ws, left))
        except TimeoutError:
            break
    return out


async def request(ws: ClientConnection, method: str, params: list[Any] | None = None, request_id: Any = 1) -> Frame:
    """Send a JSON method and return its answer (the frame carrying the same id)."""
    message: dict[str, Any] = {"method": method, "id": request_id}
    if params is not None:
        message["params"] = params
    await ws.send(orjson.dumps(message).decode())
    frames = await recv_until(ws, lambda f: isinstance(f, dict) and "id" in f and f["id"] == request_id)
    return frames[-1]


def listen_key(paper: EmbeddedPaper, api_key: str, method: str = "POST") -> httpx.Response:
    return httpx.request(method, paper.url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": api_key}, timeout=5)


def user_events(frames: list[Frame]) -> list[Frame]:
    """The user-data payloads among frames (unwrapping combined frames)."""
    out = []
    for f in frames:
        data = f.get("data", f) if isinstance(f, dict) else f
        if isinstance(data, dict) and "e" in data:
            out.append(data)
    return out


async def until_closed(ws: ClientConnection) -> ConnectionClosed:
    """Read until the server closes the connection; the close (AssertionError if it stays open)."""
    try:
        for _ in range(200):
            await recv(ws)
    except ConnectionClosed as e:
        return e
    raise AssertionError("the connection stayed open")
