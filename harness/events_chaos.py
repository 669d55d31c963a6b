"""Events-out chaos run: does every fill and every fired stop reach a WebSocket client, whatever breaks?

    .venv/bin/python -m bench.events_chaos                        # 500 orders, seed 1
    .venv/bin/python -m bench.events_chaos --orders 40 --kills 2 --drops 2 --seed 3

The event path has many places to lose something: the exchange's user-data stream (dropped, its
listenKey expired), the streamer (SIGKILLed between reading a frame and publishing it; a standby
taking over from a saved seq), RabbitMQ, the gateway's replay buffer, and the client's own
connection. The promise (issue 12) is that none of them loses a fill or a fired stop: the streamer
resyncs from REST after every gap and numbers events gap-free per account, and a client that comes
back with `since=<last seq>` gets what it missed. This run checks the promise from the outside.

It starts, on a bus namespace and paper accounts of its own: a worker and a gateway (in this
process), and two `aiqt streamer` OS processes — one leads every account, the other stands by. Then:

- N `open_market` commands with a stop loss and a take profit go through the REST client, spread
  over a few accounts and symbols (one direction per account and symbol);
- the marks walk at random (mean-reverting, within a few percent), so stops and take profits fire —
  and closePosition legs left over from earlier positions fire or expire too;
- at random moments (seeded, spread over the run): the leading streamer is SIGKILLed (and a new
  standby started, as a supervisor would), an account's exchange connection is dropped
  (`drop_connections`), its listenKey is expired, and a WebSocket client drops its own connection;
- one WebSocket client per account stays connected to the gateway from seq 1 on, reconnecting with
  `since=<last seq>` whenever its connection ends.

At the end it reads what the exchange holds (`PaperAdmin.state`) and checks, per account: every order
with executedQty > 0 has an `order` event with its id and final status; every SL/TP algo order that
fired (FINISHED/TRIGGERED) has a `protection` event with its triggered order's id, its leg and the
command id the open call answered with (X-Command-Id); and the client's seqs have no hole. It waits up
to `--settle` seconds for stragglers, prints a JSON summary and exits 1 if anything was missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from aiqt.client import AsyncAiqtClient
from bus.connection import connect_first
from bus.events import EventTopology, read_journal
from harness.event_feed import AccountFeed
from harness.stack import Account, Stack
from paper.embedded import PaperAdmin
from worker import ids

D = Decimal

#: Base marks, order sizes (above each symbol's minimum notional) and ticks.
MARKS = {"BTCUSDT": D("95000"), "ETHUSDT": D("3400"), "SOLUSDT": D("180"), "BNBUSDT": D("900")}
QTY = {"BTCUSDT": D("0.002"), "ETHUSDT": D("0.05"), "SOLUSDT": D("1"), "BNBUSDT": D("0.2")}
TICK = {"BTCUSDT": D("0.1"), "ETHUSDT": D("0.01"), "SOLUSDT": D("0.01"), "BNBUSDT": D("0.01")}
FIRED = ("FINISHED", "TRIGGERED")


@dataclass
class Config:
    orders: int = 500
    seed: int = 1
    accounts: int = 4
    symbols: int = 3
    concurrency: int = 6
    rate: float = 0.0  # open calls per second at most (0: as fast as `concurrency` allows)
    kills: int = 5  # SIGKILLs of the leading streamer
    drops: int = 5  # drop_connections at the exchange (one account's, or now and then everyone's)
    expiries: int = 2  # listenKeys expired at the exchange
    client_drops: int = 5  # WebSocket clients closing their own connection (and coming back with since)
    mark_every: float = 0.08  # seconds between mark moves
    mark_step: float = 0.01  # a move is at most this fraction of the base mark
    mark_range: float = 0.035  # marks stay within base ± this fraction
    stop_min: float = 0.006  # SL/TP distance from the mark, as a fraction: at least ...
    stop_max: float = 0.03  # ... at most
    kill_gap: float = 1.5  # seconds at least between two kills (a takeover in between)
    settle: float = 30.0  # seconds to wait at the end for events still on their way


@dataclass
class Report:
    config: dict[str, Any]
    orders: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    fills: int = 0
    fired_stops: int = 0
    fired_by_leg: dict[str, int] = field(default_factory=dict)
    events: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    missed_fills: int = 0
    missed_stops: int = 0
    wrong_command: int = 0
    unverifiable_command: int = 0
    seq_holes: int = 0
    duplicates_dropped: int = 0
    #: Seqs the journal (what an AMQP subscriber sees) holds twice with different events: a leader killed
    #: after publishing an event and before saving its state; its successor numbers from the saved state.
    journal_seq_reused: int = 0
    kills: int = 0
    takeovers_seen: int = 0
    drops: int = 0
    expiries: int = 0
    client_drops: int = 0
    client_connects: int = 0
    client_errors: int = 0  # error frames (e.g. 410: events no longer available) and failed connects
    resyncs_seen: int = 0
    republished: int = 0
    settle_seconds: float = 0.0
    seconds: float = 0.0
    streamer_log: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def missed(self) -> int:
        return self.missed_fills + self.missed_stops + self.wrong_command + self.seq_holes

    @property
    def clean(self) -> bool:
        return self.missed == 0 and self.fills > 0

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out["missed"] = self.missed
        out["problems"] = self.problems[:30]
        return out


class EventsChaos:
    def __init__(self, cfg: Config, stack: Stack) -> None:
        self.cfg = cfg
        self.stack = stack
        self.rng = random.Random(cfg.seed)
        self.accounts = list(stack.accounts)
        self.symbols = sorted(MARKS)[: max(1, min(cfg.symbols, len(MARKS)))]
        self.offsets = dict.fromkeys(self.symbols, 0.0)
        self.answers: Counter[str] = Counter()
        self.legs: dict[str, str] = {}  # client id of an SL/TP leg -> the command id of its open call
        self.placed = 0
        self.done = asyncio.Event()  # every open call answered
        self.stop_feeds = asyncio.Event()
        self.streamers: list[subprocess.Popen[bytes]] = []  # oldest first: the oldest alive leads
        self.kills = self.drops = self.expiries = self.client_drops = 0
        self.problems: list[str] = []
        self.log = Path(tempfile.gettempdir()) / f"aiqt-events-chaos-{stack.namespace}.log"
        assert stack.gateway is not None
        self.feeds = {a.name: AccountFeed(stack.gateway.url, a.api_key, a.api_secret, a.name) for a in self.accounts}

    # --- the streamers -----------------------------------------------------------------------

    def _spawn_streamer(self) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            **self.stack.worker_env(),
            "AIQT_STREAM_SYMBOLS": "[]",
            "AIQT_LEADER_RETRY": "0.5",
            "AIQT_LISTEN_KEY_KEEPALIVE": "5",
        }
        with open(self.log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aiqt.cli", "streamer", "--log-level", "WARNING"],
                env=env,
                stdout=out,
                stderr=out,
            )
        self.stack._procs.append(proc)  # killed with the stack, whatever happens
        self.streamers.append(proc)
        return proc

    async def _kill_leader(self) -> None:
        """SIGKILL the oldest live streamer (it took every lead first, or took them over), then start
        a new standby, as a supervisor would."""
        alive = [p for p in self.streamers if p.poll() is None]
        if alive:
            alive[0].send_signal(signal.SIGKILL)
            await asyncio.to_thread(alive[0].wait, 10)
            self.kills += 1
        while sum(p.poll() is None for p in self.streamers) < 2:
            await asyncio.to_thread(self._spawn_streamer)

    # --- the orders --------------------------------------------------------------------------

    def _side(self, account: Account, symbol: str) -> str:
        """One direction per account and symbol: closePosition legs always face a position."""
        return "BUY" if zlib.crc32(f"{account.name}/{symbol}/{self.cfg.seed}".encode()) & 1 else "SELL"

    def _mark(self, symbol: str) -> Decimal:
        return (MARKS[symbol] * D(str(1 + self.offsets[symbol]))).quantize(TICK[symbol])

    async def _open(self, i: int, http: httpx.AsyncClient) -> None:
        rnd = random.Random(self.cfg.seed * 1_000_003 + i)
        account = self.accounts[i % len(self.accounts)]
        symbol = rnd.choice(self.symbols)
        side = self._side(account, symbol)
        sign = D(1) if side == "BUY" else D(-1)
        mark = self._mark(symbol)
        sl = (mark * (1 - sign * D(str(rnd.uniform(self.cfg.stop_min, self.cfg.stop_max))))).quantize(TICK[symbol])
        tp = (mark * (1 + sign * D(str(rnd.uniform(self.cfg.stop_min, self.cfg.stop_max))))).quantize(TICK[symbol])
        assert self.stack.gateway is not None
        client = AsyncAiqtClient(self.stack.gateway.url, account.api_key, account.api_secret, http=http)
        try:
            reply = await client.open_market(symbol, side, QTY[symbol], stop_loss=sl, take_profit=tp)
        except httpx.HTTPError as exc:
            self.answers[type(exc).__name__] += 1
            return
        finally:
            self.placed += 1
        self.answers[str(reply.code)] += 1
        command_id = reply.headers.get("x-command-id")
        if command_id:
            for leg in (ids.STOP_LOSS, ids.TAKE_PROFIT):
                self.legs[ids.client_order_id(account.name, command_id, leg)] = command_id

    async def _place_all(self) -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(self.cfg.orders):
            queue.put_nowait(i)
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=self.cfg.concurrency + 2)) as http:

            async def loop() -> None:
                while True:
                    try:
                        i = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    if self.cfg.rate > 0:
                        await asyncio.sleep(max(0.0, started + i / self.cfg.rate - time.monotonic()))
                    await self._open(i, http)

            await asyncio.gather(*(loop() for _ in range(self.cfg.concurrency)))

    # --- the monkeys -------------------------------------------------------------------------

    async def _move_marks(self) -> None:
        """A mean-reverting random walk of each symbol's mark, one symbol per tick."""
        cfg = self.cfg
        while not self.stop_feeds.is_set() and not self.done.is_set():
            symbol = self.rng.choice(self.symbols)
            x = 0.85 * self.offsets[symbol] + self.rng.uniform(-cfg.mark_step, cfg.mark_step)
            self.offsets[symbol] = max(-cfg.mark_range, min(cfg.mark_range, x))
            try:
                await asyncio.to_thread(self.stack.admin.set_mark, symbol, self._mark(symbol))
            except httpx.HTTPError as exc:
                self.problems.append(f"set_mark failed: {exc!r}")
            await self._sleep(cfg.mark_every)

    def _plan(self) -> list[tuple[float, str]]:
        """When (as a share of the orders answered) each fault strikes."""
        cfg = self.cfg
        plan = [
            (self.rng.uniform(0.1, 0.9), kind)
            for kind, n in (
                ("kill", cfg.kills),
                ("drop", cfg.drops),
                ("expire", cfg.expiries),
                ("client_drop", cfg.client_drops),
            )
            for _ in range(n)
        ]
        return sorted(plan)

    async def _monkey(self) -> None:
        last_kill = 0.0
        for share, kind in self._plan():
            while not self.done.is_set() and self.placed < share * self.cfg.orders:
                await self._sleep(0.02)
            account = self.rng.choice(self.accounts)
            try:
                if kind == "kill":
                    await asyncio.sleep(max(0.0, last_kill + self.cfg.kill_gap - time.monotonic()))
                    await self._kill_leader()
                    last_kill = time.monotonic()
                elif kind == "drop":
                    key = None if self.rng.random() < 0.25 else account.exchange_key
                    await asyncio.to_thread(self.stack.admin.drop_connections, key)
                    self.drops += 1
                elif kind == "expire":
                    await asyncio.to_thread(self.stack.admin.expire_listen_key, account.exchange_key)
                    self.expiries += 1
                else:
                    await self.feeds[account.name].drop()
                    self.client_drops += 1
            except httpx.HTTPError as exc:
                self.problems.append(f"{kind} failed: {exc!r}")

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_feeds.wait(), seconds)

    # --- the run -----------------------------------------------------------------------------

    async def journal_reuse(self, since_ms: int) -> tuple[int, list[str]]:
        connection, _ = await connect_first(self.stack.amqp_url)
        async with connection:
            events = await read_journal(connection, EventTopology(self.stack.namespace), since_ms=since_ms)
        bodies: dict[tuple[str, int], set[str]] = {}
        for e in events:
            key = (str(e.get("account")), int(e.get("seq", 0)))
            bodies.setdefault(key, set()).add(json.dumps(e, sort_keys=True, default=str))
        reused = sorted(k for k, v in bodies.items() if len(v) > 1)
        notes = [f"journal: {a} seq {s} published twice, differently" for a, s in reused[:10]]
        return len(reused), notes

    async def run(self) -> Report:
        started = time.monotonic()
        started_ms = int(time.time() * 1000) - 1000
        for symbol in self.symbols:
            await asyncio.to_thread(self.stack.admin.set_mark, symbol, MARKS[symbol])
        await asyncio.to_thread(self._spawn_streamer)
        for account in self.accounts:  # the first streamer leads everyone before the standby starts
            await asyncio.to_thread(self.stack.streamer_leading, account, 30.0)
        await asyncio.to_thread(self._spawn_streamer)
        feeds = [asyncio.create_task(f.run(self.stop_feeds)) for f in self.feeds.values()]
        await asyncio.sleep(1.0)  # the standby connects and follows the order index
        monkeys = [asyncio.create_task(self._move_marks()), asyncio.create_task(self._monkey())]
        try:
            await self._place_all()
        finally:
            self.done.set()
            await asyncio.gather(*monkeys, return_exceptions=True)
        settle_from = time.monotonic()
        report = self.verify(await asyncio.to_thread(self.exchange_states))
        while report.missed and time.monotonic() - settle_from < self.cfg.settle:
            await asyncio.sleep(0.5)
            report = self.verify(await asyncio.to_thread(self.exchange_states))
        report.settle_seconds = round(time.monotonic() - settle_from, 2)
        report.journal_seq_reused, reused = await self.journal_reuse(started_ms)
        report.problems += reused
        self.stop_feeds.set()
        await asyncio.wait(feeds, timeout=10)
        report.seconds = round(time.monotonic() - started, 2)
        for symbol in self.symbols:
            with contextlib.suppress(httpx.HTTPError):
                await asyncio.to_thread(self.stack.admin.unpin, symbol)
        return report

    def exchange_states(self) -> dict[str, dict[str, Any]]:
        return {a.name: self.stack.state(a) for a in self.accounts}

    def verify(self, states: dict[str, dict[str, Any]]) -> Report:
        """What the exchange holds against what the clients received (on the loop: feeds change)."""
        report = Report(config=asdict(self.cfg), orders=self.placed, answers=dict(self.answers))
        types: Counter[str] = Counter()
        legs: Counter[str] = Counter()
        for account in self.accounts:
            state = states[account.name]
            feed = self.feeds[account.name]
            statuses: dict[int, set[str]] = {}
            protections: dict[str, list[dict[str, Any]]] = {}
            for event in feed.events.values():
                types[event["type"]] += 1
                data = event.get("data") or {}
                if event["type"] == "order" and not data.get("algo"):
                    statuses.setdefault(int(data["orderId"]), set()).add(data["status"])
                elif event["type"] == "protection":
                    protections.setdefault(data["clientOrderId"], []).append(data)
                elif event["type"] == "stream":
                    report.takeovers_seen += data.get("reason") == "takeover" and data.get("status") == "resynced"
                    if data.get("status") == "resynced":
                        report.resyncs_seen += 1
                        report.republished += int(data.get("republished") or 0)
            for order in state["orders"]:
                if D(order["executedQty"]) <= 0:
                    continue
                report.fills += 1
                if order["status"] not in statuses.get(int(order["orderId"]), set()):
                    report.missed_fills += 1
                    report.problems.append(f"{account.name}: no order event {order['orderId']} {order['status']}")
            for algo in state["algoOrders"]:
                if algo["algoStatus"] not in FIRED:
                    continue
                client_id = algo["clientAlgoId"]
                leg = client_id.rsplit("-", 1)[-1]
                report.fired_stops += 1
                legs[leg] += 1
                actual = str(algo.get("actualOrderId") or "")
                seen = [p for p in protections.get(client_id, []) if str(p["orderId"]) == actual and p["leg"] == leg]
                if not seen:
                    report.missed_stops += 1
                    report.problems.append(f"{account.name}: no protection event for {client_id} (order {actual})")
                    continue
                expected = self.legs.get(client_id)
                if expected is None:
                    report.unverifiable_command += 1
                elif not any(p["commandId"] == expected for p in seen):
                    report.wrong_command += 1
                    named = sorted({str(p["commandId"]) for p in seen})
                    report.problems.append(f"{account.name}: {client_id} names {named}, not {expected}")
            holes = feed.holes()
            report.seq_holes += len(holes)
            if holes:
                report.problems.append(f"{account.name}: seq holes {holes[:10]}")
            report.events += len(feed.events)
            report.duplicates_dropped += feed.duplicates
            report.client_connects += feed.connects
            report.client_errors += len(feed.errors)
            report.problems += [f"{account.name}: {e}" for e in feed.errors[:5]]
        report.events_by_type = dict(types)
        report.fired_by_leg = dict(legs)
        report.kills, report.drops, report.expiries = self.kills, self.drops, self.expiries
        report.client_drops = self.client_drops
        report.streamer_log = str(self.log)
        report.problems += self.problems
        return report


async def run_events_chaos(cfg: Config, amqp_url: str, paper_url: str, admin: PaperAdmin) -> Report:
    """One run on a bus namespace and paper accounts of its own (the paper exchange is given)."""
    stack = Stack(amqp_url, paper_url, admin, accounts=cfg.accounts)
    await asyncio.to_thread(stack.start, 1)
    try:
        return await EventsChaos(cfg, stack).run()
    finally:
        await asyncio.to_thread(stack.stop)
