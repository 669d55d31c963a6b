"""The audit journal: every command and its outcome, appended to a RabbitMQ stream.

    worker ──(after each reply)──> {ns}.audit (fanout, durable) ──> stream {ns}.audit (x-queue-type=stream)
    aiqt audit ──(x-stream-offset = a timestamp)──> reads it back, from any time on

Why a stream: it is an append-only log that RabbitMQ keeps on disk and replicates across the
cluster like a quorum queue, that any number of readers can replay from an offset or a point in time
without consuming it away, and it needs nothing beside the broker AIQT already runs. Retention is a
RabbitMQ policy (`max-age`, `max-length-bytes`), set by the operator, not hard-coded here: changing
a queue's arguments later would make every redeclaration fail.

Why off the reply path: the caller waits for the reply, not for the journal. The consumer hands a
record to `AuditLog.record` (a non-blocking put) after publishing the reply; a background task turns
records into entries and publishes them with publisher confirms, many at a time, retrying through a
broker reconnect. Nothing is dropped silently: an entry that cannot be written after its retries, or
that finds the buffer full, is counted (the `on_failure` callback, a Prometheus counter in the
worker) and logged with its command id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractIncomingMessage

from bus.config import BusSettings
from bus.connection import ClusterConnection, connect_first
from bus.topology import Topology
from schemas import codec
from schemas.audit import IDEMPOTENCY_KEY_HEADER, KEY_ID_HEADER, AuditEntry
from schemas.enums import CommandType
from schemas.registry import COMMANDS, MUTATING_COMMANDS

log = logging.getLogger("aiqt.bus.audit")

#: Entries waiting to be written; beyond this a burst is counted as lost rather than growing memory.
MAX_PENDING = 50_000
#: Entries published together (their confirms awaited together).
BATCH = 200
#: Attempts per entry before it is counted as lost (a broker reconnect takes a few seconds).
ATTEMPTS = 6
RETRY_DELAY = 0.5


def audit_exchange(topology: Topology) -> str:
    return f"{topology.namespace}.audit"


def audit_stream(topology: Topology) -> str:
    return f"{topology.namespace}.audit"


async def declare_audit(channel: AbstractChannel, topology: Topology) -> AbstractExchange:
    """The audit exchange and its stream (idempotent)."""
    exchange = await channel.declare_exchange(audit_exchange(topology), aio_pika.ExchangeType.FANOUT, durable=True)
    queue = await channel.declare_queue(audit_stream(topology), durable=True, arguments={"x-queue-type": "stream"})
    await queue.bind(exchange, routing_key="")
    return exchange


@dataclass(frozen=True)
class AuditRecord:
    """What the consumer knows when it has replied; turned into an `AuditEntry` off the reply path."""

    command_id: str
    type: str
    account: str
    payload: dict[str, Any]
    headers: dict[str, Any]
    user_id: str | None
    code: int
    reply: bytes
    duration_ms: float
    queue_ms: float | None = None
    redelivered: bool = False
    dead_letter: str | None = None
    time_ms: int = field(default_factory=lambda: int(time.time() * 1000))


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _order_ids(data: Any, ids: list[int], client_ids: list[str]) -> None:
    if isinstance(data, dict):
        oid, cid = data.get("orderId"), data.get("clientOrderId")
        if isinstance(oid, int) and oid not in ids:
            ids.append(oid)
        if isinstance(cid, str) and cid not in client_ids:
            client_ids.append(cid)
        for value in data.values():
            _order_ids(value, ids, client_ids)
    elif isinstance(data, list):
        for value in data:
            _order_ids(value, ids, client_ids)


def _known_fields(command_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload's fields that its command has. An outside publisher may send anything at all (a typo, or a
    credential in a field no command has); the journal keeps only what a command can carry."""
    try:
        spec = COMMANDS[CommandType(command_type)]
    except ValueError:
        return {}
    return {name: value for name, value in payload.items() if name in spec.payload.model_fields}


