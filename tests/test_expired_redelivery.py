"""A command that expired in the queue is never executed late — except that an entry a crashed
attempt already filled still gets its stop loss (never a naked position)."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

import aio_pika
import pytest

from bus.topology import declare_all
from harness.stack import Account, Stack, StackFactory
from schemas import codec
from worker.ids import ENTRY, client_order_id

pytestmark = pytest.mark.integration


@pytest.fixture
def idle_stack(make_stack: StackFactory) -> Stack:
    """A stack with no worker yet, so a test can stage a command before anyone consumes it."""
    return make_stack(accounts=2, worker={"recv_window": 1000})


async def _stage_redelivered(stack: Stack, body: bytes, command_id: str, reply_to: str) -> None:
    """Publish an already-expired command and take it once without acking, as a worker that
    crashed would: RabbitMQ then redelivers it with the redelivered flag set."""
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange, queue = await declare_all(channel, stack.topology)
        await exchange.publish(
            aio_pika.Message(
                body,
                message_id=command_id,
                correlation_id=command_id,
                reply_to=reply_to,
                headers={"x-deadline": int(time.time() * 1000) - 1},
            ),
            routing_key="order.open_market",
        )
        for _ in range(50):
            message = await queue.get(fail=False, no_ack=False)
            if message is not None:
                await message.nack(requeue=True)
                return
            await asyncio.sleep(0.02)
    raise AssertionError("could not stage the command")


async def _run(stack: Stack, account: Account, with_entry: bool) -> dict[str, object]:
    command_id = uuid.uuid4().hex
    body = codec.dumps(
        {
            "type": "order.open_market",
            "account": account.name,
            "payload": {"symbol": "BTCUSDT", "side": "BUY", "quantity": Decimal("0.002"), "stopLoss": Decimal("80000")},
        }
    )
    stack.admin.set_mark("BTCUSDT", "95000")
    if with_entry:  # the crashed attempt had placed the entry, not yet its stop loss
        placed = stack.fapi(
            account,
            "POST",
            "/fapi/v1/order",
            symbol="BTCUSDT",
            side="BUY",
            type="MARKET",
            quantity="0.002",
            newClientOrderId=client_order_id(account.name, command_id, ENTRY),
        )
        assert "orderId" in placed, placed
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        replies = await channel.declare_queue(exclusive=True)
        await _stage_redelivered(stack, body, command_id, replies.name)
        stack.start_worker()
        async with replies.iterator(timeout=15) as it:
            async for message in it:
                reply: dict[str, object] = codec.loads(message.body)
                return reply
    raise AssertionError("no reply")


async def test_expired_entry_that_filled_still_gets_its_stop_loss(idle_stack: Stack) -> None:
    account = idle_stack.take_account()
    reply = await _run(idle_stack, account, with_entry=True)
    assert reply["code"] == 200
    state = idle_stack.state(account)
    assert len(state["orders"]) == 1
    assert [(a["orderType"], Decimal(a["triggerPrice"])) for a in state["algoOrders"]] == [
        ("STOP_MARKET", Decimal(80000))
    ]


async def test_expired_entry_never_sent_is_not_executed(idle_stack: Stack) -> None:
    account = idle_stack.take_account()
    reply = await _run(idle_stack, account, with_entry=False)
    assert reply["code"] == 504 and "not executed" in str(reply["msg"])
    state = idle_stack.state(account)
    assert state["orders"] == [] and state["algoOrders"] == []
