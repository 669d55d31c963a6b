"""The consumer loop of a worker.

For each command: decode it; refuse poison (reply with an error if it has `reply_to`, then
dead-letter it with the reason); drop a command whose deadline has passed without running it
(dead-letter with the reason, and an error reply in case someone still listens); otherwise run the
handler, publish its reply, and only then ack. A worker killed before the ack leaves the command
unacked, RabbitMQ redelivers it, and the handler's own idempotency makes the second run safe.

The connection is a `ClusterConnection`: when its node goes away the consumer re-opens its channel
on the next node of `AIQT_AMQP_URL` and consumes again. Deliveries of the lost channel can no longer
be acked; RabbitMQ redelivers them (to this worker or another), which is the crash case above.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractConnection, AbstractExchange, AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from pamqp.commands import Basic
from pydantic import ValidationError

from bus.audit import AuditLog, AuditRecord
from bus.config import BusSettings
from bus.connection import ClusterConnection
from bus.topology import Topology, declare_all
from schemas import codec, errors
from schemas.commands import CommandMessage
from schemas.enums import CommandType

log = logging.getLogger("aiqt.bus.consumer")


@dataclass(frozen=True)
class Delivery:
    """One command as the handler sees it."""

    command_id: str
    type: CommandType
    account: str
    payload: dict[str, Any]
    deadline_ms: int | None
    redelivered: bool
    received_at: float  # perf_counter at receipt
    queue_wait_ms: float | None  # publish → receipt, from the publisher's timestamp header
    #: Past its deadline but redelivered: an earlier run may have done part of it. The handler may
    #: only finish what that run started (e.g. the stop loss of an entry that filled), never start anew.
    expired: bool = False
    #: Epoch ms after which no publisher accepts this command id again (header `x-replayable-until`,
    #: set by the gateway for signature-derived keys); None: it may come back at any time (bus/marker.py).
    replayable_until: int | None = None
    #: Header `x-signature-key`: the command id may be one the gateway derived from a signature, so
    #: every run of it leaves a start marker (bus/marker.py), whether or not it may use the proof.
    signature_key: bool = False


@dataclass(frozen=True)
class HandlerResult:
    """The handler's reply: the envelope (already JSON) and its code."""

    code: int
    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    #: Set when the command was not executed and belongs in the dead-letter queue, with this reason.
    dead_letter: str | None = None


Handler = Callable[[Delivery], Awaitable[HandlerResult]]


def envelope_bytes(code: int, msg: str, data: Any = None) -> bytes:
    return codec.dumps({"code": code, "msg": msg, "data": data})


class Poison(ValueError):
    """A message no handler can run."""


def decode(message: AbstractIncomingMessage) -> Delivery:
    """Read a command message, or raise Poison saying what is wrong with it."""
    if not message.message_id:
        raise Poison("message_id (the command id) is missing")
    if len(message.message_id) > 128:
        raise Poison("message_id is longer than 128 characters")
    try:
        raw = codec.loads(message.body)
    except ValueError as exc:
        raise Poison(f"body is not JSON: {exc}") from exc
    if isinstance(raw, dict) and "type" not in raw and message.routing_key:
        raw = {**raw, "type": message.routing_key}
    try:
        command = CommandMessage.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise Poison(f"not a valid command: {problems}") from exc
    headers = message.headers or {}
    deadline = headers.get("x-deadline")
    sent = headers.get("x-sent-ms")
    replayable = headers.get("x-replayable-until")
    now_ms = time.time() * 1000
    return Delivery(
        command_id=message.message_id,
        type=command.type,
        account=command.account,
        payload=command.payload,
        deadline_ms=int(deadline) if isinstance(deadline, int | float) else None,
        redelivered=bool(message.redelivered),
        received_at=time.perf_counter(),
        queue_wait_ms=now_ms - float(sent) if isinstance(sent, int | float) else None,
        replayable_until=int(replayable) if isinstance(replayable, int) and not isinstance(replayable, bool) else None,
        signature_key=bool(headers.get("x-signature-key")) or replayable is not None,
    )


