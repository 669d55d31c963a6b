"""Events out: the topic exchange, its journal, and who may publish for an account.

    streamer ──(<account>.<type> | market.<SYMBOL>.<stream>)──> {ns}.events (topic, durable)
                                                                   ├──> {ns}.events.journal (stream: account events,
                                                                   │      replayable by offset or time)
                                                                   ├──> each gateway's own queue (transient)
                                                                   └──> any subscriber's own queue
    streamer ──(default exchange)──> {ns}.streamer.state.<account> (the last seq and event time;
                                                                      a queue of length 1)
    streamer ── exclusive queue {ns}.streamer.leader.<account> ── exactly one active per account

Why these pieces:
- *One active streamer per account.* Binance allows one listenKey per account, and a DELETE from any
  holder kills everyone's stream; two streamers would also number events twice. Leadership is an
  exclusive queue: RabbitMQ deletes it the moment its owner's connection dies (a SIGKILL closes the
  socket), and a standby that keeps trying to declare it takes over within its retry interval.
- *`seq` survives takeovers.* The active streamer keeps the account's last seq and event time in a
  durable queue holding one message (x-max-length 1, drop-head); a new leader reads it first, so seq
  continues by one and the resync knows from when to look.
- *A journal.* Account events also land in a RabbitMQ stream, so a subscriber that was away can
  read what it missed by offset or time (and it is replicated with the cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import AMQPError, ChannelClosed

from bus.connection import ClusterConnection
from bus.errors import BusUnavailable
from schemas import codec
from schemas.events import EventType

log = logging.getLogger("aiqt.bus.events")

#: How long the journal keeps account events.
JOURNAL_MAX_AGE = "7D"
PERSISTENT = aio_pika.DeliveryMode.PERSISTENT


@dataclass(frozen=True)
class EventTopology:
    namespace: str = "aiqt"

    @property
    def exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def journal(self) -> str:
        return f"{self.namespace}.events.journal"

    def state_queue(self, account: str) -> str:
        return f"{self.namespace}.streamer.state.{account}"

    def leader_queue(self, account: str) -> str:
        return f"{self.namespace}.streamer.leader.{account}"


def account_key(account: str, event_type: str) -> str:
    return f"{account}.{event_type}"


def market_key(symbol: str, stream: str) -> str:
    return f"market.{symbol}.{stream}"


async def declare_events(channel: AbstractChannel, topology: EventTopology) -> AbstractExchange:
    """The events exchange and its journal (idempotent)."""
    exchange = await channel.declare_exchange(topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    journal = await channel.declare_queue(
        topology.journal, durable=True, arguments={"x-queue-type": "stream", "x-max-age": JOURNAL_MAX_AGE}
    )
    for event_type in EventType:  # account events only: market data is not journalled
        await journal.bind(exchange, routing_key=f"#.{event_type.value}")
    return exchange


@dataclass(frozen=True)
class AccountState:
    """What a new leader needs to continue: the last seq published, and that event's time."""

    seq: int = 0
    time: int = 0


class EventPublisher:
    """Publishes events (with confirms) and the account state, on a channel of a given connection."""

    def __init__(self, channel: AbstractChannel, exchange: AbstractExchange, topology: EventTopology) -> None:
        self._channel = channel
        self._exchange = exchange
        self.topology = topology
        self._state_queues: set[str] = set()

    @classmethod
    async def open(cls, connection: AbstractConnection, topology: EventTopology) -> EventPublisher:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare_events(channel, topology)
        return cls(channel, exchange, topology)

    async def publish(self, routing_key: str, body: bytes, *, persistent: bool = True) -> None:
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=PERSISTENT if persistent else aio_pika.DeliveryMode.NOT_PERSISTENT,
        )
        await self._exchange.publish(message, routing_key=routing_key)

    async def save_state(self, account: str, state: AccountState) -> None:
        name = self.topology.state_queue(account)
        if name not in self._state_queues:
            await _declare_state_queue(self._channel, name)
            self._state_queues.add(name)
        body = codec.dumps({"seq": state.seq, "time": state.time})
        await self._channel.default_exchange.publish(aio_pika.Message(body, delivery_mode=PERSISTENT), name)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._channel.close()


async def _declare_state_queue(channel: AbstractChannel, name: str) -> AbstractQueue:
    arguments: dict[str, Any] = {"x-max-length": 1, "x-overflow": "drop-head"}
    return await channel.declare_queue(name, durable=True, arguments=arguments)


async def load_state(connection: AbstractConnection, topology: EventTopology, account: str) -> AccountState:
    """The account's last saved state (seq 0 if none). The message stays in the queue."""
    channel = await connection.channel()
    try:
        queue = await _declare_state_queue(channel, topology.state_queue(account))
        message = await queue.get(fail=False, no_ack=False)
        if message is None:
            return AccountState()
        await message.nack(requeue=True)
        raw = codec.loads(message.body)
        return AccountState(int(raw["seq"]), int(raw["time"]))
    finally:
        with contextlib.suppress(Exception):
            await channel.close()


async def try_lead(connection: AbstractConnection, topology: EventTopology, account: str) -> AbstractChannel | None:
    """Become the account's active streamer: a channel on which the leader queue was declared, or None
    if another process leads. Leadership ends when the connection closes (RabbitMQ deletes an
    exclusive queue with its connection) or when the leader deletes the queue (`resign`)."""
    channel = await connection.channel()
    try:
        await channel.declare_queue(topology.leader_queue(account), exclusive=True)
    except (ChannelClosed, aiormq.exceptions.ChannelLockedResource, aiormq.exceptions.ChannelAccessRefused):
        with contextlib.suppress(Exception):
            await channel.close()
        return None
    except AMQPError:
        with contextlib.suppress(Exception):
            await channel.close()
        raise
    return channel


