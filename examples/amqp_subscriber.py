"""Subscribe to AIQT's events straight from RabbitMQ with aio-pika: fills, fired stops, positions.

An outside subscriber needs nothing of AIQT but the contract (docs/events.md, or the AsyncAPI document
at /contract/asyncapi.json, channel `events`): this file imports only aio-pika and the standard library.

    pip install aio-pika
    AIQT_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ AIQT_ACCOUNT=main python examples/amqp_subscriber.py

It binds a durable queue of its own (`AIQT_QUEUE`, default `<namespace>.subscriber.<account>`) to the
topic exchange `<namespace>.events` with `<account>.*`, so events that arrive while it is away wait for
it. It prints one JSON line per event; a gap in `seq` is reported (say, the queue was deleted) and a
repeat (delivery is at least once) is dropped. With `AIQT_MAX_EVENTS` it exits after that many.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from decimal import Decimal

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

AMQP_URL = os.environ.get("AIQT_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
NAMESPACE = os.environ.get("AIQT_BUS_NAMESPACE", "aiqt")
ACCOUNT = os.environ.get("AIQT_ACCOUNT", "main")
QUEUE = os.environ.get("AIQT_QUEUE", f"{NAMESPACE}.subscriber.{ACCOUNT}")
MAX_EVENTS = int(os.environ.get("AIQT_MAX_EVENTS", "0"))  # 0: run until interrupted


async def main() -> int:
    connection = await aio_pika.connect_robust(AMQP_URL.split(",")[0])
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        exchange = await channel.declare_exchange(f"{NAMESPACE}.events", aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(QUEUE, durable=True)
        await queue.bind(exchange, routing_key=f"{ACCOUNT}.*")
        last_seq = 0
        seen = 0
        done = asyncio.Event()

        async def on_event(message: AbstractIncomingMessage) -> None:
            nonlocal last_seq, seen
            async with message.process():
                # Money arrives as JSON numbers (or strings) with exact digits: read them as Decimal.
                event = json.loads(message.body, parse_float=Decimal)
                seq = event["seq"]
                if seq <= last_seq:
                    return  # a repeat
                if last_seq and seq != last_seq + 1:
                    print(json.dumps({"gap": [last_seq + 1, seq - 1]}), file=sys.stderr, flush=True)
                last_seq = seq
                print(json.dumps(event, default=str), flush=True)
                seen += 1
                if MAX_EVENTS and seen >= MAX_EVENTS:
                    done.set()

        await queue.consume(on_event)
        await done.wait()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        sys.exit(0)