class CommandConsumer:
    """Consumes `{ns}.commands` with a bounded number of commands in flight."""

    def __init__(
        self,
        settings: BusSettings,
        handler: Handler,
        *,
        prefetch: int = 64,
        name: str = "aiqt-worker",
        on_dead_letter: Callable[[str], None] | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.topology = Topology(settings.bus_namespace, settings.queue_type)
        self._handler = handler
        self._prefetch = prefetch
        self._on_dead_letter = on_dead_letter
        #: The connection to whichever node answers; also what the worker's command locks use.
        self.bus = ClusterConnection(settings.amqp_url, name=name, on_connect=self._setup)
        self._audit = audit
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._dead: AbstractExchange | None = None
        self._reads_channel: aio_pika.abc.AbstractChannel | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def connection(self) -> AbstractConnection | None:
        """The current connection (None while failing over)."""
        return self.bus.connection

    @property
    def connected(self) -> bool:
        return self.connection is not None

    async def start(self, *, timeout: float = 10.0) -> None:
        """Connect and consume; BusUnavailable if no node answers within `timeout`."""
        await self.bus.start(timeout=timeout)

    async def _setup(self, connection: AbstractConnection) -> None:
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=self._prefetch)
        _, queue = await declare_all(channel, self.topology)
        self._dead = await channel.get_exchange(self.topology.dead_exchange, ensure=False)
        self._channel = channel
        await queue.consume(self._on_message, no_ack=False)
        channel.close_callbacks.add(lambda *_: self.bus.lost(connection))
        # The read lane: its own channel, without publisher confirms, for its replies too.
        reads_channel = await connection.channel(publisher_confirms=False)
        await reads_channel.set_qos(prefetch_count=self._prefetch)
        reads = await reads_channel.get_queue(self.topology.reads_queue, ensure=False)
        self._reads_channel = reads_channel
        await reads.consume(self._on_read, no_ack=False)
        reads_channel.close_callbacks.add(lambda *_: self.bus.lost(connection))

    async def close(self) -> None:
        await self.bus.close()
        self._channel = None

    async def _on_read(self, message: AbstractIncomingMessage) -> None:
        await self._on_message(message, self._reads_channel)

    async def _on_message(
        self, message: AbstractIncomingMessage, reply_channel: aio_pika.abc.AbstractChannel | None = None
    ) -> None:
        try:
            delivery = decode(message)
        except Poison as exc:
            log.warning("poison command %s: %s", message.message_id, exc)
            body = envelope_bytes(400, f"Malformed command: {exc}")
            await self._reply(message, errors.BAD_REQUEST, body, None, reply_channel)
            await self._dead_letter(message, f"malformed: {exc}")
            await self._ack(message)
            self._journal_poison(message, body, f"malformed: {exc}")
            return

        expired = delivery.deadline_ms is not None and time.time() * 1000 > delivery.deadline_ms
        if expired and delivery.redelivered:
            delivery = replace(delivery, expired=True)
        elif expired:
            reason = "deadline exceeded before execution; not executed"
            log.warning("dropping expired command %s (%s)", delivery.command_id, delivery.type)
            body = envelope_bytes(504, f"Command {delivery.command_id} expired in the queue; it was not executed")
            await self._reply(message, errors.TIMEOUT, body, None, reply_channel)
            await self._dead_letter(message, reason)
            await self._ack(message)
            self._journal(message, delivery, errors.TIMEOUT, body, reason)
            return

        result = await self._handler(delivery)
        await self._reply(message, result.code, result.body, result.headers, reply_channel)
        if result.dead_letter is not None:
            await self._dead_letter(message, result.dead_letter)
        await self._ack(message)
        self._journal(message, delivery, result.code, result.body, result.dead_letter)

    async def _ack(self, message: AbstractIncomingMessage) -> None:
        try:
            await message.ack()
        except (AMQPError, aiormq.exceptions.AMQPError, ChannelInvalidStateError, ConnectionError) as exc:
            # Its channel died with its node: RabbitMQ has already put it back for redelivery.
            log.info("command %s not acked (%s); RabbitMQ redelivers it", message.message_id, type(exc).__name__)

    def _journal(
        self, message: AbstractIncomingMessage, delivery: Delivery, code: int, body: bytes, dead_letter: str | None
    ) -> None:
        """Hand the outcome to the audit log (after the reply: the caller never waits for the journal)."""
        if self._audit is None:
            return
        self._audit.record(
            AuditRecord(
                command_id=delivery.command_id,
                type=delivery.type.value,
                account=delivery.account,
                payload=delivery.payload,
                headers=dict(message.headers or {}),
                user_id=message.user_id,
                code=code,
                reply=body,
                duration_ms=(time.perf_counter() - delivery.received_at) * 1000,
                queue_ms=delivery.queue_wait_ms,
                redelivered=delivery.redelivered,
                dead_letter=dead_letter,
            )
        )

    def _journal_poison(self, message: AbstractIncomingMessage, body: bytes, reason: str) -> None:
        """A message no handler could read: journaled by what the broker knows (never its body, which may be
        anything at all)."""
        if self._audit is None:
            return
        self._audit.record(
            AuditRecord(
                command_id=message.message_id or "",
                type=message.routing_key or "",
                account="",
                payload={},
                headers=dict(message.headers or {}),
                user_id=message.user_id,
                code=errors.BAD_REQUEST,
                reply=body,
                duration_ms=0.0,
                redelivered=bool(message.redelivered),
                dead_letter=reason,
            )
        )

    async def _reply(
        self,
        message: AbstractIncomingMessage,
        code: int,
        body: bytes,
        headers: dict[str, Any] | None = None,
        channel: aio_pika.abc.AbstractChannel | None = None,
    ) -> None:
        channel = channel or self._channel
        if not message.reply_to or channel is None:
            return
        # The properties built directly and published on the underlying channel, as the RPC client
        # does: an aio_pika.Message costs more CPU than the rest of a ping's reply (profiled).
        underlay = await channel.get_underlay_channel()
        await underlay.basic_publish(
            body,
            exchange="",
            routing_key=message.reply_to,
            properties=Basic.Properties(
                content_type="application/json",
                correlation_id=message.correlation_id,
                headers={"x-code": code, **(headers or {})},
            ),
            mandatory=False,  # a caller that has gone away is not an error
        )

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str) -> None:
        if self._dead is None:
            return
        headers = dict(message.headers or {})
        headers["x-aiqt-reason"] = reason
        headers["x-aiqt-routing-key"] = message.routing_key or ""
        await self._dead.publish(
            aio_pika.Message(
                message.body,
                message_id=message.message_id,
                correlation_id=message.correlation_id,
                content_type=message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers=headers,
            ),
            routing_key="",
        )
        if self._on_dead_letter is not None:
            self._on_dead_letter(reason.split(":", 1)[0])
