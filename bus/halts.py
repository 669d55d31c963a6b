"""The kill switch's state: which accounts are halted, kept in RabbitMQ itself.

A halt must hold for every worker and gateway, now and after any of them restarts, so it cannot
live in a process. It lives on the bus, which every worker already depends on:

    queue {ns}.halt.{account}   durable (quorum unless AIQT_QUEUE_TYPE=classic), at most 1 message
        absent or empty → the account trades normally
        1 message       → halted; the message is the halt's record (when, which command, flatten)

- halt:   declare the queue and publish the record into it (persistent, publisher-confirmed);
          `x-max-length: 1` with `x-overflow: drop-head` keeps only the latest record.
- resume: delete the queue.
- read:   declare the queue passively and read the message count from the broker's declare-ok; the
          broker's "no such queue" is a definite "not halted" (so accounts that were never halted
          cost the broker nothing).

Why a last-value queue read on every opening order, and not a stream that workers watch:

- No stale view, by construction. A watched copy is stale for as long as a notification takes to
  arrive, and silently stale when the watch breaks without the worker noticing; proving freshness
  would need a heartbeat protocol of its own. Reading the broker at the moment of the check costs
  one round trip (measured here: 0.3 ms p50 for a halted account, 1.2 ms for one never halted,
  whose "no such queue" answer costs the broker a channel), and only opening orders pay it: closes,
  cancels and reads never look.
- Fail closed for free: if the read fails or times out (broker gone, channel closed, arguments
  changed) the caller gets `HaltUnknown`, and the worker refuses the opening order.
- A stream would also need its whole history replayed to find each account's last state, and
  retention rules so that it does not grow forever; a queue of length one is its own compaction.
- Quorum queues replicate the flag like the command queue itself, so a cluster node loss keeps it.

A worker also reads every account's state when it starts, to log the halted ones; it does not keep
what it read.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiormq
from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import AMQPError
from aiormq.abc import ConfirmationFrameType
from pamqp.commands import Basic

from bus.connection import ClusterConnection
from bus.errors import BusError
from bus.topology import Topology
from schemas import codec

#: Seconds a read or write of the halt state may take before it counts as failed.
TIMEOUT = 3.0


class HaltUnknown(BusError):
    """The halt state could not be read or written; opening orders are refused (fail closed)."""


class Halts:
    """Reads and writes the halt flag of each account.

    Each operation takes a channel of its own from a small pool (the broker closes a channel to say
    "no such queue", which must not break a concurrent check on the same channel)."""

    def __init__(self, topology: Topology, *, timeout: float = TIMEOUT) -> None:
        self._connection: AbstractConnection | ClusterConnection | None = None
        self._topology = topology
        self._timeout = timeout
        self._pool: list[aiormq.abc.AbstractChannel] = []
        self._spare: asyncio.Task[None] | None = None

    def bind(self, connection: AbstractConnection | ClusterConnection) -> None:
        """Use this connection (a worker's, once it is connected; on a cluster, whichever node it is on
        after a failover). Until then every read fails closed."""
        self._connection = connection

    def _arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {"x-max-length": 1, "x-overflow": "drop-head"}
        if self._topology.queue_type == "quorum":
            args["x-queue-type"] = "quorum"
        return args

    async def _take(self) -> aiormq.abc.AbstractChannel:
        while self._pool:
            channel = self._pool.pop()
            if not channel.is_closed:
                return channel
        return await self._open()

    async def _open(self) -> aiormq.abc.AbstractChannel:
        # A plain (not robust) channel on the connection's current transport: the broker closes a
        # channel to answer "no such queue", and a robust channel would then reopen itself behind our
        # back, one leaked channel per check. After a reconnect the next check simply opens a new one.
        connection = self._connection
        if isinstance(connection, ClusterConnection):
            connection = connection.connection
        transport = getattr(connection, "transport", None)
        underlay = getattr(transport, "connection", None)
        if underlay is None:
            raise RuntimeError("not connected to the broker")
        opened: aiormq.abc.AbstractChannel = await underlay.channel(publisher_confirms=True)
        return opened

    async def _run(self, what: str, account: str, op: Any) -> Any:
        """Run `op(channel)` on a pooled channel within the timeout; any failure is HaltUnknown."""
        channel: aiormq.abc.AbstractChannel | None = None
        try:
            async with asyncio.timeout(self._timeout):
                channel = await self._take()
                result = await op(channel)
        except aiormq.exceptions.ChannelNotFoundEntity:
            await _close(channel)  # the broker closed it with its answer: no such queue
            self._open_spare()
            return None
        except (TimeoutError, AMQPError, aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            await _close(channel)
            raise HaltUnknown(f"could not {what} the halt state of account {account}: {exc!r}") from exc
        except BaseException:
            await _close(channel)
            raise
        self._pool.append(channel)
        return result

    def _open_spare(self) -> None:
        """Open the next check's channel off its path (a never-halted account costs one channel per check)."""
        if self._spare is None or self._spare.done():
            self._spare = asyncio.get_running_loop().create_task(self._add_spare())

    async def _add_spare(self) -> None:
        with contextlib.suppress(Exception):
            self._pool.append(await self._open())

    async def is_halted(self, account: str) -> bool:
        """Whether the account is halted, read from the broker now. Raises HaltUnknown."""
        name = self._topology.halt_queue(account)

        async def op(channel: aiormq.abc.AbstractChannel) -> int:
            ok = await channel.queue_declare(name, passive=True)
            return int(ok.message_count or 0)

        count: int | None = await self._run("read", account, op)
        return bool(count)

    async def halt(self, account: str, command_id: str, *, flatten: bool) -> None:
        """Record the halt (confirmed by the broker before this returns). Raises HaltUnknown."""
        name = self._topology.halt_queue(account)
        record = {"account": account, "commandId": command_id, "flatten": flatten, "time": int(time.time() * 1000)}

        async def op(channel: aiormq.abc.AbstractChannel) -> None:
            await channel.queue_declare(name, durable=True, arguments=self._arguments())
            confirm: ConfirmationFrameType | None = await channel.basic_publish(
                codec.dumps(record),
                routing_key=name,
                properties=aiormq.spec.Basic.Properties(delivery_mode=2, content_type="application/json"),
            )
            if not isinstance(confirm, Basic.Ack):
                raise RuntimeError(f"the broker did not confirm the halt ({confirm!r})")

        await self._run("write", account, op)

    async def resume(self, account: str) -> bool:
        """Lift the halt; returns whether the account was halted. Raises HaltUnknown."""
        was = await self.is_halted(account)
        name = self._topology.halt_queue(account)

        async def op(channel: aiormq.abc.AbstractChannel) -> None:
            await channel.queue_delete(name)

        await self._run("clear", account, op)
        return was

    async def close(self) -> None:
        if self._spare is not None:
            self._spare.cancel()
            with contextlib.suppress(BaseException):
                await self._spare
        pool, self._pool = self._pool, []
        for channel in pool:
            await _close(channel)


async def _close(channel: aiormq.abc.AbstractChannel | None) -> None:
    if channel is not None and not channel.is_closed:
        with contextlib.suppress(Exception):
            await channel.close()
