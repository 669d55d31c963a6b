"""The streamer hands a batch of events to RabbitMQ without awaiting each confirm in turn
(streamer/account.py `publish_all`), and the frames that arrived while a batch was being published
form the next batch (`_consume`): the events must still arrive in seq order, one per frame, and the
saved state must name the last of them, so that a new leader continues at the next seq.

Awaiting two confirms per event (the event, then the state) made the publish path the bottleneck of
the event stream: it delivered ~100-130 events/s on the loaded bench machine, below the 200 events/s
of issue 12, and latency grew without bound. The timing printed here compares the two ways.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, cast

import aio_pika
import pytest
from websockets.exceptions import ConnectionClosedOK

from bus import Topology
from bus.connection import ClusterConnection
from bus.events import AccountState, EventPublisher, EventTopology, account_key, declare_events, load_state
from harness.broker import delete_namespace
from harness.event_feed import wait_until
from schemas import codec
from schemas import events as ev
from streamer.account import AccountStream
from streamer.settings import StreamerSettings
from streamer.translate import Draft

pytestmark = pytest.mark.integration

BATCHES, PER_BATCH = 100, 4  # like fills: NEW, TRADE, then a balance and a position


FRAMES = 200


class FakeSocket:
    """The frames of a user-data stream, all there at once; then the connection closes."""

    def __init__(self, frames: list[str]) -> None:
        self.frames = frames

    async def recv(self) -> str:
        if not self.frames:
            raise ConnectionClosedOK(None, None)
        return self.frames.pop(0)


def order_frame(i: int) -> str:
    now = int(time.time() * 1000)
    o = {
        "s": "BTCUSDT",
        "c": f"c{i}",
        "S": "BUY",
        "o": "MARKET",
        "q": "0.002",
        "x": "NEW",
        "X": "NEW",
        "i": i,
        "T": now,
    }
    return codec.dumps({"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": o}).decode()


async def _nothing(connection: object) -> None:
    return None


async def test_pipelined_batches_keep_seq_order_and_save_the_last_state(amqp_url: str) -> None:
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    topology = EventTopology(namespace)
    settings = StreamerSettings(amqp_url=amqp_url, bus_namespace=namespace, accounts={})
    bus = ClusterConnection(amqp_url, name="aiqt-test-publish-order", on_connect=_nothing)
    await bus.start(timeout=10)
    received: list[int] = []
    try:
        connection = bus.connection
        assert connection is not None
        channel = await connection.channel()
        exchange = await declare_events(channel, topology)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key="acct.*")

        async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                received.append(int(codec.loads(message.body)["seq"]))

        await queue.consume(take)
        stream = AccountStream("acct", cast(Any, None), settings, bus, lambda _: None)
        stream._publisher = await EventPublisher.open(connection, topology)
        await stream._publisher.save_state("acct", stream.state)  # as `_lead` does

        started = time.perf_counter()
        for batch in range(BATCHES):
            now = int(time.time() * 1000)
            drafts: list[Draft] = [
                (ev.EventType.STREAM, ev.StreamEvent(status="test", reason=f"{batch}/{i}"), now)
                for i in range(PER_BATCH)
            ]
            await stream.publish_all(drafts)
        pipelined = time.perf_counter() - started

        total = BATCHES * PER_BATCH
        assert stream.state.seq == total
        assert await load_state(connection, topology, "acct") == stream.state
        await wait_until(lambda: len(received) >= total, 10)
        assert received == list(range(1, total + 1))

        # The same number of events, each event and state confirmed before the next is sent.
        publisher = stream._publisher
        started = time.perf_counter()
        for seq in range(total + 1, 2 * total + 1):
            body = codec.dumps({"type": "stream", "account": "acct", "seq": seq, "time": 0, "data": {}})
            await publisher.publish(account_key("acct", "stream"), body)
            await publisher.save_state("acct", AccountState(seq, 0))
        one_by_one = time.perf_counter() - started
        print(f"{total} events: pipelined {total / pipelined:.0f}/s, one confirm at a time {total / one_by_one:.0f}/s")

        # A burst of frames already waiting: published in one batch or two, in order.
        calls = 0
        publish_all = stream.publish_all

        async def counted(drafts: list[Draft]) -> None:
            nonlocal calls
            calls += 1
            await publish_all(drafts)

        stream.publish_all = counted  # type: ignore[method-assign]
        received.clear()
        first = stream.state.seq + 1
        socket = FakeSocket([order_frame(i) for i in range(FRAMES)])
        assert await stream._consume(cast(Any, socket)) == "reconnected"
        await wait_until(lambda: len(received) >= FRAMES, 10)
        assert received == list(range(first, first + FRAMES))
        assert calls <= 2, calls
        await publisher.close()
    finally:
        await bus.close()
        await delete_namespace(amqp_url, Topology(namespace), ["acct"])
