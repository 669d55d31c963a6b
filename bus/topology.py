"""Exchanges and queues.

    publisher ──(routing key = command type)──> {ns}.commands (direct, durable)
                                                   └──> queue {ns}.commands (quorum, durable)
                                                          └─ over delivery limit ──> {ns}.dead ──> queue {ns}.dead
    worker ──(default exchange, routing key = reply_to, correlation_id)──> the caller's reply queue

One command queue bound to every command type: every worker can run every command, so scaling is
just starting more workers. Workers also dead-letter poison and expired commands explicitly, with
the reason in the `x-aiqt-reason` header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from schemas.enums import CommandType

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
    for command in CommandType:
        await queue.bind(exchange, routing_key=command.value)
    return exchange, queue
