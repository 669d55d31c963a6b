"""The bus on a real RabbitMQ: RPC round trip, poison, deadlines, unroutable commands, the lock."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest

from bus import BusSettings, BusUnavailable, CommandConsumer, CommandLocked, Delivery, HandlerResult, RpcClient
from bus.lock import CommandLocks
from harness.broker import delete_namespace
from schemas import codec
from worker.service import Worker
from worker.settings import WorkerSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def bus_settings(amqp_url: str) -> AsyncIterator[BusSettings]:
    settings = BusSettings(amqp_url=amqp_url, bus_namespace=f"test-{uuid.uuid4().hex[:12]}")
    yield settings
    from bus import Topology

    await delete_namespace(amqp_url, Topology(settings.bus_namespace, settings.queue_type))


@pytest.fixture
async def rpc(bus_settings: BusSettings) -> AsyncIterator[RpcClient]:
    client = RpcClient(bus_settings)
    await client.start()
    yield client
    await client.close()


async def _worker(bus_settings: BusSettings) -> Worker:
    worker = Worker(WorkerSettings(**bus_settings.model_dump(), accounts={}))
    await worker.start()
    return worker


def _ping() -> bytes:
    return codec.dumps({"type": "system.ping", "account": "any", "payload": {}})


async def test_ping_round_trip(bus_settings: BusSettings, rpc: RpcClient) -> None:
    worker = await _worker(bus_settings)
    try:
        reply = await rpc.call("system.ping", _ping(), command_id=uuid.uuid4().hex, timeout=5)
        body = codec.loads(reply.body)
        assert (reply.code, body["code"], body["msg"]) == (200, 200, "pong")
        assert body["data"]["worker"] == worker.name
        assert reply.total_ms >= reply.publish_ms > 0
    finally:
        await worker.close()


async def test_two_workers_share_the_queue(bus_settings: BusSettings, rpc: RpcClient) -> None:
    workers = [await _worker(bus_settings) for _ in range(2)]
    for w, name in zip(workers, ("w1", "w2"), strict=True):
        w.name = name
    try:
        replies = await asyncio.gather(
            *(rpc.call("system.ping", _ping(), command_id=uuid.uuid4().hex, timeout=5) for _ in range(200))
        )
        seen = {codec.loads(r.body)["data"]["worker"] for r in replies}
        assert seen == {"w1", "w2"}
    finally:
        for w in workers:
            await w.close()


async def test_unroutable_command_is_refused(rpc: RpcClient) -> None:
    with pytest.raises(BusUnavailable, match="did not accept"):
        await rpc.call("no.such.command", _ping(), command_id="x", timeout=2)


async def _dead_letters(settings: BusSettings, count: int) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(settings.amqp_url)
    got: list[aio_pika.abc.AbstractIncomingMessage] = []
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{settings.bus_namespace}.dead")
        end = time.monotonic() + 5
        while len(got) < count and time.monotonic() < end:
            message = await queue.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            got.append(message)
    return got


async def _publish_raw(settings: BusSettings, body: bytes, routing_key: str, **props: Any) -> bytes:
    """Publish like an outside AMQP publisher and return the reply body."""
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        replies = await channel.declare_queue(exclusive=True)
        exchange = await channel.get_exchange(f"{settings.bus_namespace}.commands")
        await exchange.publish(
            aio_pika.Message(body, reply_to=replies.name, correlation_id="c1", **props),
            routing_key=routing_key,
        )
        async with replies.iterator(timeout=5) as it:
            async for message in it:
                return message.body
    raise AssertionError("no reply")


async def test_poison_messages_get_an_error_reply_and_are_dead_lettered(
    bus_settings: BusSettings, rpc: RpcClient
) -> None:
    worker = await _worker(bus_settings)
    try:
        bad_json = await _publish_raw(bus_settings, b"{not json", "system.ping", message_id="p1")
        assert codec.loads(bad_json)["code"] == 400
        unknown = await _publish_raw(
            bus_settings, codec.dumps({"type": "order.teleport", "account": "a"}), "system.ping", message_id="p2"
        )
        assert codec.loads(unknown)["code"] == 400 and "type" in codec.loads(unknown)["msg"]
        no_account = await _publish_raw(bus_settings, b'{"type": "system.ping"}', "system.ping", message_id="p3")
        assert "account" in codec.loads(no_account)["msg"]
        dead = await _dead_letters(bus_settings, 3)
        reasons = sorted(str((m.headers or {}).get("x-aiqt-reason")) for m in dead)
        assert len(reasons) == 3 and all(r.startswith("malformed") for r in reasons)
        # and the worker keeps going
        reply = await rpc.call("system.ping", _ping(), command_id=uuid.uuid4().hex, timeout=5)
        assert reply.code == 200
    finally:
        await worker.close()


async def test_expired_command_is_not_executed(bus_settings: BusSettings) -> None:
    ran: list[str] = []

    async def handler(d: Delivery) -> HandlerResult:
        ran.append(d.command_id)
        return HandlerResult(200, b'{"code":200,"msg":"ran","data":null}')

    consumer = CommandConsumer(bus_settings, handler)
    await consumer.start()
    try:
        body = await _publish_raw(
            bus_settings,
            _ping(),
            "system.ping",
            message_id="late",
            headers={"x-deadline": int(time.time() * 1000) - 1},
        )
        assert codec.loads(body)["code"] == 504
        assert ran == []
        dead = await _dead_letters(bus_settings, 1)
        assert "deadline" in str((dead[0].headers or {}).get("x-aiqt-reason"))
    finally:
        await consumer.close()


async def test_command_lock_is_exclusive_and_released(amqp_url: str, bus_settings: BusSettings) -> None:
    from bus import Topology

    topo = Topology(bus_settings.bus_namespace)
    a = await aio_pika.connect_robust(amqp_url)
    b = await aio_pika.connect_robust(amqp_url)
    try:
        locks_a, locks_b = CommandLocks(a, topo), CommandLocks(b, topo)
        async with locks_a.hold("cmd-1", wait=0):
            with pytest.raises(CommandLocked):
                async with locks_b.hold("cmd-1", wait=0.2):
                    pass
            async with locks_b.hold("cmd-2", wait=0):  # other ids are not blocked
                pass
        async with locks_b.hold("cmd-1", wait=2):  # released (the delete runs in the background)
            pass
        # a holder whose connection dies loses the lock with it, and is stopped (fenced): it must not
        # go on executing a command that RabbitMQ is redelivering to someone else
        dying = await aio_pika.connect(amqp_url)
        body_finished = False

        async def hold_while_the_connection_dies() -> None:
            nonlocal body_finished
            async with CommandLocks(dying, topo).hold("cmd-3", wait=0):
                await dying.close()
                await asyncio.sleep(1)
                body_finished = True

        holder = asyncio.create_task(hold_while_the_connection_dies())
        with pytest.raises(asyncio.CancelledError, match="lost the lock of command cmd-3"):
            await holder
        assert not body_finished
        async with locks_b.hold("cmd-3", wait=2):
            pass
    finally:
        await a.close()
        await b.close()