def entry_of(record: AuditRecord, worker: str) -> AuditEntry:
    """The journal entry of a record: the reply's code and msg, and the orders a write touched."""
    try:
        reply = codec.loads(record.reply)
    except ValueError:
        reply = {}
    reply = reply if isinstance(reply, dict) else {}
    ids: list[int] = []
    client_ids: list[str] = []
    if record.type in MUTATING_COMMANDS:  # a read lists the account's orders; those are not its doing
        _order_ids(reply.get("data"), ids, client_ids)
    return AuditEntry(
        time=record.time_ms,
        commandId=record.command_id,
        type=record.type,
        account=record.account,
        keyId=_text(record.headers.get(KEY_ID_HEADER)),
        amqpUser=record.user_id,
        idempotencyKey=_text(record.headers.get(IDEMPOTENCY_KEY_HEADER)),
        payload=_known_fields(record.type, record.payload),
        code=record.code,
        msg=str(reply.get("msg", "")),
        orderIds=ids,
        clientOrderIds=client_ids,
        durationMs=round(record.duration_ms, 3),
        queueMs=None if record.queue_ms is None else round(record.queue_ms, 3),
        redelivered=record.redelivered,
        deadLetter=record.dead_letter,
        worker=worker,
    )


def encode(entry: AuditEntry) -> bytes:
    """An entry as JSON, amounts in the payload with their exact digits (as the command carried them)."""
    return codec.dumps(entry.model_dump())


class AuditLog:
    """Writes audit entries to the stream from a background task; see the module docstring."""

    def __init__(
        self,
        topology: Topology,
        *,
        worker: str = "",
        on_failure: Callable[[str], None] | None = None,
        on_written: Callable[[int], None] | None = None,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.topology = topology
        self.worker = worker
        self._on_failure = on_failure
        self._on_written = on_written
        self._pending: asyncio.Queue[AuditRecord] = asyncio.Queue(max_pending)
        self._connection: AbstractConnection | ClusterConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._channel: AbstractChannel | None = None
        self._task: asyncio.Task[None] | None = None
        #: Records of the batch being written that are not confirmed yet (counted as lost if cancelled).
        self._unwritten: list[AuditRecord] = []
        self._closed = False

    async def start(self, connection: AbstractConnection | ClusterConnection) -> None:
        """Start writing, on a channel of its own (a failed write can never close the channel commands are
        consumed on). A stream that cannot be declared now is retried with each batch."""
        self._connection = connection
        self._task = asyncio.create_task(self._run(), name="aiqt-audit")
        await self._declare()

    async def _declare(self) -> bool:
        connection = self._connection
        if isinstance(connection, ClusterConnection):  # whichever node it is on after a failover
            connection = connection.connection
        if connection is None:
            return False
        try:
            if self._channel is None or self._channel.is_closed:
                # mandatory publishes + on_return_raises: an entry the stream did not take is an error, not a drop
                self._channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            self._exchange = await declare_audit(self._channel, self.topology)
            return True
        except Exception as exc:
            log.error("cannot declare the audit stream %s: %r", audit_stream(self.topology), exc)
            self._channel = None
            return False

    def record(self, record: AuditRecord) -> None:
        """Queue a record; never blocks, never raises. `system.ping` (no account, no exchange) is not journaled."""
        if record.type == CommandType.SYSTEM_PING:
            return
        if self._closed:
            self._lost([record], "shut down before written")
            return
        try:
            self._pending.put_nowait(record)
        except asyncio.QueueFull:
            self._lost([record], "buffer full")

    async def close(self, timeout: float = 5.0) -> None:
        """Write what is pending (for at most `timeout` seconds), then stop; the rest is counted as lost."""
        self._closed = True
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pending.join(), timeout)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        left: list[AuditRecord] = []
        while not self._pending.empty():
            left.append(self._pending.get_nowait())
        if left:
            self._lost(left, "shut down before written")

    def _lost(self, records: list[AuditRecord], reason: str) -> None:
        for record in records:
            log.error("audit entry of command %s (%s) lost: %s", record.command_id, record.type, reason)
            if self._on_failure is not None:
                self._on_failure(reason)

    async def _run(self) -> None:
        while True:
            batch = [await self._pending.get()]
            while len(batch) < BATCH and not self._pending.empty():
                batch.append(self._pending.get_nowait())
            self._unwritten = list(batch)
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                self._lost(self._unwritten, "shut down before written")
                raise
            finally:
                self._unwritten = []
                for _ in batch:
                    self._pending.task_done()

    async def _write(self, records: list[AuditRecord]) -> None:
        bodies: list[tuple[AuditRecord, bytes]] = []
        for record in records:
            try:
                bodies.append((record, encode(entry_of(record, self.worker))))
            except Exception:
                log.exception("cannot build the audit entry of command %s", record.command_id)
                self._lost([record], "unserialisable")
        self._unwritten = [record for record, _ in bodies]
        for attempt in range(1, ATTEMPTS + 1):
            if self._exchange is None or (self._channel is not None and self._channel.is_closed):
                self._exchange = None  # the channel died (its node went away): open a new one
                await self._declare()
            results = await asyncio.gather(*(self._publish(record, body) for record, body in bodies))
            failed = [(record, body) for (record, body), error in zip(bodies, results, strict=True) if error]
            if self._on_written is not None and len(failed) < len(bodies):
                self._on_written(len(bodies) - len(failed))
            bodies = failed
            self._unwritten = [record for record, _ in bodies]
            if not failed:
                return
            error = next(e for e in results if e)
            log.warning("%d audit entries not written (attempt %d of %d): %s", len(failed), attempt, ATTEMPTS, error)
            if attempt < ATTEMPTS:
                await asyncio.sleep(RETRY_DELAY * 2 ** (attempt - 1))
        self._lost([record for record, _ in bodies], "not confirmed by the broker")

    async def _publish(self, record: AuditRecord, body: bytes) -> str | None:
        """None once the broker confirmed the entry, else what went wrong (a retry may then write it twice:
        entries are told apart by their commandId and time)."""
        if self._exchange is None:
            return "the audit stream is not declared"
        try:
            await self._exchange.publish(
                aio_pika.Message(
                    body,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=record.command_id,
                    timestamp=datetime.fromtimestamp(record.time_ms / 1000, UTC),
                    type=record.type,
                ),
                routing_key="",
                mandatory=True,
                timeout=10,
            )
            return None
        except Exception as exc:  # any failure is retried, then counted; none may reach the consumer
            return repr(exc)


