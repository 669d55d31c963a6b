"""Exchanges and queues.

    publisher ──(routing key = command type)──> {ns}.commands (direct, durable)
                                                   ├──> queue {ns}.commands (quorum, durable): writes
                                                   │      └─ over delivery limit ──> {ns}.dead ──> queue {ns}.dead
                                                   └──> queue {ns}.reads (classic, transient): reads
    worker ──(default exchange, routing key = reply_to, correlation_id)──> the caller's reply queue

Two lanes, one exchange. Commands that change state at the exchange (registry `mutating=True`) go
to the quorum queue, persistent and confirmed: a write must survive a broker node and never be lost
unseen. Commands that change nothing go to a classic non-durable queue, published transient and
without publisher confirms: a read lost with a broker node is simply asked again by its caller (it
gets 503 or 504), and persistence and confirms would cost it a disk write and a round trip per
command. The routing keys are the same, so an outside publisher needs no change. Every worker
consumes both queues, so scaling is still just starting more workers. Workers also dead-letter
poison and expired commands explicitly, with the reason in the `x-aiqt-reason` header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from schemas.enums import CommandType
from schemas.registry import COMMANDS

#: Commands that change nothing: the read lane.
READ_COMMANDS = frozenset(spec.type for spec in COMMANDS.values() if not spec.mutating)

#: A command redelivered this many times (a worker crashing on it each time) is dead-lettered.
DELIVERY_LIMIT = 20


@dataclass(frozen=True)
class Topology:
    namespace: str = "aiqt"
    queue_type: str = "quorum"

    @property
    def commands_exchange(self) -> str:
        return f"{self.namespace}.commands"

    @property
    def commands_queue(self) -> str:
        return f"{self.namespace}.commands"

    @property
    def reads_queue(self) -> str:
        return f"{self.namespace}.reads"

    @property
    def dead_exchange(self) -> str:
        return f"{self.namespace}.dead"

    @property
    def dead_queue(self) -> str:
        return f"{self.namespace}.dead"

    def lock_queue(self, command_id: str) -> str:
        return f"{self.namespace}.lock.{command_id}"

    def halt_queue(self, account: str) -> str:
        """The kill switch's flag of one account (bus.halts)."""
        return f"{self.namespace}.halt.{account}"

    def queue_arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {"x-dead-letter-exchange": self.dead_exchange}
        if self.queue_type == "quorum":
            args["x-queue-type"] = "quorum"
            args["x-delivery-limit"] = DELIVERY_LIMIT
        return args


async def declare_exchange(channel: AbstractChannel, topology: Topology) -> AbstractExchange:
    return await channel.declare_exchange(topology.commands_exchange, aio_pika.ExchangeType.DIRECT, durable=True)


async def declare_dead_letter(channel: AbstractChannel, topology: Topology) -> AbstractExchange:
    dead = await channel.declare_exchange(topology.dead_exchange, aio_pika.ExchangeType.FANOUT, durable=True)
    args: dict[str, Any] = {"x-queue-type": "quorum"} if topology.queue_type == "quorum" else {}
    queue = await channel.declare_queue(topology.dead_queue, durable=True, arguments=args)
    await queue.bind(dead, routing_key="")
    return dead


async def declare_all(channel: AbstractChannel, topology: Topology) -> tuple[AbstractExchange, AbstractQueue]:
    """Declare the whole topology (idempotent); returns the commands exchange and queue."""
    await declare_dead_letter(channel, topology)
    exchange = await declare_exchange(channel, topology)
    queue = await channel.declare_queue(topology.commands_queue, durable=True, arguments=topology.queue_arguments())
    reads = await declare_reads(channel, topology)
    for command in CommandType:
        if command in READ_COMMANDS:
            await reads.bind(exchange, routing_key=command.value)
            # A namespace declared before the read lane had every type bound here: a read must not
            # be delivered twice. Unbinding a binding that does not exist is not an error.
            await queue.unbind(exchange, routing_key=command.value)
        else:
            await queue.bind(exchange, routing_key=command.value)
    return exchange, queue


async def declare_reads(channel: AbstractChannel, topology: Topology) -> AbstractQueue:
    """The read lane's queue: classic, not durable, not auto-deleted (it outlives any one worker)."""
    return await channel.declare_queue(
        topology.reads_queue, durable=False, auto_delete=False, arguments={"x-queue-type": "classic"}
    )
