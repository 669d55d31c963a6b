"""Proof that a run of an order command is the first, without an extra store: a marker in RabbitMQ.

Since issue 9 a write's command id is not proof of anything: a write without Idempotency-Key takes
its key from its request signature, so a verbatim replay (through any gateway) is the same command,
and clients send their own keys, which they may reuse at any time. So before an order, a worker
looks the order up at the exchange by its client id — one exchange round trip before every order.

The marker lets a worker skip that look-up when it can prove no run of this command id ever got as
far as sending:

- Every run of an order-placing command whose id may be signature-derived (header `x-signature-key`,
  which the gateway sets for every key starting `sig-`, derived or sent back by a client that learnt
  it from a reply), under the command's lock (bus/lock.py), declares the
  durable classic queue `{ns}.first.<command id>` (with `x-expires`, at most one message, and
  `x-overflow: reject-publish`) and publishes one persistent message into it, confirmed, *before*
  anything is sent to the exchange. The broker acks the first such message and nacks every later
  one (the queue is full): a nack means an earlier run may have sent orders. One round trip: the
  declare goes without waiting for its answer (`nowait`), and the publish follows it on the same
  channel, so the broker routes it after the queue exists.
- An ack proves "no earlier run" only while every earlier run's marker must still exist.
  `x-expires` is `MARKER_TTL_MS`; a run may rely on an ack only when every possible run of
  its command id starts within that time of the first: its command must say until when it can be
  replayed at all (`x-replayable-until`, which the gateway sets for signature-derived keys: the
  signed timestamp + its recvWindow, after which every gateway refuses the request as stale), and
  that time plus `REPLAY_MARGIN_MS` (any gateway's request timeout) must not have passed. A
  client-chosen Idempotency-Key can come back any day, so its commands never qualify; and as their
  command ids can never equal a signature-derived one (another prefix), they need no marker either.
  A command id published both with and without these headers would break the proof: an outside
  publisher must set them always or never for one id.
- Any doubt — a redelivery, an expired command, an error from the broker — means the look-up.

The worker decides whether the command qualifies (`worker.service`); this module only keeps the
marker.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel
from aio_pika.exceptions import AMQPError
from aiormq.abc import ArgumentsType

from bus.connection import ClusterConnection
from bus.errors import BusUnavailable
from bus.topology import Topology

#: The longest a signed request stays replayable (the gateway's maximum recvWindow, 60 s, plus its
#: 1 s tolerance for clocks ahead).
MAX_REPLAYABLE_MS = 61_000
#: The longest any gateway waits for a reply (its request timeout), plus clock skew between hosts.
REPLAY_MARGIN_MS = 120_000
#: How long a marker outlives its last use: every run of one command id starts within this of the first.
MARKER_TTL_MS = MAX_REPLAYABLE_MS + REPLAY_MARGIN_MS + 30_000
MARKER_ARGUMENTS: ArgumentsType = {
    "x-expires": MARKER_TTL_MS,
    "x-queue-type": "classic",
    "x-max-length": 1,
    "x-overflow": "reject-publish",
}


@dataclass(frozen=True)
class Mark:
    """Whether an earlier run of this command id got as far as its marker."""

    earlier_run: bool


class StartMarkers:
    def __init__(self, connection: ClusterConnection, topology: Topology) -> None:
        self._connection = connection
        self._topology = topology
        self._pool: list[AbstractChannel] = []

    def queue(self, command_id: str) -> str:
        return f"{self._topology.namespace}.first.{command_id}"

    async def _take(self) -> AbstractChannel:
        while self._pool:
            channel = self._pool.pop()
            if not channel.is_closed:
                return channel
        current = self._connection.connection
        if current is None:
            raise BusUnavailable("not connected to RabbitMQ: cannot mark the command started")
        return await current.channel(publisher_confirms=True)

    async def mark(self, command_id: str) -> Mark:
        """Record that a run of `command_id` starts now; say whether one had before. Raises
        BusUnavailable if the mark cannot be made: then nothing may be sent."""
        name = self.queue(command_id)
        channel = await self._take()
        try:
            underlay = await channel.get_underlay_channel()
            await underlay.queue_declare(name, durable=True, nowait=True, arguments=MARKER_ARGUMENTS)
            try:
                confirm = await underlay.basic_publish(
                    b"started",
                    exchange="",
                    routing_key=name,
                    properties=aiormq.spec.Basic.Properties(delivery_mode=int(aio_pika.DeliveryMode.PERSISTENT)),
                    mandatory=True,
                    timeout=5.0,
                )
            except aiormq.exceptions.DeliveryError as exc:
                if not isinstance(exc.frame, aiormq.spec.Basic.Nack):
                    raise
                confirm = exc.frame
            if isinstance(confirm, aiormq.spec.Basic.Ack):
                earlier = False
            elif isinstance(confirm, aiormq.spec.Basic.Nack):
                earlier = True  # the queue is full: it holds an earlier run's marker
            else:  # returned: the queue is not there (its declare failed)
                raise BusUnavailable(f"the start marker of {command_id} could not be made")
        except (AMQPError, aiormq.exceptions.AMQPError, ConnectionError, TimeoutError) as exc:
            with contextlib.suppress(AMQPError, aiormq.exceptions.AMQPError, ConnectionError):
                await channel.close()
            raise BusUnavailable(f"cannot mark command {command_id} started: {exc!r}") from exc
        self._pool.append(channel)
        return Mark(earlier_run=earlier)
