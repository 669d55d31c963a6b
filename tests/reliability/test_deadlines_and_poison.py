"""Deadlines (issue item 6) and poison messages (item 7), end to end with real workers.

A command that waited in the queue past its deadline is dropped with a recorded reason and never
executed late; malformed or unknown commands from an outside AMQP publisher get an error reply when
they have reply_to, land in the dead-letter queue with the reason, and the worker keeps serving."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid
from decimal import Decimal
from typing import Any

import aio_pika
import pytest

from harness.holdings import orders_of, position
from harness.stack import Account, Stack, StackFactory
from schemas import codec
from tests.reliability.helpers import fault, wait_for_workers

pytestmark = pytest.mark.integration

D = Decimal


# --- helpers ---------------------------------------------------------------------------------------


async def _publish(
    stack: Stack,
    body: bytes,
    routing_key: str,
    *,
    reply: bool = True,
    timeout: float = 10.0,
    **props: Any,
) -> dict[str, Any] | None:
    """Publish like an outside AMQP publisher; return the decoded reply (None without reply_to)."""
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        replies = await channel.declare_queue(exclusive=True)
        exchange = await channel.get_exchange(stack.topology.commands_exchange)
        if reply:
            props = {"reply_to": replies.name, "correlation_id": uuid.uuid4().hex, **props}
        await exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **props),
            routing_key=routing_key,
            mandatory=True,
        )
        if not reply:
            return None
        async with replies.iterator(timeout=timeout) as it:
            async for message in it:
                assert message.correlation_id == props["correlation_id"]
                decoded: dict[str, Any] = codec.loads(message.body)
                return decoded
    raise AssertionError("no reply")


def _command(account: Account | str, type_: str, payload: Any) -> bytes:
    name = account if isinstance(account, str) else account.name
    return codec.dumps({"type": type_, "account": name, "payload": payload})


class DeadLetters:
    """Drains a stack's dead-letter queue, keyed by message id."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.seen: dict[str, aio_pika.abc.AbstractIncomingMessage] = {}

    async def wait_for(self, message_id: str, timeout: float = 8.0) -> dict[str, Any]:
        connection = await aio_pika.connect(self.stack.amqp_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(self.stack.topology.dead_queue)
            end = time.monotonic() + timeout
            while message_id not in self.seen and time.monotonic() < end:
                message = await queue.get(fail=False)
                if message is None:
                    await asyncio.sleep(0.05)
                    continue
                await message.ack()
                self.seen[message.message_id or ""] = message
        assert message_id in self.seen, f"{message_id} not dead-lettered"
        return dict(self.seen[message_id].headers or {})


def reason(headers: dict[str, Any]) -> str:
    """The recorded reason: the worker's x-aiqt-reason, or the broker's own x-death reason."""
    if "x-aiqt-reason" in headers:
        return str(headers["x-aiqt-reason"])
    deaths = headers.get("x-death") or [{}]
    return f"broker: {deaths[0].get('reason')}"


# --- 6. deadlines ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def idle_stack(make_module_stack: StackFactory) -> Stack:
    """A gateway that gives up after 1.5 s, and at first no worker: commands back up in the queue."""
    return make_module_stack(
        accounts=4,
        gateway_up=True,
        worker={"recv_window": 3000, "exchange_timeout": 5.0},
        gateway={"request_timeout": 1.5},
    )


async def test_backed_up_market_order_is_never_executed_late(idle_stack: Stack) -> None:
    account = idle_stack.take_account()
    async with idle_stack.async_client(account) as c:
        reply = await c.open_market("BTCUSDT", "BUY", "0.002")
    assert (reply.status, reply.code) == (504, 504)
    cid = reply.headers["x-command-id"]
    late_id = uuid.uuid4().hex
    await asyncio.sleep(0.5)
    await asyncio.to_thread(idle_stack.start_worker, worker_concurrency=1)
    try:
        # An outside publisher's command already past its deadline (an x-deadline, no AMQP expiration).
        late = await _publish(
            idle_stack,
            _command(account, "order.open_market", {"symbol": "ETHUSDT", "side": "BUY", "quantity": "0.1"}),
            "order.open_market",
            message_id=late_id,
            headers={"x-deadline": int(time.time() * 1000) - 1},
        )
        assert late is not None and late["code"] == 504 and "not executed" in late["msg"]
        dead = DeadLetters(idle_stack)
        assert "deadline" in reason(await dead.wait_for(late_id))
        why = reason(await dead.wait_for(cid))  # the gateway's command, expired while no worker ran
        assert why == "broker: expired" or "deadline" in why, why
        await asyncio.sleep(0.5)
        state = await asyncio.to_thread(idle_stack.state, account)
        assert state["orders"] == []
        assert position(state, "BTCUSDT") == 0 and position(state, "ETHUSDT") == 0
    finally:
        await asyncio.to_thread(idle_stack.stop_workers)


def test_order_queued_behind_a_slow_one_expires_instead_of_firing(idle_stack: Stack) -> None:
    """One worker, one command at a time: the first order hangs at the exchange for 2.5 s; the second
    (deadline 1.5 s) waits behind it and must be dropped, not fired late."""
    account = idle_stack.take_account()
    idle_stack.start_worker(worker_concurrency=1)
    try:
        wait_for_workers(idle_stack, 1)
        fault(idle_stack, account, "delay", method="POST", path="/fapi/v1/order", delayMs=2500)
        with idle_stack.client(account) as c, concurrent.futures.ThreadPoolExecutor(2) as pool:
            slow = pool.submit(c.open_market, "BTCUSDT", "BUY", "0.002")
            time.sleep(0.3)
            queued = pool.submit(c.open_market, "BTCUSDT", "BUY", "0.007")
            slow_reply, queued_reply = slow.result(10), queued.result(10)
        assert slow_reply.code == 504 and queued_reply.code == 504
        time.sleep(2.0)  # the slow one has completed; the queued one's turn has come and gone
        state = idle_stack.state(account)
        assert len(orders_of(state, account, slow_reply.headers["x-command-id"])) == 1
        assert orders_of(state, account, queued_reply.headers["x-command-id"]) == []
        assert position(state, "BTCUSDT") == D("0.002")
        dead = DeadLetters(idle_stack)
        headers = asyncio.run(dead.wait_for(queued_reply.headers["x-command-id"]))
        assert reason(headers) == "broker: expired" or "deadline" in reason(headers)
    finally:
        idle_stack.stop_workers()


# --- 7. poison -------------------------------------------------------------------------------------


@pytest.fixture
def dead(rstack: Stack) -> DeadLetters:
    return DeadLetters(rstack)


async def test_poison_from_an_outside_publisher(rstack: Stack, racct: Account, dead: DeadLetters) -> None:
    cases: dict[str, tuple[bytes, str, str]] = {
        "not json": (b"\xff{nope", "order.open_market", "malformed: body is not JSON"),
        "a list": (b"[1, 2]", "order.open_market", "malformed: not a valid command"),
        "unknown type": (_command(racct, "order.teleport", {}), "order.open_market", "malformed: not a valid command"),
        "payload not an object": (
            _command(racct, "order.open_market", [1]),
            "order.open_market",
            "malformed: not a valid command",
        ),
    }
    for name, (body, key, why) in cases.items():
        mid = uuid.uuid4().hex
        reply = await _publish(rstack, body, key, message_id=mid, content_type="application/json")
        assert reply is not None and reply["code"] == 400 and reply["data"] is None, name
        assert reply["msg"].startswith("Malformed command"), (name, reply)
        assert reason(await dead.wait_for(mid)).startswith(why), name
    # no message id, and no reply_to: nobody to answer, still dead-lettered with the reason
    await _publish(rstack, b"{nope", "order.open_market", reply=False, correlation_id="no-reply")
    no_reply_id = uuid.uuid4().hex
    await _publish(rstack, b"[]", "order.open_market", reply=False, message_id=no_reply_id)
    assert reason(await dead.wait_for(no_reply_id)).startswith("malformed")

    # a well-formed command whose payload is invalid: an error naming the field, nothing placed
    invalid = await _publish(
        rstack,
        _command(racct, "order.open_market", {"symbol": "BTCUSDT", "side": "BUY", "quantity": "abc"}),
        "order.open_market",
        message_id=uuid.uuid4().hex,
    )
    assert invalid is not None and invalid["code"] == 400 and "quantity" in invalid["msg"], invalid
    unknown_account = await _publish(
        rstack,
        _command("nobody", "order.open_market", {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.002"}),
        "order.open_market",
        message_id=uuid.uuid4().hex,
    )
    assert unknown_account is not None and unknown_account["code"] == 400

    # and the workers keep serving: a real order goes through
    ok = await _publish(
        rstack,
        _command(racct, "order.open_market", {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.002"}),
        "order.open_market",
        message_id=uuid.uuid4().hex,
        headers={"x-deadline": int(time.time() * 1000) + 20_000},
    )
    assert ok is not None and ok["code"] == 200, ok
    state = await asyncio.to_thread(rstack.state, racct)
    assert len(state["orders"]) == 1 and position(state, "BTCUSDT") == D("0.002")
