"""The governor's fleet coordination over RabbitMQ: freezes, and how many workers share the budget.

No extra store: the bus every worker already depends on carries it (docs/limits.md says why).

- **Freeze broadcast.** A worker that gets a 429 or 418 publishes the freeze on the fanout exchange
  `{ns}.governor`; every worker (any host) has its own exclusive queue bound to it and stops
  sending at once. The same freeze is also kept as the only message of the queue
  `{ns}.governor.freeze` (max-length 1, the message expiring with the freeze), so a worker that
  starts or reconnects during a ban learns it before its first request: a fanout alone reaches
  only those listening at that moment.
- **Live workers.** The budget is split by the number of workers consuming the command queue: the
  consumer count of a passive declare, read every `poll` seconds. When it cannot be read the last
  value stays (never "1 worker, the whole budget" for a fleet of several).

Freeze times are wall-clock epoch milliseconds: the hosts of a fleet are NTP-synchronised, and a
freeze lasts seconds to minutes, so clock error is small against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from bus.config import BusSettings
from bus.connection import ClusterConnection
from bus.topology import Topology

log = logging.getLogger("aiqt.bus.fleet")

#: Seconds between reads of the live worker count.
POLL = 2.0


class FleetLink:
    """One worker's link to the others: receives and publishes freezes, counts live workers."""

    def __init__(
        self,
        settings: BusSettings,
        *,
        on_freeze: Callable[[dict[str, Any]], None],
        on_workers: Callable[[int], None],
        name: str = "aiqt-governor",
        poll: float = POLL,
    ) -> None:
        self.topology = Topology(settings.bus_namespace, settings.queue_type)
        self._on_freeze = on_freeze
        self._on_workers = on_workers
        self._poll = poll
        self._bus = ClusterConnection(settings.amqp_url, name=name, on_connect=self._setup)
        self._channel: AbstractChannel | None = None
        self._count_channel: AbstractChannel | None = None
        self._task: asyncio.Task[None] | None = None
        self.workers: int | None = None

    @property
    def exchange(self) -> str:
        return f"{self.topology.namespace}.governor"

    @property
    def last_freeze_queue(self) -> str:
        return f"{self.topology.namespace}.governor.freeze"

    async def start(self, *, timeout: float = 10.0) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._count_loop(), name="fleet worker count")
        await self._bus.start(timeout=timeout)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._bus.close()
        self._channel = None

    async def _setup(self, connection: AbstractConnection) -> None:
        channel = await connection.channel(publisher_confirms=False)
        exchange = await channel.declare_exchange(self.exchange, aio_pika.ExchangeType.FANOUT, durable=True)
        last = await channel.declare_queue(
            self.last_freeze_queue, durable=False, auto_delete=False, arguments={"x-max-length": 1}
        )
        mine = await channel.declare_queue(exclusive=True, auto_delete=True)
        await mine.bind(exchange)
        await mine.consume(self._on_message, no_ack=True)
        # A freeze still in force when this worker (re)connects.
        message = await last.get(no_ack=False, fail=False)
        if message is not None:
            self._deliver(message.body)
            await message.nack(requeue=True)
        channel.close_callbacks.add(lambda *_: self._bus.lost(connection))
        self._channel = channel
        self._count_channel = None

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._deliver(message.body)

    def _deliver(self, body: bytes) -> None:
        try:
            raw = json.loads(body)
            if isinstance(raw, dict):
                self._on_freeze(raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a malformed freeze message: %s", exc)

    async def publish_freeze(self, freeze: dict[str, Any]) -> None:
        """Tell every worker (now and those that start before it ends) to stop sending."""
        channel = self._channel
        if channel is None or channel.is_closed:
            log.warning("cannot broadcast a freeze (not connected to RabbitMQ); this worker is frozen alone")
            return
        body = json.dumps(freeze).encode()
        remaining = int(freeze.get("until_ms", 0)) - int(time.time() * 1000)
        if remaining <= 0:
            return
        try:
            exchange = await channel.get_exchange(self.exchange, ensure=False)
            await exchange.publish(aio_pika.Message(body, content_type="application/json"), routing_key="")
            await channel.default_exchange.publish(
                aio_pika.Message(body, content_type="application/json", expiration=remaining / 1000),
                routing_key=self.last_freeze_queue,
            )
        except (AMQPError, aiormq.exceptions.AMQPError, ChannelInvalidStateError, ConnectionError) as exc:
            log.warning("freeze broadcast failed: %r", exc)

    async def refresh(self) -> None:
        """Read the live worker count now (a worker calls this once its own consumer is up)."""
        await self._count()

    async def _count(self) -> None:
        # Its own channel: a passive declare of a queue not declared yet (a worker starting on a new
        # namespace) closes the channel it is sent on; that must not take the freeze link with it.
        connection = self._bus.connection
        if connection is None:
            return
        try:
            if self._count_channel is None or self._count_channel.is_closed:
                self._count_channel = await connection.channel(publisher_confirms=False)
            underlay = await self._count_channel.get_underlay_channel()
            ok = await asyncio.wait_for(underlay.queue_declare(self.topology.commands_queue, passive=True), 5.0)
        except (TimeoutError, AMQPError, aiormq.exceptions.AMQPError, ChannelInvalidStateError, OSError) as exc:
            log.debug("cannot read the live worker count yet: %r", exc)
            return
        count = int(ok.consumer_count or 0)
        if count > 0:
            self.workers = count
            self._on_workers(count)

    async def _count_loop(self) -> None:
        while True:
            await asyncio.sleep(self._poll)
            await self._count()
