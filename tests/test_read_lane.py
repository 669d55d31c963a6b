"""The two lanes on a real broker: reads land in the transient `{ns}.reads` queue, writes in the
quorum command queue, by the same exchange and routing keys; a namespace declared before the read
lane loses its old read bindings, so no read is delivered twice."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika

from bus.topology import READ_COMMANDS, Topology, declare_all
from harness.broker import delete_namespace
from schemas.enums import CommandType
from schemas.registry import MUTATING_COMMANDS


async def _counts(channel: aio_pika.abc.AbstractChannel, topology: Topology) -> tuple[int, int]:
    await asyncio.sleep(0.2)
    writes = await channel.declare_queue(topology.commands_queue, passive=True)
    reads = await channel.declare_queue(topology.reads_queue, passive=True)
    return int(writes.declaration_result.message_count or 0), int(reads.declaration_result.message_count or 0)


async def _lanes(amqp_url: str) -> None:
    topology = Topology(f"test-lanes-{uuid.uuid4().hex[:8]}", "quorum")
    connection = await aio_pika.connect(amqp_url)
    try:
        async with connection:
            channel = await connection.channel()
            # As an older AIQT declared it: every command type bound to the quorum queue.
            exchange = await channel.declare_exchange(
                topology.commands_exchange, aio_pika.ExchangeType.DIRECT, durable=True
            )
            old = await channel.declare_queue(
                topology.commands_queue, durable=True, arguments=topology.queue_arguments()
            )
            for command in CommandType:
                await old.bind(exchange, routing_key=command.value)
            await declare_all(channel, topology)

            assert frozenset(CommandType) - MUTATING_COMMANDS == READ_COMMANDS
            for command in READ_COMMANDS:
                await exchange.publish(aio_pika.Message(b"{}"), routing_key=command.value)
            assert await _counts(channel, topology) == (0, len(READ_COMMANDS))
            for command in MUTATING_COMMANDS:
                await exchange.publish(aio_pika.Message(b"{}"), routing_key=command.value)
            assert await _counts(channel, topology) == (len(MUTATING_COMMANDS), len(READ_COMMANDS))
            reads = await channel.declare_queue(topology.reads_queue, passive=True)
            assert reads.durable is False
    finally:
        await delete_namespace(amqp_url, topology)


def test_reads_and_writes_take_their_lanes(amqp_url: str) -> None:
    asyncio.run(_lanes(amqp_url))
