"""A proven first run sends its order with no look-up before it (bus/marker.py); replays through
two gateways and redeliveries still place exactly one order, counted at the paper exchange by
client id; a client-chosen Idempotency-Key never takes the fast path."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aio_pika
import httpx
import pytest

from aiqt.client import sign_request
from bus.topology import declare_all
from gateway.app import create_app
from gateway.idempotency import command_id
from harness.servers import LoopThread, ThreadedUvicorn
from harness.stack import Account, Stack, StackFactory
from schemas import codec
from worker.service import Worker

OPEN = "/api/order/open/market"


class Recorder:
    """Every request the worker sends to the exchange, in order."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()

    async def __call__(self, request: httpx.Request) -> None:
        with self._lock:
            self.requests.append((request.method, request.url.path, dict(request.url.params)))

    def since(self, mark: int) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _ in self.requests[mark:]]


@pytest.fixture
def rig(make_stack: StackFactory) -> Iterator[tuple[Stack, Recorder, list[ThreadedUvicorn]]]:
    stack = make_stack(accounts=2, worker={"recv_window": 1000})
    recorder = Recorder()
    loop = LoopThread()

    async def make() -> Worker:
        http = httpx.AsyncClient(event_hooks={"request": [recorder]}, timeout=5.0)
        worker = Worker(stack.worker_settings(), http=http)
        await worker.start()
        return worker

    worker = loop.run(make())
    gateways = [ThreadedUvicorn(create_app(stack.gateway_settings())).start() for _ in range(2)]
    yield stack, recorder, gateways
    for g in gateways:
        g.stop()
    loop.run(worker.close())
    loop.stop()


def signed_open(account: Account, body: dict[str, Any]) -> tuple[str, bytes]:
    """One signed request (query string and body), to be sent verbatim, any number of times."""
    raw = codec.dumps(body)
    return sign_request(account.api_secret, "POST", OPEN, None, raw), raw


def send(gateway: ThreadedUvicorn, account: Account, query: str, raw: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}{OPEN}?{query}",
        content=raw,
        headers={"X-API-KEY": account.api_key, "Content-Type": "application/json", **headers},
        timeout=15,
    )


def orders_with(stack: Stack, account: Account, client_id: str) -> list[dict[str, Any]]:
    return [o for o in stack.state(account)["orders"] if o["clientOrderId"] == client_id]