# --- reading -----------------------------------------------------------------------------------


class NoJournal(LookupError):
    """The namespace has no audit stream (yet)."""


#: `aiqt audit` stops after the stream has been quiet this long (it has caught up).
IDLE_SECONDS = 1.0


async def read(
    connection: AbstractConnection,
    topology: Topology,
    *,
    since: datetime | str = "first",
    follow: bool = False,
    idle: float = IDLE_SECONDS,
) -> AsyncIterator[AuditEntry]:
    """The journal's entries from `since` (a time, or "first"), oldest first; with `follow`, forever.

    A stream delivers from the chunk holding the requested time, so entries a little older may come
    first: they are skipped here."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=500)  # a stream consumer must set a prefetch
    try:  # passive: a reader needs only read permission on the stream, and never creates one
        queue = await channel.get_queue(audit_stream(topology), ensure=True)
    except aiormq.exceptions.ChannelNotFoundEntity as exc:
        raise NoJournal(f"no audit journal {audit_stream(topology)!r}: no worker has written one yet") from exc
    inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    tag = await queue.consume(inbox.put, no_ack=False, arguments={"x-stream-offset": since})
    floor = int(since.timestamp() * 1000) if isinstance(since, datetime) else None
    try:
        while True:
            try:
                message = await (inbox.get() if follow else asyncio.wait_for(inbox.get(), idle))
            except TimeoutError:
                return
            await message.ack()
            try:
                entry = AuditEntry.model_validate(codec.loads(message.body))
            except ValueError:
                offset = (message.headers or {}).get("x-stream-offset")
                log.warning("skipping an unreadable audit entry (offset %s)", offset)
                continue
            if floor is None or entry.time >= floor:
                yield entry
    finally:
        with contextlib.suppress(Exception):
            await queue.cancel(tag)
        await channel.close()


async def journal(
    settings: BusSettings, *, since: datetime | str = "first", follow: bool = False, idle: float = IDLE_SECONDS
) -> AsyncIterator[AuditEntry]:
    """`read` on a connection of its own to the broker in `settings` (what `aiqt audit` uses)."""
    connection, _ = await connect_first(settings.amqp_url)  # raises BusUnavailable; a cluster: any node
    async with connection:
        topology = Topology(settings.bus_namespace, settings.queue_type)
        async for entry in read(connection, topology, since=since, follow=follow, idle=idle):
            yield entry
