"""Bus round trips without HTTP: AIQT's own `RpcClient` → a real worker (`system.ping`), next to a
bare aio-pika RPC loop with the same queue type and safety settings (durable queue of that type,
persistent messages, publisher confirms, `mandatory`, one exclusive callback queue, a server that
publishes its reply on a confirming channel and only then acks) — the ceiling AIQT's bus is measured
against.

The bare echo server runs as its own process: `python -m bench.busloop serve URL QUEUE QUEUE_TYPE`.
Queue type `transient` is the read lane's settings instead: a classic non-durable queue, transient
messages, no publisher confirms (client and server), no `mandatory`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

Call = Callable[[], Awaitable[Any]]


async def closed_loop(call: Call, *, concurrency: int, count: int, seconds: float) -> dict[str, Any]:
    """`concurrency` callers each calling back to back, until `count` calls or `seconds` have passed."""
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    stop_at = started + seconds
    remaining = count

    async def caller() -> None:
        nonlocal remaining, errors
        while remaining > 0 and time.perf_counter() < stop_at:
            remaining -= 1
            t0 = time.perf_counter()
            try:
                await call()
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed, "rate": len(latencies) / elapsed}


class BareRpc:
    """The textbook aio-pika RPC client, with the safety settings AIQT uses."""

    def __init__(self, url: str, queue: str, *, transient: bool = False) -> None:
        self.url = url
        self.queue = queue
        self.transient = transient
        self._futures: dict[str, asyncio.Future[bytes]] = {}

    async def start(self) -> None:
        self.connection = await aio_pika.connect(self.url)
        if self.transient:
            self.channel = await self.connection.channel(publisher_confirms=False)
        else:
            self.channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        self.reply = await self.channel.declare_queue(exclusive=True, auto_delete=True)
        await self.reply.consume(self._on_reply, no_ack=True)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        fut = self._futures.pop(message.correlation_id or "", None)
        if fut is not None and not fut.done():
            fut.set_result(message.body)

    async def call(self, body: bytes = b'{"type":"ping"}') -> bytes:
        cid = uuid.uuid4().hex
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._futures[cid] = fut
        await self.channel.default_exchange.publish(
            aio_pika.Message(
                body,
                correlation_id=cid,
                reply_to=self.reply.name,
                delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT
                if self.transient
                else aio_pika.DeliveryMode.PERSISTENT,
                content_type="application/json",
            ),
            routing_key=self.queue,
            mandatory=not self.transient,
        )
        return await asyncio.wait_for(fut, 10)

    async def close(self) -> None:
        await self.connection.close()


async def declare(url: str, queue: str, queue_type: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        if queue_type == "transient":
            await channel.declare_queue(queue, durable=False, auto_delete=False, arguments={"x-queue-type": "classic"})
            return
        args: dict[str, Any] = {"x-queue-type": "quorum"} if queue_type == "quorum" else {}
        await channel.declare_queue(queue, durable=True, arguments=args)


async def delete(url: str, queues: list[str], exchanges: list[str]) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for q in queues:
            await channel.queue_delete(q)
        for x in exchanges:
            await channel.exchange_delete(x)


async def serve(url: str, queue: str, queue_type: str, prefetch: int = 64) -> None:
    """The bare echo server: reply with the body, then ack."""
    await declare(url, queue, queue_type)
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=queue_type != "transient")
    await channel.set_qos(prefetch_count=prefetch)
    q = await channel.get_queue(queue, ensure=False)

    async def on_message(message: AbstractIncomingMessage) -> None:
        if message.reply_to:
            await channel.default_exchange.publish(
                aio_pika.Message(message.body, correlation_id=message.correlation_id, content_type="application/json"),
                routing_key=message.reply_to,
            )
        await message.ack()

    await q.consume(on_message)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "serve":
        import uvloop

        with contextlib.suppress(KeyboardInterrupt):
            uvloop.run(serve(sys.argv[2], sys.argv[3], sys.argv[4]))
    else:
        print("usage: python -m bench.busloop serve AMQP_URL QUEUE QUEUE_TYPE", file=sys.stderr)
        sys.exit(2)
