"""A WebSocket client of `GET /api/stream` that stops reading is closed with code 4008, and the
other clients of the same account keep receiving every event on time (gateway/stream.py).

The gateway is fed straight from the bus — events published on `<ns>.events` as the streamer would,
each padded to 8 KB — so that what stands between the slow client and its cut-off fills within
seconds: its own small socket buffer (it negotiates no compression, so frames cross the socket at
full size), the gateway's kernel send buffer (about 2.8 MB on loopback), then the gateway's queue of
1000 frames. No exchange or streamer is in the way.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aio_pika
import pytest

from bus.events import EventTopology, account_key, declare_events
from harness.event_feed import TOO_SLOW, AccountFeed, slow_client, wait_until
from harness.stack import StackFactory
from schemas import codec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 2500
RATE = 300  # events per second
PAD = "x" * 8192
READERS = 3


async def publish_events(amqp_url: str, namespace: str, account: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=False)
        exchange = await declare_events(channel, EventTopology(namespace))
        started = time.monotonic()
        for seq in range(1, EVENTS + 1):
            event: dict[str, Any] = {
                "type": "order",
                "account": account,
                "seq": seq,
                "time": int(time.time() * 1000),
                "data": {"orderId": seq, "status": "NEW", "pad": PAD},
            }
            await exchange.publish(aio_pika.Message(codec.dumps(event)), routing_key=account_key(account, "order"))
            if seq % 50 == 0:
                await asyncio.sleep(max(0.0, started + seq / RATE - time.monotonic()))


@pytest.mark.timeout(120)
async def test_a_client_that_stops_reading_gets_4008_and_the_others_keep_up(
    amqp_url: str, make_stack: StackFactory
) -> None:
    stack = await asyncio.to_thread(make_stack, accounts=1, gateway_up=True)
    assert stack.gateway is not None
    account = stack.accounts[0]
    stop, resume = asyncio.Event(), asyncio.Event()
    feeds = [AccountFeed(stack.gateway.url, account.api_key, account.api_secret, account.name) for _ in range(READERS)]
    readers = [asyncio.create_task(f.run(stop, since_start=None)) for f in feeds]
    slow = asyncio.create_task(slow_client(stack.gateway.url, account.api_key, account.api_secret, 4096, resume))
    try:
        await wait_until(lambda: sum(f.connects for f in feeds) == READERS, 15)
        await asyncio.sleep(0.5)  # the slow client's handshake too
        await publish_events(amqp_url, stack.namespace, account.name)
        published = time.time()
        await wait_until(lambda: all(f.last_seq == EVENTS for f in feeds), 20)
        for feed in feeds:  # every event, in one connection, promptly
            assert feed.last_seq == EVENTS and not feed.holes(), (feed.last_seq, feed.holes()[:5])
            assert feed.connects == 1 and not feed.closes, feed.closes
            last_arrival = max(at for at, _, _ in feed.arrivals)
            assert last_arrival - published < 2.0, last_arrival - published
        resume.set()
        cut = await asyncio.wait_for(slow, 40)
        print(f"slow client: {cut}; readers: {[f.last_seq for f in feeds]}")
        assert cut.close_code == TOO_SLOW, cut
        assert 0 < cut.frames_before_close < EVENTS, cut
    finally:
        stop.set()
        resume.set()
        await asyncio.wait([*readers, slow], timeout=10)
        await asyncio.to_thread(stack.stop)
