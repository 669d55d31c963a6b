"""`aiqt streamer`: every account's user-data stream and the market streams, as AIQT events.

Run as many as you like: per account (and for market data) exactly one process leads at a time
(bus.events.try_lead); the others stand by and take over within `AIQT_LEADER_RETRY` seconds of the
leader's connection closing. All of them follow the order index, so a new leader can name the
command behind a fired stop at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx
from aio_pika.abc import AbstractChannel, AbstractConnection

from bus.connection import ClusterConnection
from bus.errors import BusUnavailable
from bus.events import EventTopology, declare_events, follow_index
from streamer.account import AccountStream
from streamer.market import MarketStream
from streamer.settings import StreamerSettings
from worker.accounts import account_exchanges

log = logging.getLogger("aiqt.streamer")

#: How far back the order index is read at start (a stop placed earlier can still fire).
INDEX_HISTORY_MS = 30 * 24 * 3600 * 1000


class Streamer:
    def __init__(self, settings: StreamerSettings, *, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(settings.exchange_timeout))
        self.bus = ClusterConnection(settings.amqp_url, name="aiqt-streamer", on_connect=self._setup)
        self.commands: dict[str, str] = {}
        self._index_channel: AbstractChannel | None = None
        self.accounts = {
            name: AccountStream(name, exchange, settings, self.bus, self.commands.get)
            for name, exchange in account_exchanges(self._http, settings).items()
        }
        self.market = MarketStream(settings, self.bus) if settings.stream_symbols else None
        self._tasks: list[asyncio.Task[None]] = []

    async def _setup(self, connection: AbstractConnection) -> None:
        channel = await connection.channel()
        await declare_events(channel, EventTopology(self.settings.bus_namespace))
        await channel.close()

        def remember(entry: dict[str, object]) -> None:
            client_id, command_id = entry.get("clientOrderId"), entry.get("commandId")
            if isinstance(client_id, str) and isinstance(command_id, str):
                self.commands[client_id] = command_id

        since = int(time.time() * 1000) - INDEX_HISTORY_MS
        self._index_channel = await follow_index(connection, self.settings.bus_namespace, since, remember)

    async def start(self) -> None:
        for stream in self.accounts.values():  # one clock per exchange
            with contextlib.suppress(Exception):
                await stream.exchange.client.sync_time()
            break
        try:
            await self.bus.start(timeout=10)
        except BusUnavailable as exc:  # a streamer started before its broker waits for it
            log.warning("%s; the streams start when it answers", exc)
        self._tasks = [asyncio.create_task(s.run(), name=f"stream {s.name}") for s in self.accounts.values()]
        if self.market is not None:
            self._tasks.append(asyncio.create_task(self.market.run(), name="market stream"))
        log.info("streamer: %d account(s), market symbols %s", len(self.accounts), self.settings.stream_symbols)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.bus.close()
        await self._http.aclose()


async def run_streamer(settings: StreamerSettings) -> None:
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.metrics_host)
    streamer = Streamer(settings)
    await streamer.start()
    try:
        await asyncio.Event().wait()
    finally:
        await streamer.close()
