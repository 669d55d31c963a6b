"""Events out, end to end: the paper exchange's streams → the streamer → RabbitMQ → a WebSocket client
of the gateway and an outside AMQP subscriber.

Each test opens a position with a stop loss through REST, moves the mark past the stop, and checks
that both consumers receive the stop's fill (`order`, FILLED), a `protection` event naming the command
and leg, and a `position` event with quantity 0 — with `seq` gap-free; then the same across a
streamer SIGKILL (a standby takes over), a dropped connection and an expired listenKey.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aio_pika
import pytest
import websockets

from aiqt.client import sign_request
from bus.events import EventTopology
from harness.stack import Account, Stack, StackFactory

pytestmark = pytest.mark.integration

WAIT = 15.0
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def estack(make_module_stack: StackFactory) -> Stack:
    """A gateway, a worker and one in-process streamer on a namespace of their own."""
    s = make_module_stack(accounts=12, workers=1, gateway_up=True)
    s.start_streamer()
    return s


class Feed:
    """Events received by one consumer, with waiting helpers."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def add(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, predicate: Any, timeout: float = WAIT) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            for event in self.events:
                if predicate(event):
                    return event
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching event in {timeout}s; got {json.dumps(self.events, indent=0)}")
            self._changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def seqs(self) -> list[int]:
        return [e["seq"] for e in self.events if "seq" in e]


@asynccontextmanager
async def websocket_feed(stack: Stack, account: Account, query: dict[str, str] | None = None) -> AsyncIterator[Feed]:
    assert stack.gateway is not None
    signed = sign_request(account.api_secret, "GET", "/api/stream", query or {})
    url = stack.gateway.url.replace("http://", "ws://") + f"/api/stream?{signed}"
    feed = Feed()
    async with websockets.connect(url, additional_headers={"X-API-KEY": account.api_key}) as ws:

        async def read() -> None:
            async for frame in ws:
                feed.add(json.loads(frame))

        reader = asyncio.create_task(read())
        try:
            yield feed
        finally:
            reader.cancel()


@asynccontextmanager
async def amqp_feed(stack: Stack, account: Account) -> AsyncIterator[Feed]:
    """An outside subscriber: its own queue bound to `<ns>.events` with `<account>.*`."""
    feed = Feed()
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            EventTopology(stack.namespace).exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key=f"{account.name}.*")

        async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                feed.add(json.loads(message.body))

        await queue.consume(take)
        yield feed


def open_with_stop(stack: Stack, account: Account, stop: str = "90000") -> tuple[str, int]:
    stack.admin.set_mark("BTCUSDT", "95000")
    with stack.client(account) as c:
        reply = c.open_market("BTCUSDT", "BUY", "0.010", stop_loss=stop)
    assert reply.code == 200, reply.msg
    return reply.headers["x-command-id"], int(reply.data["stopLoss"]["orderId"])


async def expect_stop_fired(feed: Feed, command_id: str) -> None:
    """The stop's `protection` event names the command and leg, its triggered order's `order` event
    says FILLED, and the position is flat."""
    protection = await feed.wait_for(lambda e: e["type"] == "protection")
    assert (protection["data"]["commandId"], protection["data"]["leg"]) == (command_id, "SL")
    fill = protection["data"]["orderId"]
    filled = await feed.wait_for(lambda e: e["type"] == "order" and e["data"]["orderId"] == fill)
    await feed.wait_for(
        lambda e: e["type"] == "order" and e["data"]["orderId"] == fill and e["data"]["status"] == "FILLED"
    )
    assert filled["data"]["symbol"] == "BTCUSDT" and filled["data"]["side"] == "SELL"
    flat = await feed.wait_for(
        lambda e: e["type"] == "position" and e["data"]["symbol"] == "BTCUSDT" and e["data"]["quantity"] == 0
    )
    assert flat["data"]["direction"] == "NEUTRAL"


def gap_free(seqs: list[int]) -> bool:
    unique = sorted(set(seqs))
    return unique == list(range(unique[0], unique[-1] + 1)) if unique else True


async def test_a_fired_stop_reaches_a_websocket_client_and_an_amqp_subscriber(estack: Stack) -> None:
    account = estack.take_account()
    await asyncio.to_thread(estack.streamer_leading, account)
    async with websocket_feed(estack, account) as ws_feed, amqp_feed(estack, account) as bus_feed:
        command_id, _ = await asyncio.to_thread(open_with_stop, estack, account)
        await asyncio.to_thread(estack.admin.set_mark, "BTCUSDT", "89000")
        for feed in (ws_feed, bus_feed):
            await expect_stop_fired(feed, command_id)
            assert gap_free(feed.seqs()), feed.seqs()
    state = estack.state(account)
    assert all(a["algoStatus"] != "NEW" for a in state["algoOrders"])


