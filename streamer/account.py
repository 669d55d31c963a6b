"""One account's user-data stream: lead, listen, translate, publish — and resync after every gap.

    standby ──(leader queue declared?)──> leader: load seq ─> listenKey ─> connect ─> resync ─> live
                      ^                        │                 ^                         │
                      └── connection lost ─────┘                 └── expired / dropped / 23 h ┘

The WebSocket is opened before the REST snapshot is taken, so an event that happens during the
resync is read afterwards from the socket rather than lost between the two. Every event gets the
next `seq` of the account, is published with a confirm, and only then is the account's state (seq,
time) saved: a streamer killed in between leaves a state that a new leader resyncs from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast

import websockets
from aio_pika.abc import AbstractChannel, AbstractConnection

from bus.connection import ClusterConnection
from bus.events import (
    AccountState,
    EventPublisher,
    EventTopology,
    account_key,
    load_state,
    read_journal,
    resign,
    try_lead,
)
from schemas import codec
from schemas import events as ev
from streamer import metrics, resync
from streamer.settings import StreamerSettings
from streamer.translate import Draft, protection_leg, translate
from worker.binance.endpoints import Exchange
from worker.binance.errors import ExchangeError

log = logging.getLogger("aiqt.streamer")

#: Reconnect backoff after the stream or the exchange failed.
BACKOFF_START, BACKOFF_MAX = 0.2, 10.0
#: How far before the saved state's time a new leader looks in the journal for later events.
JOURNAL_LOOKBACK_MS = 60_000
#: Binance's "This listenKey does not exist."
UNKNOWN_LISTEN_KEY = -1125
#: How long a protection event waits for the order index to name its command.
INDEX_WAIT = 1.0
#: Frames published as one batch at most.
MAX_BATCH = 500


class AccountStream:
    """Holds one account's user-data stream while this process leads the account."""

    def __init__(
        self,
        name: str,
        exchange: Exchange,
        settings: StreamerSettings,
        bus: ClusterConnection,
        lookup: Callable[[str], str | None],
    ) -> None:
        self.name = name
        self.exchange = exchange
        self.settings = settings
        self.bus = bus
        self.topology = EventTopology(settings.bus_namespace)
        self.lookup = lookup
        self.leading = asyncio.Event()
        self.state = AccountState()
        self.symbols: set[str] = set()
        self._publisher: EventPublisher | None = None
        self._expired = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Forever: wait to lead, then stream until the lead is lost."""
        while True:
            connection = self.bus.connection
            if connection is None:
                await asyncio.sleep(self.settings.leader_retry)
                continue
            try:
                leader = await try_lead(connection, self.topology, self.name)
            except Exception as exc:
                log.warning("%s: cannot ask for the lead: %s", self.name, exc)
                leader = None
            if leader is None:
                await asyncio.sleep(self.settings.leader_retry)
                continue
            try:
                await self._lead(connection, leader)
            except asyncio.CancelledError:
                await resign(leader, self.topology, self.name)
                raise
            except Exception as exc:
                log.warning("%s: stream stopped (%s: %s); standing by", self.name, type(exc).__name__, exc)
            finally:
                self.leading.clear()
                metrics.LEADING.labels(account=self.name).set(0)
                if self._publisher is not None:
                    await self._publisher.close()
                    self._publisher = None
            await resign(leader, self.topology, self.name)

    async def _lead(self, connection: AbstractConnection, leader: AbstractChannel) -> None:
        self.state = await self._continue_from(connection)
        self._publisher = await EventPublisher.open(connection, self.topology)
        # Declares the state queue now, so that no later save has to wait for it (and fall out of order).
        await self._publisher.save_state(self.name, self.state)
        self.leading.set()
        metrics.LEADING.labels(account=self.name).set(1)
        log.info("%s: leading (last seq %d)", self.name, self.state.seq)
        reason, backoff = "takeover" if self.state.seq else "connected", BACKOFF_START
        while not leader.is_closed and not connection.is_closed:
            try:
                reason = await self._listen(reason)
                backoff = BACKOFF_START
            except (OSError, websockets.exceptions.WebSocketException, ExchangeError, TimeoutError) as exc:
                log.warning("%s: stream failed (%s); reconnecting in %.1fs", self.name, exc, backoff)
                await asyncio.sleep(backoff)
                backoff, reason = min(backoff * 2, BACKOFF_MAX), "reconnected"

    async def _continue_from(self, connection: AbstractConnection) -> AccountState:
        """The account's last seq: the saved state, unless the journal shows a later event — a leader
        killed between publishing an event and saving its state — whose seq must not be used again."""
        saved = await load_state(connection, self.topology, self.name)
        if not saved.seq:
            return saved
        since = min(saved.time, int(time.time() * 1000)) - JOURNAL_LOOKBACK_MS
        events = await read_journal(connection, self.topology, since_ms=since, until_idle=0.3)
        seqs = [e["seq"] for e in events if e.get("account") == self.name and isinstance(e.get("seq"), int)]
        if seqs and max(seqs) > saved.seq:
            log.warning(
                "%s: the journal holds seq %d beyond the saved %d; continuing after it", self.name, max(seqs), saved.seq
            )
            times = [e["time"] for e in events if e.get("account") == self.name and isinstance(e.get("time"), int)]
            return AccountState(max(seqs), max([saved.time, *times]))
        return saved

    async def _listen(self, reason: str) -> str:
        """One stream connection, from resync to its end; returns why it ended."""
        key = await self.exchange.start_listen_key()
        url = f"{self.settings.ws_base()}/private/ws?listenKey={key}"
        async with websockets.connect(url, open_timeout=10, ping_interval=60, max_queue=None) as ws:
            await self._resync(reason)
            self._expired = False
            keepalive = asyncio.create_task(self._keep_alive(ws))
            try:
                return await self._consume(ws)
            finally:
                keepalive.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await keepalive

    async def _consume(self, ws: websockets.ClientConnection) -> str:
        """Publish the stream's events until it ends. The frames that arrived while a batch was being
        published go out together as the next batch (one round of confirms), so a burst, or a broker
        slower for a while, is caught up with instead of queueing behind one round trip per frame."""
        deadline = time.monotonic() + self.settings.stream_rotate_after
        frames: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        reader = asyncio.create_task(_read_frames(ws, frames))
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return "rotated"
                try:
                    batch = [await asyncio.wait_for(frames.get(), remaining)]
                except TimeoutError:
                    return "rotated"
                while not frames.empty() and len(batch) < MAX_BATCH:
                    batch.append(frames.get_nowait())
                drafts: list[Draft] = []
                for frame in batch:
                    payload = None if frame is None else json.loads(frame)
                    if frame is None or (isinstance(payload, dict) and payload.get("e") == "listenKeyExpired"):
                        await self.publish_all(drafts)
                        if frame is None and reader.done() and not reader.cancelled() and reader.exception():
                            raise cast(BaseException, reader.exception())
                        return "listenKey expired" if self._expired or frame is not None else "reconnected"
                    if isinstance(payload, dict):
                        drafts += translate(payload, self.lookup)
                await self.publish_all(drafts)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _keep_alive(self, ws: websockets.ClientConnection) -> None:
        """Extend the listenKey; if the exchange no longer knows it (-1125), the stream may still be up
        but will carry nothing (Binance does not always say `listenKeyExpired`): drop it and start over."""
        while True:
            await asyncio.sleep(self.settings.listen_key_keepalive)
            try:
                await self.exchange.keep_listen_key_alive()
            except ExchangeError as exc:
                log.warning("%s: listenKey keepalive failed: %s", self.name, exc)
                if exc.code == UNKNOWN_LISTEN_KEY:
                    self._expired = True
                    await ws.close()
                    return

    async def _resync(self, reason: str) -> None:
        gap_from = self.state.time
        now = int(time.time() * 1000)
        status = "connected" if reason == "connected" else "reconnected"
        await self.publish_all([(ev.EventType.STREAM, ev.StreamEvent(status=status, reason=reason), now)])
        since = max(gap_from - self.settings.resync_margin_ms, 0) if gap_from else 0
        drafts, symbols = await resync.snapshot(
            self.exchange, since_ms=since, now_ms=now, known_symbols=self.symbols, lookup=self.lookup
        )
        self.symbols |= symbols
        await self.publish_all(drafts)
        done = ev.StreamEvent(
            status="resynced", reason=reason, gapFromTime=gap_from or None, gapToTime=now, republished=len(drafts)
        )
        await self.publish_all([(ev.EventType.STREAM, done, int(time.time() * 1000))])
        metrics.RESYNCS.labels(reason=reason).inc()
        log.info("%s: resynced after %s (%d events)", self.name, reason, len(drafts))

    async def publish_all(self, drafts: list[Draft]) -> None:
        """Publish each event, then the state after it — handed to the channel in that order, without
        waiting for one confirm before sending the next (RabbitMQ handles a channel's publishes in
        order, so a streamer killed mid-way leaves a prefix: at most the last event out without its
        state, as when each confirm was awaited in turn); then await every confirm. Awaiting them one
        by one cost two broker round trips per event and capped a stream at ~100 events/s."""
        publisher = self._publisher
        if publisher is None:
            raise ConnectionError("not leading")
        state = self.state
        sent: list[asyncio.Future[None]] = []
        try:
            for kind, data, at in drafts:
                if isinstance(data, ev.ProtectionEvent) and data.commandId is None:
                    data = await self._name_command(data)
                symbol = getattr(data, "symbol", None)
                if symbol:
                    self.symbols.add(symbol)
                seq = state.seq + 1
                event = {"type": kind.value, "account": self.name, "seq": seq, "time": at, "data": data.model_dump()}
                state = AccountState(seq, max(at, state.time))
                # Tasks start in creation order and queue on the channel's lock in that order.
                sent.append(
                    asyncio.ensure_future(publisher.publish(account_key(self.name, kind.value), codec.dumps(event)))
                )
                sent.append(asyncio.ensure_future(publisher.save_state(self.name, state)))
            await asyncio.gather(*sent)
        except BaseException:
            for future in sent:
                future.cancel()
            raise
        self.state = state
        for kind, data, _ in drafts:
            metrics.EVENTS.labels(type=kind.value).inc()
            if isinstance(data, ev.ProtectionEvent):
                self._spawn(self._cancel_sibling(data.clientOrderId))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cancel_sibling(self, fired: str) -> None:
        """One leg of an AIQT entry filled and closed the position: its sibling (a take profit after
        the stop loss fired, or the reverse) protects nothing any more, and being a closePosition order
        it would close whatever position is opened on that side next. Binance does not cancel it, so
        the leader does, at once (once per fired leg: a repeat finds it no longer NEW)."""
        leg = protection_leg(fired)
        if leg is None:
            return
        sibling = fired[: -len(leg)] + ("TP" if leg == "SL" else "SL")
        try:
            algo = await self.exchange.find_algo_order(sibling)
            if algo is not None and algo.get("algoStatus") == "NEW":
                await self.exchange.cancel_algo_order(int(algo["algoId"]))
                log.info("%s: %s filled; cancelled its sibling %s", self.name, fired, sibling)
        except ExchangeError as exc:
            log.warning("%s: could not cancel %s after %s filled: %s", self.name, sibling, fired, exc)

    async def _name_command(self, data: ev.ProtectionEvent) -> ev.ProtectionEvent:
        """The index entry is written before the leg is sent, but read here a moment later."""
        if protection_leg(data.clientOrderId) is None:
            return data
        give_up = time.monotonic() + INDEX_WAIT
        while time.monotonic() < give_up:
            command = self.lookup(data.clientOrderId)
            if command is not None:
                return data.model_copy(update={"commandId": command})
            await asyncio.sleep(0.02)
        return data


async def _read_frames(ws: websockets.ClientConnection, frames: asyncio.Queue[str | bytes | None]) -> None:
    """Every frame of the connection into `frames`, then None when it closes or fails (then with the
    task's exception set: the consumer raises it)."""
    try:
        while True:
            frames.put_nowait(await ws.recv())
    except websockets.exceptions.ConnectionClosed:
        pass
    finally:
        frames.put_nowait(None)


def describe(stream: AccountStream) -> dict[str, Any]:
    return {"account": stream.name, "leading": stream.leading.is_set(), "seq": stream.state.seq}
