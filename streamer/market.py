"""Market data AIQT republishes: mark price (1 s) and 1m klines of the configured symbols.

One streamer leads the market streams (a leader queue of its own), so each update is published once.
Market events are not journalled and not persistent: the newest value is what matters.
"""

from __future__ import annotations

import asyncio
import json
import logging

import websockets

from bus.connection import ClusterConnection
from bus.events import EventPublisher, EventTopology, market_key, resign, try_lead
from schemas import codec
from streamer.settings import StreamerSettings
from streamer.translate import market_event

log = logging.getLogger("aiqt.streamer.market")

LEAD = "market"


class MarketStream:
    def __init__(self, settings: StreamerSettings, bus: ClusterConnection) -> None:
        self.settings = settings
        self.bus = bus
        self.topology = EventTopology(settings.bus_namespace)
        self.leading = asyncio.Event()
        self.published = 0

    def url(self) -> str:
        names = []
        for symbol in self.settings.stream_symbols:
            s = symbol.lower()
            names += [f"{s}@markPrice@1s", f"{s}@kline_1m"]
        return f"{self.settings.ws_base()}/market/stream?streams={'/'.join(names)}"

    async def run(self) -> None:
        while True:
            connection = self.bus.connection
            leader = None
            if connection is not None:
                try:
                    leader = await try_lead(connection, self.topology, LEAD)
                except Exception as exc:
                    log.warning("market: cannot ask for the lead: %s", exc)
            if connection is None or leader is None:
                await asyncio.sleep(self.settings.leader_retry)
                continue
            publisher = await EventPublisher.open(connection, self.topology)
            self.leading.set()
            try:
                await self._stream(publisher)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("market stream stopped (%s: %s)", type(exc).__name__, exc)
                await asyncio.sleep(1.0)
            finally:
                self.leading.clear()
                await publisher.close()
                await resign(leader, self.topology, LEAD)

    async def _stream(self, publisher: EventPublisher) -> None:
        async with websockets.connect(self.url(), open_timeout=10, ping_interval=60) as ws:
            async for frame in ws:
                wrapped = json.loads(frame)
                payload = wrapped.get("data") if isinstance(wrapped, dict) else None
                items = payload if isinstance(payload, list) else [payload]
                for item in items:
                    event = market_event(item) if isinstance(item, dict) else None
                    if event is None:
                        continue
                    symbol, stream, data = event
                    body = {"type": "market", "stream": stream, "symbol": symbol, "time": data["time"], "data": data}
                    await publisher.publish(market_key(symbol, stream), codec.dumps(body), persistent=False)
                    self.published += 1
