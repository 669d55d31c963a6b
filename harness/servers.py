"""Real servers in this process: uvicorn and asyncio loops in background threads; free ports, and
waiting for an HTTP endpoint to answer."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
import uvicorn

from gateway import server as gateway_server

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 30.0) -> None:
    """Until `url` answers with a status below 500."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:g}s")


class ThreadedUvicorn:
    """An ASGI app served on a free loopback port from a background thread."""

    def __init__(self, app: Any, *, port: int | None = None, health: str = "/healthz") -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = gateway_server.config(app, "127.0.0.1", self.port, log_level="warning", loop="asyncio", lifespan="on")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)
        self._health = health

    def start(self, timeout: float = 15.0) -> ThreadedUvicorn:
        self._thread.start()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.server.started:
                try:
                    httpx.get(self.url + self._health, timeout=1)
                    return self
                except httpx.HTTPError:
                    pass
            time.sleep(0.02)
        raise RuntimeError(f"server on {self.url} did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)


class LoopThread:
    """An asyncio loop in a thread, for components (workers) that must keep running while a test
    blocks on synchronous HTTP calls."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
