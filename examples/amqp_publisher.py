"""Publish AIQT commands straight to RabbitMQ with aio-pika, and read their replies.

An outside publisher needs nothing of AIQT but the contract (docs/amqp.md, or the AsyncAPI
document at /contract/asyncapi.json): this file imports only aio-pika and the standard library.

    pip install aio-pika
    AIQT_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ AIQT_ACCOUNT=main python examples/amqp_publisher.py

It prints one JSON line per reply and exits 0 when every reply was the one expected.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from decimal import Decimal
from typing import Any

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

AMQP_URL = os.environ.get("AIQT_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
NAMESPACE = os.environ.get("AIQT_BUS_NAMESPACE", "aiqt")  # exchange "{namespace}.commands"
ACCOUNT = os.environ.get("AIQT_ACCOUNT", "main")  # an account the workers hold credentials for
SYMBOL = os.environ.get("AIQT_SYMBOL", "BTCUSDT")
TIMEOUT = 10.0  # seconds we wait for a reply; after that the command must not run


class Bus:
    """Publishes commands and matches replies by correlation_id on one exclusive reply queue."""

    def __init__(self, exchange: AbstractExchange, reply_queue: str) -> None:
        self.exchange = exchange
        self.reply_queue = reply_queue
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self.pending.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            # Money arrives as JSON numbers with exact digits: read them as Decimal, never float.
            future.set_result(json.loads(message.body, parse_float=Decimal))

    async def call(self, command: str, payload: dict[str, Any], *, command_id: str | None = None) -> dict[str, Any]:
        """Send one command and wait for its {code, msg, data} reply.

        `command_id` is the idempotency key: sending a command that changes state again with the
        same id returns the first outcome and never acts twice.
        """
        command_id = command_id or uuid.uuid4().hex
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[correlation_id] = future
        body = json.dumps({"type": command, "account": ACCOUNT, "payload": payload}).encode()
        message = aio_pika.Message(
            body,
            message_id=command_id,
            correlation_id=correlation_id,
            reply_to=self.reply_queue,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            expiration=TIMEOUT,  # RabbitMQ drops it if no worker took it in time
            headers={"x-deadline": int((time.time() + TIMEOUT) * 1000)},  # and no worker runs it late
        )
        # mandatory + publisher confirms: an unroutable or refused command raises here, so we know
        # it was not accepted (nothing will run).
        await self.exchange.publish(message, routing_key=command, mandatory=True)
        try:
            return await asyncio.wait_for(future, TIMEOUT)
        finally:
            self.pending.pop(correlation_id, None)


def show(name: str, reply: dict[str, Any]) -> None:
    print(json.dumps({"step": name, **reply}, default=lambda d: format(d, "f")), flush=True)


async def main() -> int:
    connection = await aio_pika.connect_robust(AMQP_URL, client_properties={"connection_name": "example publisher"})
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        # AIQT's workers and gateway declare the topology; a publisher only looks it up.
        exchange = await channel.get_exchange(f"{NAMESPACE}.commands", ensure=True)
        # Our own reply queue; exclusive, so it goes when we do. The "{namespace}.reply." prefix lets a
        # RabbitMQ user be given exactly the permissions it needs (docs/amqp.md, "Permissions").
        replies = await channel.declare_queue(f"{NAMESPACE}.reply.{uuid.uuid4().hex}", exclusive=True)
        bus = Bus(exchange, replies.name)
        await replies.consume(bus.on_reply, no_ack=True)

        ok = True
        pong = await bus.call("system.ping", {})
        show("ping", pong)
        ok &= pong["code"] == 200

        summary = await bus.call("account.summary", {"symbol": SYMBOL})
        show("account.summary", summary)
        ok &= summary["code"] == 200

        # Open a position; then "retry" with the same command id, as after a lost reply.
        command_id = f"example-{uuid.uuid4().hex}"
        order = {"symbol": SYMBOL, "side": "BUY", "quantity": "0.002"}
        opened = await bus.call("order.open_market", order, command_id=command_id)
        show("order.open_market", opened)
        again = await bus.call("order.open_market", order, command_id=command_id)
        show("order.open_market (same command id)", again)
        ok &= opened["code"] == 200 and again["data"] == opened["data"]  # the same order, not a second one

        # Errors come back in the same envelope: here AIQT's own validation (400).
        refused = await bus.call("position.leverage", {"symbol": SYMBOL, "leverage": 500})
        show("position.leverage (invalid)", refused)
        ok &= (refused["code"], refused["msg"]) == (400, "Invalid leverage (1-125 allowed)")

        closed = await bus.call("order.close_market", {"symbol": SYMBOL, "positionSide": "LONG"})
        show("order.close_market", closed)
        ok &= closed["code"] == 200
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