async def test_a_fired_stop_cancels_its_take_profit(estack: Stack) -> None:
    """The TP of an entry whose SL filled would close the next position opened on that side: the
    streamer cancels it (Binance leaves a closePosition order open after the position is gone)."""
    account = estack.take_account()
    await asyncio.to_thread(estack.streamer_leading, account)
    estack.admin.set_mark("BTCUSDT", "95000")
    with estack.client(account) as c:
        reply = await asyncio.to_thread(
            c.open_market, "BTCUSDT", "BUY", "0.010", stop_loss="90000", take_profit="99000"
        )
    assert reply.code == 200, reply.msg
    take_profit = reply.data["takeProfit"]["orderId"]
    async with websocket_feed(estack, account) as feed:
        await asyncio.to_thread(estack.admin.set_mark, "BTCUSDT", "89000")
        cancelled = await feed.wait_for(
            lambda e: e["type"] == "order" and e["data"]["orderId"] == take_profit and e["data"]["status"] == "CANCELED"
        )
    assert cancelled["data"]["algo"] is True
    algos = {a["algoId"]: a["algoStatus"] for a in estack.state(account)["algoOrders"]}
    assert algos[take_profit] == "CANCELED" and list(algos.values()).count("NEW") == 0, algos


async def test_since_replays_what_a_client_missed(estack: Stack) -> None:
    account = estack.take_account()
    await asyncio.to_thread(estack.streamer_leading, account)
    async with websocket_feed(estack, account) as first:
        await asyncio.to_thread(open_with_stop, estack, account)
        seen = await first.wait_for(lambda e: e["type"] == "order")
    await asyncio.to_thread(estack.admin.set_mark, "BTCUSDT", "89000")  # while no client is connected
    async with websocket_feed(estack, account, {"since": str(seen["seq"])}) as again:
        await again.wait_for(lambda e: e["type"] == "protection")
        assert again.seqs()[0] == seen["seq"] + 1 and gap_free(again.seqs()), again.seqs()


async def test_topics_filter_and_bad_topics_are_refused(estack: Stack) -> None:
    account = estack.take_account()
    await asyncio.to_thread(estack.streamer_leading, account)
    async with websocket_feed(estack, account, {"topics": "position"}) as feed:
        await asyncio.to_thread(open_with_stop, estack, account)
        await feed.wait_for(lambda e: e["type"] == "position" and e["data"]["quantity"] > 0)
        await asyncio.sleep(0.3)
        assert {e["type"] for e in feed.events} == {"position"}
    async with websocket_feed(estack, account, {"topics": "orders"}) as bad:
        error = await bad.wait_for(lambda e: e.get("code") == 400)
        assert "topics" in error["msg"]


async def test_the_listen_key_expiring_loses_nothing(estack: Stack) -> None:
    account = estack.take_account()
    await asyncio.to_thread(estack.streamer_leading, account)
    async with websocket_feed(estack, account) as feed:
        command_id, _ = await asyncio.to_thread(open_with_stop, estack, account)
        await feed.wait_for(lambda e: e["type"] == "order")
        await asyncio.to_thread(estack.admin.stall, 3.0, None, account.exchange_key)
        await asyncio.to_thread(estack.admin.set_mark, "BTCUSDT", "89000")  # fired while stalled ...
        await asyncio.to_thread(estack.admin.expire_listen_key, account.exchange_key)  # ... then the key lapses
        await expect_stop_fired(feed, command_id)
        await feed.wait_for(
            lambda e: (
                e["type"] == "stream"
                and e["data"]["status"] == "resynced"
                and e["data"]["reason"] == "listenKey expired"
            )
        )
        assert gap_free(feed.seqs()), feed.seqs()


async def test_dropped_connections_lose_nothing(estack: Stack) -> None:
    account = estack.take_account()
    await asyncio.to_thread(estack.streamer_leading, account)
    async with websocket_feed(estack, account) as feed:
        command_id, _ = await asyncio.to_thread(open_with_stop, estack, account)
        await feed.wait_for(lambda e: e["type"] == "order")
        await asyncio.to_thread(estack.admin.stall, 3.0, None, account.exchange_key)
        await asyncio.to_thread(estack.admin.set_mark, "BTCUSDT", "89000")
        await asyncio.to_thread(estack.admin.drop_connections, account.exchange_key)
        await expect_stop_fired(feed, command_id)
        await feed.wait_for(lambda e: e["type"] == "stream" and e["data"]["status"] == "resynced")
        assert gap_free(feed.seqs()), feed.seqs()