def _warm(gateway: ThreadedUvicorn, account: Account) -> None:
    """One order first, so that the account's position mode is known (cached 30 s by the worker)."""
    query, raw = signed_open(account, {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.002"})
    reply = send(gateway, account, query, raw)
    assert reply.status_code == 200, reply.text


def test_the_first_run_sends_its_order_first(rig: tuple[Stack, Recorder, list[ThreadedUvicorn]]) -> None:
    stack, recorder, (gw, _) = rig
    account = stack.take_account()
    _warm(gw, account)
    mark = len(recorder.requests)
    query, raw = signed_open(
        account,
        {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.002", "stopLoss": "60000", "takeProfit": "200000"},
    )
    reply = send(gw, account, query, raw)
    assert reply.status_code == 200, reply.text
    sent = recorder.since(mark)
    assert sent[0] == ("POST", "/fapi/v1/order"), sent  # no exchange call before the order
    if [call for call in sent if call[1] == "/fapi/v1/order"] == [("POST", "/fapi/v1/order")]:
        # The order's answer came back (on a loaded machine it may not within the rig's 1 s recvWindow:
        # then place_once looks it up, and the legs after it, as it must): nothing before the legs either.
        assert [call for call in sent if call[1] == "/fapi/v1/algoOrder"] == [("POST", "/fapi/v1/algoOrder")] * 2
    assert sent.count(("POST", "/fapi/v1/algoOrder")) == 2
    client_id = reply.json()["data"]["market"]["clientOrderId"]
    assert len(orders_with(stack, account, client_id)) == 1


def test_replays_through_two_gateways_place_one_order(rig: tuple[Stack, Recorder, list[ThreadedUvicorn]]) -> None:
    stack, recorder, (gw1, gw2) = rig
    account = stack.take_account()
    _warm(gw1, account)
    query, raw = signed_open(account, {"symbol": "ETHUSDT", "side": "BUY", "quantity": "0.05"})
    mark = len(recorder.requests)
    first = send(gw1, account, query, raw)
    replay = send(gw2, account, query, raw)  # another gateway: its idempotency cache knows nothing
    assert first.status_code == replay.status_code == 200, replay.text
    assert first.json()["data"]["market"]["orderId"] == replay.json()["data"]["market"]["orderId"]
    sent = recorder.since(mark)
    assert sent.count(("POST", "/fapi/v1/order")) == 1
    assert sent[0] == ("POST", "/fapi/v1/order")  # the first run: no look-up
    assert ("GET", "/fapi/v1/order") in sent  # the replay: the marker said "started", so it looked
    assert len(orders_with(stack, account, first.json()["data"]["market"]["clientOrderId"])) == 1

    # Both at once, through both gateways: still one order.
    query, raw = signed_open(account, {"symbol": "ETHUSDT", "side": "SELL", "quantity": "0.05"})
    with_threads: list[httpx.Response] = []
    threads = [
        threading.Thread(target=lambda g=g: with_threads.append(send(g, account, query, raw))) for g in (gw1, gw2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [r for r in with_threads if r.status_code == 200]
    assert ok and {r.json()["data"]["market"]["orderId"] for r in ok} == {ok[0].json()["data"]["market"]["orderId"]}
    assert all(r.status_code in (200, 409) for r in with_threads)
    assert len(orders_with(stack, account, ok[0].json()["data"]["market"]["clientOrderId"])) == 1


def test_a_client_key_always_looks_first(rig: tuple[Stack, Recorder, list[ThreadedUvicorn]]) -> None:
    stack, recorder, (gw, _) = rig
    account = stack.take_account()
    _warm(gw, account)
    mark = len(recorder.requests)
    query, raw = signed_open(account, {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.002"})
    key = uuid.uuid4().hex
    reply = send(gw, account, query, raw, **{"Idempotency-Key": key})
    assert reply.status_code == 200
    assert recorder.since(mark)[:2] == [("GET", "/fapi/v1/order"), ("POST", "/fapi/v1/order")]
    # Its command id can never be a signature-derived one: no marker was made (and paid for).
    assert not asyncio.run(_marker_exists(stack, f"{account.name}.{command_id(account.api_key, key)}"))


def test_a_client_sending_back_the_derived_key_finds_the_order(
    rig: tuple[Stack, Recorder, list[ThreadedUvicorn]],
) -> None:
    stack, recorder, (gw1, gw2) = rig
    account = stack.take_account()
    _warm(gw1, account)
    query, raw = signed_open(account, {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.002"})
    first = send(gw1, account, query, raw)
    assert first.status_code == 200
    derived = first.headers["idempotency-key"]
    assert derived.startswith("sig-")
    # Re-signed later (a new timestamp), with the key the reply named, through the other gateway.
    mark = len(recorder.requests)
    query2, raw2 = signed_open(account, {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.002"})
    again = send(gw2, account, query2, raw2, **{"Idempotency-Key": derived})
    assert again.status_code == 200
    assert again.json()["data"]["market"]["orderId"] == first.json()["data"]["market"]["orderId"]
    assert ("POST", "/fapi/v1/order") not in recorder.since(mark)
    assert len(orders_with(stack, account, first.json()["data"]["market"]["clientOrderId"])) == 1
    assert asyncio.run(_marker_exists(stack, f"{account.name}.{command_id(account.api_key, derived)}"))


async def _marker_exists(stack: Stack, marked_id: str) -> bool:
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        try:
            await channel.declare_queue(f"{stack.namespace}.first.{marked_id}", passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return False
        return True


async def _publish(stack: Stack, body: bytes, cid: str, replayable_until: int) -> dict[str, Any]:
    """Publish a command straight on the bus as a gateway would (header and all); its reply."""
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange, _ = await declare_all(channel, stack.topology)
        replies = await channel.declare_queue(exclusive=True, auto_delete=True)
        await exchange.publish(
            aio_pika.Message(
                body,
                message_id=cid,
                correlation_id=cid,
                reply_to=replies.name,
                headers={"x-deadline": int(time.time() * 1000) + 20_000, "x-replayable-until": replayable_until},
            ),
            routing_key="order.open_market",
        )
        return await _first_reply(replies)


async def _first_reply(replies: aio_pika.abc.AbstractQueue) -> dict[str, Any]:
    for _ in range(500):
        message = await replies.get(fail=False, no_ack=True)
        if message is not None:
            reply: dict[str, Any] = codec.loads(message.body)
            return reply
        await asyncio.sleep(0.02)
    raise AssertionError("no reply")


def test_the_same_command_on_the_bus_after_the_first_run_finds_its_order(
    rig: tuple[Stack, Recorder, list[ThreadedUvicorn]],
) -> None:
    stack, recorder, (gw, _) = rig
    account = stack.take_account()
    _warm(gw, account)
    query, raw = signed_open(account, {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.004"})
    first = send(gw, account, query, raw)
    assert first.status_code == 200
    # The same command id again, straight on the bus (an outside publisher, or a gateway whose reply
    # was lost): not redelivered, inside its replay window — only the marker says it ran before.
    signature = query.rsplit("signature=", 1)[1]
    cid = command_id(account.api_key, f"sig-{signature[:40]}")
    body = codec.dumps({"type": "order.open_market", "account": account.name, "payload": codec.loads(raw)})
    mark = len(recorder.requests)
    again = asyncio.run(_publish(stack, body, cid, int(time.time() * 1000) + 5000))
    assert again["code"] == 200 and again["data"]["market"]["orderId"] == first.json()["data"]["market"]["orderId"]
    assert ("POST", "/fapi/v1/order") not in recorder.since(mark)
    assert len(orders_with(stack, account, first.json()["data"]["market"]["clientOrderId"])) == 1