async def resign(channel: AbstractChannel, topology: EventTopology, account: str) -> None:
    """Give up leadership (so a standby takes over at once), e.g. when this process stops."""
    with contextlib.suppress(Exception):
        await channel.queue_delete(topology.leader_queue(account))
    with contextlib.suppress(Exception):
        await channel.close()


OnEvent = Callable[[str, bytes], Awaitable[None]]


class EventSubscription:
    """A transient queue of this process bound to `{ns}.events` with the given routing patterns;
    `on_event(routing_key, body)` for each message. Bindings can change while it runs."""

    def __init__(self, channel: AbstractChannel, queue: AbstractQueue, exchange: AbstractExchange) -> None:
        self._channel = channel
        self._queue = queue
        self._exchange = exchange
        self._bound: set[str] = set()

    @classmethod
    async def open(
        cls,
        connection: AbstractConnection,
        topology: EventTopology,
        patterns: list[str],
        on_event: OnEvent,
        *,
        prefetch: int = 1000,
    ) -> EventSubscription:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        exchange = await declare_events(channel, topology)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True, arguments={"x-max-length": 100_000})
        sub = cls(channel, queue, exchange)
        for pattern in patterns:
            await sub.bind(pattern)

        async def deliver(message: AbstractIncomingMessage) -> None:
            try:
                await on_event(message.routing_key or "", message.body)
            finally:
                await message.ack()

        await queue.consume(deliver)
        return sub

    async def bind(self, pattern: str) -> None:
        if pattern not in self._bound:
            await self._queue.bind(self._exchange, routing_key=pattern)
            self._bound.add(pattern)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._channel.close()


async def read_journal(
    connection: AbstractConnection,
    topology: EventTopology,
    *,
    since_ms: int,
    until_idle: float = 0.5,
    limit: int = 100_000,
) -> list[dict[str, Any]]:
    """Account events from the journal since `since_ms` (a time offset), in order, stopping when
    nothing more arrives for `until_idle` seconds."""
    channel = await connection.channel()
    out: list[dict[str, Any]] = []
    try:
        await channel.set_qos(prefetch_count=1000)
        await declare_events(channel, topology)
        queue = await channel.get_queue(topology.journal, ensure=False)
        done = asyncio.Event()
        last = asyncio.get_running_loop().time()

        async def take(message: AbstractIncomingMessage) -> None:
            nonlocal last
            last = asyncio.get_running_loop().time()
            with contextlib.suppress(ValueError):
                out.append(codec.loads(message.body))
            await message.ack()
            if len(out) >= limit:
                done.set()

        offset = datetime.fromtimestamp(since_ms / 1000, tz=UTC)
        tag = await queue.consume(take, arguments={"x-stream-offset": offset})
        while asyncio.get_running_loop().time() - last < until_idle:  # idle = the journal's end
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.05)
                break
        with contextlib.suppress(Exception):
            await queue.cancel(tag)
    finally:
        with contextlib.suppress(Exception):
            await channel.close()
    return out


# --- which command placed which order -------------------------------------------------------------


class OrderIndex:
    """Which AIQT command placed the stop loss / take profit with a given client id.

    A client id (`aq-<hash>-SL`) cannot be turned back into its command id, but a `protection` event
    must name the command. So the worker appends `{account, clientOrderId, commandId, leg}` to the
    stream `{ns}.orders.index` before it sends the leg to the exchange, and the active streamer reads
    the stream (from a week back, then live) into memory. Replicated with the cluster like the rest.
    """

    MAX_AGE = "30D"

    def __init__(self, connection: AbstractConnection | ClusterConnection, namespace: str) -> None:
        self._connection = connection
        self.queue = f"{namespace}.orders.index"
        self._channel: AbstractChannel | None = None

    async def _ensure(self) -> AbstractChannel:
        if self._channel is not None and not self._channel.is_closed:
            return self._channel
        connection = self._connection
        if isinstance(connection, ClusterConnection):
            current = connection.connection
            if current is None:
                raise BusUnavailable("not connected to RabbitMQ: cannot record the order index")
            connection = current
        channel = await connection.channel(publisher_confirms=True)
        await declare_index(channel, self.queue)
        self._channel = channel
        return channel

    async def record(self, account: str, client_id: str, command_id: str, leg: str) -> None:
        channel = await self._ensure()
        body = codec.dumps({"account": account, "clientOrderId": client_id, "commandId": command_id, "leg": leg})
        await channel.default_exchange.publish(aio_pika.Message(body, delivery_mode=PERSISTENT), self.queue)


async def declare_index(channel: AbstractChannel, name: str) -> AbstractQueue:
    arguments: dict[str, Any] = {"x-queue-type": "stream", "x-max-age": OrderIndex.MAX_AGE}
    return await channel.declare_queue(name, durable=True, arguments=arguments)


async def follow_index(
    connection: AbstractConnection, namespace: str, since_ms: int, on_entry: Callable[[dict[str, Any]], None]
) -> AbstractChannel:
    """Read the order index from `since_ms` on, and keep following it; close the channel to stop."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=1000)
    queue = await declare_index(channel, f"{namespace}.orders.index")

    async def take(message: AbstractIncomingMessage) -> None:
        with contextlib.suppress(ValueError, TypeError):
            entry = codec.loads(message.body)
            if isinstance(entry, dict):
                on_entry(entry)
        await message.ack()

    offset = datetime.fromtimestamp(since_ms / 1000, tz=UTC)
    await queue.consume(take, arguments={"x-stream-offset": offset})
    return channel