async def test_a_standby_takes_over_within_5s_of_a_sigkill(make_stack: StackFactory) -> None:
    stack = make_stack(accounts=1, workers=1, gateway_up=True)
    account = stack.accounts[0]
    first = stack.spawn_streamer()
    await asyncio.to_thread(stack.streamer_leading, account)
    second = stack.spawn_streamer()
    await asyncio.sleep(1.0)
    async with websocket_feed(stack, account) as feed:
        command_id, _ = await asyncio.to_thread(open_with_stop, stack, account)
        await feed.wait_for(lambda e: e["type"] == "order")
        first.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await asyncio.to_thread(stack.admin.set_mark, "BTCUSDT", "89000")
        await feed.wait_for(lambda e: e["type"] == "stream" and e["data"]["reason"] == "takeover")
        took = time.monotonic() - killed
        await expect_stop_fired(feed, command_id)
        assert gap_free(feed.seqs()), feed.seqs()
    assert took < 5.0, took
    assert second.poll() is None


# --- the clients: aiqt watch, AsyncAiqtClient.events, the example AMQP subscriber --------------------


def _env(stack: Stack, account: Account) -> dict[str, str]:
    assert stack.gateway is not None
    return {
        **os.environ,
        "AIQT_URL": stack.gateway.url,
        "AIQT_API_KEY": account.api_key,
        "AIQT_API_SECRET": account.api_secret,
    }


async def test_aiqt_watch_and_the_client_iterator_replay_from_since(estack: Stack) -> None:
    account = estack.take_account()
    await asyncio.to_thread(estack.streamer_leading, account)
    async with websocket_feed(estack, account) as feed:
        command_id, _ = await asyncio.to_thread(open_with_stop, estack, account)
        await asyncio.to_thread(estack.admin.set_mark, "BTCUSDT", "89000")
        await expect_stop_fired(feed, command_id)
        count = max(feed.seqs())
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "aiqt.cli", "watch", "--since", "0", "--count", str(count), "--json"],
        env=_env(estack, account),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["seq"] for e in printed] == list(range(1, count + 1))
    assert any(e["type"] == "protection" and e["data"]["commandId"] == command_id for e in printed)
    human = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "aiqt.cli", "watch", "--since", "0", "--count", "1", "--topics", "protection"],
        env=_env(estack, account),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"SL of command {command_id} fired: BTCUSDT 0.010" in human.stdout, human.stdout + human.stderr
    seen: list[dict[str, Any]] = []
    async with estack.async_client(account) as client:
        async for event in client.events(["order", "protection"], since=0):
            seen.append(event)
            if event["type"] == "protection":
                break
    assert {e["type"] for e in seen} == {"order", "protection"}
    assert [e["seq"] for e in seen] == sorted({e["seq"] for e in seen})


async def test_the_example_amqp_subscriber(estack: Stack) -> None:
    account = estack.take_account()
    await asyncio.to_thread(estack.streamer_leading, account)
    queue = f"{estack.namespace}.subscriber-test.{account.name}"
    env = {
        **os.environ,
        "AIQT_AMQP_URL": estack.amqp_url,
        "AIQT_BUS_NAMESPACE": estack.namespace,
        "AIQT_ACCOUNT": account.name,
        "AIQT_QUEUE": queue,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / "amqp_subscriber.py"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    events: list[dict[str, Any]] = []
    try:
        await asyncio.sleep(1.5)  # it declares and binds its queue
        command_id, _ = await asyncio.to_thread(open_with_stop, estack, account)
        await asyncio.to_thread(estack.admin.set_mark, "BTCUSDT", "89000")
        assert proc.stdout is not None
        while not any(e["type"] == "protection" for e in events):
            line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
            assert line, "the subscriber stopped"
            events.append(json.loads(line))
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        connection = await aio_pika.connect(estack.amqp_url)
        async with connection:
            await (await connection.channel()).queue_delete(queue)
    assert proc.stderr is not None
    assert b"gap" not in await proc.stderr.read()
    assert [e["seq"] for e in events] == list(range(events[0]["seq"], events[0]["seq"] + len(events)))
    protection = next(e for e in events if e["type"] == "protection")
    assert protection["data"]["commandId"] == command_id
