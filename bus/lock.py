"""A per-command mutex held in RabbitMQ itself.

Declaring an exclusive queue succeeds for one connection only; a second connection gets
RESOURCE_LOCKED. The broker deletes the queue when its owner's connection drops, so a worker that
dies releases the lock by dying. Two workers given the same command id (a client retry racing the
original, or an outside publisher sending twice) therefore never execute it at the same time, and
the second one then finds the first one's order at the exchange. No extra store is needed.

The lock lives on one connection; on a cluster that connection follows whichever node answers
(`ClusterConnection`). When the holder's connection drops (its node went away) the broker has
released the lock and is redelivering the command to someone else, so the holder must stop too:
the body run under `hold` is cancelled, as if this worker had crashed at that point — the case
the redelivered run already handles (it finds at the exchange whatever this run had sent). aiormq
happens to cancel a closed channel's delivery tasks as well; the lock does not rely on that.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection
from aio_pika.exceptions import AMQPError

from bus.connection import ClusterConnection
from bus.errors import BusUnavailable, CommandLocked
from bus.topology import Topology


class CommandLocks:
    def __init__(self, connection: AbstractConnection | ClusterConnection, topology: Topology) -> None:
        self._connection = connection
        self._topology = topology
        # An exclusive queue excludes other connections only: the connection that declared it may
        # declare it again. So two deliveries of one command id to the same worker are kept apart here.
        self._held: set[str] = set()
        # Channels are reused: opening and closing one per command cost two round trips to the broker.
        self._pool: list[AbstractChannel] = []
        self._releasing: set[asyncio.Task[None]] = set()

    async def _take_channel(self) -> AbstractChannel:
        while self._pool:
            channel = self._pool.pop()
            if not channel.is_closed:
                return channel
        connection = self._connection
        if isinstance(connection, ClusterConnection):
            current = connection.connection
            if current is None:
                raise BusUnavailable("not connected to RabbitMQ: cannot take the command lock")
            connection = current
        return await connection.channel(publisher_confirms=False)

    @asynccontextmanager
    async def hold(self, command_id: str, *, wait: float) -> AsyncIterator[None]:
        """Hold the lock of `command_id`, waiting up to `wait` seconds for another holder."""
        name = self._topology.lock_queue(command_id)
        give_up = time.monotonic() + wait
        while True:
            if name not in self._held:
                self._held.add(name)
                try:
                    channel = await self._take_channel()
                    # On the underlying channel: a robust channel would remember the queue and
                    # re-declare it after a reconnect, re-taking a lock nobody holds any more.
                    underlay = await channel.get_underlay_channel()
                    await underlay.queue_declare(name, exclusive=True, auto_delete=True)
                    break
                except aiormq.exceptions.ChannelLockedResource:
                    self._held.discard(name)
                    with contextlib.suppress(AMQPError, aiormq.exceptions.AMQPError, ConnectionError):
                        await channel.close()  # the broker closed it; don't pool it
                except BaseException:
                    self._held.discard(name)
                    raise
            if time.monotonic() >= give_up:
                raise CommandLocked(f"command {command_id} is being executed by another worker") from None
            await asyncio.sleep(0.05)
        # Fencing: if this channel dies (its connection, its node), the lock is gone; stop the body.
        holder = asyncio.current_task()
        running = True

        def lock_lost(*_: object) -> None:
            if running and holder is not None:
                holder.cancel(f"lost the lock of command {command_id} with the connection to RabbitMQ")

        channel.close_callbacks.add(lock_lost)
        try:
            yield
        finally:
            running = False
            channel.close_callbacks.discard(lock_lost)
            # Deleting the queue is off the reply's path; the in-process marker stays until the
            # broker confirms the delete, so a local waiter cannot re-declare it meanwhile.
            task = asyncio.get_running_loop().create_task(self._release(name, channel))
            self._releasing.add(task)
            task.add_done_callback(self._releasing.discard)

    async def _release(self, name: str, channel: AbstractChannel) -> None:
        try:
            # If the connection is gone, the broker has already released the lock with it.
            with contextlib.suppress(AMQPError, aiormq.exceptions.AMQPError, ConnectionError):
                if not channel.is_closed:
                    underlay = await channel.get_underlay_channel()
                    await underlay.queue_delete(name)
                    self._pool.append(channel)
        finally:
            self._held.discard(name)
