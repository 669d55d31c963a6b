"""The chaos run (`python -m bench.chaos`; `tests/reliability/test_chaos.py` runs a CI-sized one):
order commands through gateway and bus while faults are injected at random (seeded),
then a count, from what the paper exchange holds, of duplicates, lost commands, hung requests and
positions left without their stop loss / take profit and unflagged.

    .venv/bin/python -m bench.chaos                      # 1,000 commands, seed 1
    .venv/bin/python -m bench.chaos --commands 3000 --seed 7 --broker-restarts 1

What is injected (all scoped to the run's own paper accounts and bus namespace):

- paper faults on placements, lookups and reads: 5xx, 503 "Service Unavailable", 429, 418, -1021,
  responses withheld past the worker's timeout (the order executing late, or dying at the exchange
  after its recvWindow), and "executed, but the response was lost" (as 503, -1007 or a timeout);
- worker processes SIGKILLed at random moments (and replaced), with commands in flight;
- optionally RabbitMQ itself stopped and started (`--broker-restarts`), which disturbs every other
  user of the local broker;
- clients that retry: every command has its Idempotency-Key; an answer that says nothing final (409,
  429, 503, 504, a bare 500) is retried with the same key, and some commands are sent twice at once.

Every command ends with a final answer from AIQT, which is then checked against the exchange:

- duplicates: more than one order (entry, SL or TP) for one command's client id;
- lost: AIQT said it was placed (200) but the exchange has no entry, or no final answer came at all;
- mismatched: AIQT said it was not placed (a definitive error) but the exchange has its entry;
- hung: an HTTP request that took longer than the gateway's deadline plus slack (or never returned);
- protection gaps: an entry at the exchange whose requested stop loss / take profit is not there,
  not unwound by the protection policy, and not flagged in the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import shutil
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

from aiqt.client import AsyncAiqtClient, Reply
from harness.broker import answers
from harness.holdings import algos_of, orders_of
from harness.stack import Account, Stack
from paper.embedded import PaperAdmin
from schemas import errors
from worker import ids

D = Decimal

#: Pinned marks and order sizes (each above the symbol's minimum notional).
MARKS = {"BTCUSDT": D("95000"), "ETHUSDT": D("3400"), "BNBUSDT": D("900"), "SOLUSDT": D("180"), "XRPUSDT": D("2.5")}
QTY = {"BTCUSDT": D("0.002"), "ETHUSDT": D("0.05"), "BNBUSDT": D("0.2"), "SOLUSDT": D("1"), "XRPUSDT": D("80")}
TICK = {"BTCUSDT": D("0.1"), "ETHUSDT": D("0.01"), "BNBUSDT": D("0.01"), "SOLUSDT": D("0.01"), "XRPUSDT": D("0.0001")}


@dataclass
class Config:
    commands: int = 1000
    seed: int = 1
    concurrency: int = 16
    accounts: int = 20
    workers: int = 3
    protected: float = 0.4  # share of commands with a stop loss (and half of those a take profit)
    duplicates: float = 0.1  # share of commands also sent a second time at once, same key
    fault_every: float = 0.08  # seconds between armed faults (on average)
    kill_every: float = 4.0  # seconds between worker SIGKILLs (on average); 0 = none
    broker_restarts: int = 0
    outage: float = 3.0
    request_timeout: float = 8.0
    recv_window: int = 2000
    exchange_timeout: float = 1.5
    give_up: float = 90.0  # a client stops retrying one command after this long


@dataclass
class Outcome:
    index: int
    account: str
    key: str
    command_id: str = ""
    symbol: str = ""
    legs: tuple[str, ...] = ()
    requests: int = 0
    final: dict[str, Any] | None = None  # the final envelope
    max_elapsed: float = 0.0
    hung: int = 0


@dataclass
class Report:
    config: dict[str, Any]
    commands_sent: int = 0
    http_requests: int = 0
    orders_at_exchange: int = 0
    duplicates: int = 0
    lost: int = 0
    mismatched: int = 0
    hung: int = 0
    protection_gaps: int = 0
    protection_flagged: int = 0
    unwound_by_policy: int = 0
    final_codes: dict[str, int] = field(default_factory=dict)
    protection_reasons: dict[str, int] = field(default_factory=dict)
    faults_armed: dict[str, int] = field(default_factory=dict)
    workers_killed: int = 0
    broker_restarts: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.duplicates or self.lost or self.mismatched or self.hung or self.protection_gaps)

    def text(self) -> str:
        rows = [
            ("commands sent", self.commands_sent),
            ("HTTP requests (incl. retries, duplicates)", self.http_requests),
            ("orders at the exchange (entries)", self.orders_at_exchange),
            ("duplicates", self.duplicates),
            ("lost", self.lost),
            ("mismatched (said not placed, but placed)", self.mismatched),
            ("hung", self.hung),
            ("protection gaps (unprotected, unflagged)", self.protection_gaps),
            ("protection failures flagged in the reply", self.protection_flagged),
            ("entries unwound by the protection policy", self.unwound_by_policy),
            ("faults armed", sum(self.faults_armed.values())),
            ("workers SIGKILLed", self.workers_killed),
            ("broker restarts", self.broker_restarts),
            ("seconds", round(self.seconds, 1)),
        ]
        width = max(len(r[0]) for r in rows)
        out = [f"{name:<{width}}  {value}" for name, value in rows]
        out.append(f"{'final answers':<{width}}  {dict(sorted(self.final_codes.items()))}")
        out.append(f"{'faults by kind':<{width}}  {dict(sorted(self.faults_armed.items()))}")
        if self.protection_reasons:
            out.append(f"{'why protection failed':<{width}}  {self.protection_reasons}")
        for p in self.problems[:20]:
            out.append(f"PROBLEM: {p}")
        return "\n".join(out)


def _fault_menu(cfg: Config) -> list[tuple[str, dict[str, Any], int]]:
    """(kind, parameters, weight). Withheld responses outlast the worker's timeout; a "late" one
    executes inside recvWindow, an "expired" one dies at the exchange after it."""
    late = int(cfg.exchange_timeout * 1000) + 300
    expired = cfg.recv_window + 300
    place = [("POST", "/fapi/v1/order"), ("POST", "/fapi/v1/algoOrder")]
    lookup = [("GET", "/fapi/v1/order"), ("GET", "/fapi/v1/algoOrder")]
    menu: list[tuple[str, dict[str, Any], int]] = []
    for method, path in place:
        where = {"method": method, "path": path}
        menu += [
            ("http_5xx", {**where, "status": 503}, 3),
            ("http_5xx", {**where, "status": 500}, 2),
            ("service_unavailable", where, 3),
            ("rate_limit_429", where, 2),
            ("timestamp_1021", where, 2),
            ("executed_response_lost", {**where, "lostAs": "503"}, 3),
            ("executed_response_lost", {**where, "lostAs": "-1007"}, 3),
            ("executed_response_lost", {**where, "lostAs": "timeout", "delayMs": late}, 2),
            ("delay", {**where, "delayMs": late}, 2),
            ("delay", {**where, "delayMs": expired}, 1),
            ("ban_418", where, 1),
        ]
    for method, path in lookup:
        where = {"method": method, "path": path}
        menu += [
            ("http_5xx", {**where, "status": 502}, 2),
            ("delay", {**where, "delayMs": late}, 1),
            ("rate_limit_429", where, 1),
            ("timestamp_1021", where, 1),
        ]
    menu.append(("http_5xx", {"method": "GET", "path": "/fapi/v1/positionSide/dual", "status": 503}, 1))
    return menu


class Chaos:
    def __init__(self, cfg: Config, stack: Stack, *, broker_ctl: bool = False) -> None:
        self.cfg = cfg
        self.stack = stack
        self.rng = random.Random(cfg.seed)
        self.accounts = [stack.take_account() for _ in range(cfg.accounts)]
        self.outcomes: list[Outcome] = []
        self.faults: Counter[str] = Counter()
        self.killed = 0
        self.restarts = 0
        self.broker_ctl = broker_ctl
        self.procs: list[subprocess.Popen[bytes]] = []
        self.done = asyncio.Event()
        self.problems: list[str] = []
        self.log = Path(tempfile.gettempdir()) / f"aiqt-chaos-{stack.namespace}.log"

    # --- the clients -------------------------------------------------------------------------

    def _plan(self, i: int) -> tuple[Account, str, str, Decimal, Decimal | None, Decimal | None]:
        rnd = random.Random(self.cfg.seed * 1_000_003 + i)
        account = self.accounts[rnd.randrange(len(self.accounts))]
        symbol = rnd.choice(sorted(MARKS))
        # One direction per (account, symbol): a closePosition stop always has a position to close.
        side = "BUY" if zlib.crc32(f"{account.name}/{symbol}/{self.cfg.seed}".encode()) & 1 else "SELL"
        sl = tp = None
        if rnd.random() < self.cfg.protected:
            away = D(rnd.choice(["0.05", "0.08", "0.12"]))
            mark = MARKS[symbol]
            sign = -1 if side == "BUY" else 1
            sl = (mark * (1 + sign * away)).quantize(TICK[symbol])
            if rnd.random() < 0.5:
                tp = (mark * (1 - sign * away)).quantize(TICK[symbol])
        return account, symbol, side, QTY[symbol], sl, tp

    async def _command(self, i: int, http: httpx.AsyncClient) -> None:
        cfg = self.cfg
        account, symbol, side, qty, sl, tp = self._plan(i)
        o = Outcome(i, account.name, f"chaos-{cfg.seed}-{i}-{secrets.token_hex(4)}", symbol=symbol)
        o.legs = tuple(leg for leg, price in ((ids.STOP_LOSS, sl), (ids.TAKE_PROFIT, tp)) if price is not None)
        self.outcomes.append(o)
        assert self.stack.gateway is not None
        client = AsyncAiqtClient(self.stack.gateway.url, account.api_key, account.api_secret, http=http)
        rnd = random.Random(cfg.seed * 7_919 + i)
        twice = rnd.random() < cfg.duplicates
        give_up = time.monotonic() + cfg.give_up
        delay = 0.2
        while True:
            sends = 2 if twice and o.requests == 0 else 1
            replies = await asyncio.gather(
                *(self._send(client, o, symbol, side, qty, sl, tp) for _ in range(sends)), return_exceptions=True
            )
            final = [r for r in replies if isinstance(r, Reply) and _is_final(r)]
            if final:
                reply = final[0]
                o.final = {"code": reply.code, "msg": reply.msg, "data": reply.data}
                if len(final) > 1 and final[1].code == reply.code == 200 and final[1].data != reply.data:
                    self.problems.append(f"command {i}: two different 200 replies for one key")
                return
            if time.monotonic() > give_up:
                return
            await asyncio.sleep(delay * (0.5 + rnd.random()))
            delay = min(delay * 2, 2.0)

    async def _send(
        self,
        client: AsyncAiqtClient,
        o: Outcome,
        symbol: str,
        side: str,
        qty: Decimal,
        sl: Decimal | None,
        tp: Decimal | None,
    ) -> Reply:
        o.requests += 1
        started = time.monotonic()
        try:
            reply = await client.open_market(symbol, side, qty, stop_loss=sl, take_profit=tp, idempotency_key=o.key)
        except httpx.TimeoutException:
            o.hung += 1
            raise
        except httpx.HTTPError:
            raise
        finally:
            elapsed = time.monotonic() - started
            o.max_elapsed = max(o.max_elapsed, elapsed)
        if elapsed > self.cfg.request_timeout + 5:
            o.hung += 1
        o.command_id = reply.headers.get("x-command-id", o.command_id)
        return reply

    async def _clients(self) -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(self.cfg.commands):
            queue.put_nowait(i)
        limits = httpx.Limits(max_connections=self.cfg.concurrency * 2 + 4)
        async with httpx.AsyncClient(timeout=self.cfg.request_timeout + 30, limits=limits) as http:

            async def client_loop() -> None:
                while True:
                    try:
                        i = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    await self._command(i, http)

            await asyncio.gather(*(client_loop() for _ in range(self.cfg.concurrency)))
        self.done.set()

    # --- the monkeys -------------------------------------------------------------------------

    async def _faults(self) -> None:
        menu = _fault_menu(self.cfg)
        weights = [w for _, _, w in menu]
        while not self.done.is_set():
            kind, params, _ = self.rng.choices(menu, weights)[0]
            account = self.rng.choice(self.accounts)
            try:
                await asyncio.to_thread(self.stack.admin.fault, kind=kind, apiKey=account.exchange_key, **params)
                self.faults[kind] += 1
            except httpx.HTTPError as exc:
                self.problems.append(f"could not arm a fault: {exc!r}")
            await self._sleep(self.rng.expovariate(1 / self.cfg.fault_every))

    def _spawn(self) -> subprocess.Popen[bytes]:
        """`aiqt worker` as an OS process, its log (WARNING and up) appended to `self.log`."""
        env = {**os.environ, **self.stack.worker_env()}
        with open(self.log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aiqt.cli", "worker", "--log-level", "WARNING"], env=env, stdout=out, stderr=out
            )
        self.stack.adopt(proc)  # stopped with the stack
        self.procs.append(proc)
        return proc

    async def _killer(self) -> None:
        if self.cfg.kill_every <= 0:
            return
        while not self.done.is_set():
            await self._sleep(self.rng.uniform(0.5, 1.5) * self.cfg.kill_every)
            if self.done.is_set():
                return
            alive = [p for p in self.procs if p.poll() is None]
            if alive:
                victim = self.rng.choice(alive)
                victim.send_signal(signal.SIGKILL)
                await asyncio.to_thread(victim.wait, 10)
                self.killed += 1
            # a supervisor's job: keep the pool at its size (a replacement may also have died)
            for _ in range(self.cfg.workers - sum(p.poll() is None for p in self.procs)):
                await asyncio.to_thread(self._spawn)

    async def _broker(self) -> None:
        for n in range(self.cfg.broker_restarts):
            # spread the outages over the middle of the run
            target = (n + 1) / (self.cfg.broker_restarts + 1)
            while not self.done.is_set() and self._answered() < target * self.cfg.commands:
                await self._sleep(0.2)
            if self.done.is_set():
                return
            await asyncio.to_thread(restart_broker, self.stack.amqp_url, self.cfg.outage)
            self.restarts += 1

    def _answered(self) -> int:
        return sum(o.final is not None for o in self.outcomes)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), seconds)

    # --- the run -----------------------------------------------------------------------------

    async def run(self) -> Report:
        started = time.monotonic()
        for symbol, price in MARKS.items():
            await asyncio.to_thread(self.stack.admin.set_mark, symbol, price)
        for _ in range(self.cfg.workers):
            await asyncio.to_thread(self._spawn)
        await asyncio.to_thread(_wait_workers, self.stack, self.cfg.workers)
        tasks = [asyncio.create_task(t) for t in (self._faults(), self._killer(), self._broker())]
        try:
            await self._clients()
        finally:
            self.done.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        # whatever is still on its way to the exchange (withheld, late) arrives or dies
        await asyncio.sleep(self.cfg.recv_window / 1000 + 1.5)
        report = await asyncio.to_thread(self.verify)
        report.seconds = time.monotonic() - started
        for symbol in MARKS:
            await asyncio.to_thread(self.stack.admin.unpin, symbol)
        return report

    def verify(self) -> Report:
        cfg = self.cfg
        report = Report(config=asdict(cfg))
        states = {a.name: self.stack.state(a) for a in self.accounts}
        by_name = {a.name: a for a in self.accounts}
        report.commands_sent = len(self.outcomes)
        report.http_requests = sum(o.requests for o in self.outcomes)
        report.hung = sum(o.hung for o in self.outcomes)
        report.faults_armed = dict(self.faults)
        report.workers_killed = self.killed
        report.broker_restarts = self.restarts
        codes: Counter[str] = Counter()
        reasons: dict[str, int] = {}
        for o in self.outcomes:
            state = states[o.account]
            codes[str(o.final["code"]) if o.final else "none"] += 1
            if not o.command_id:
                if o.final is None:
                    report.lost += 1
                    report.problems.append(f"command {o.index}: never answered")
                continue
            account = by_name[o.account]

            entries = orders_of(state, account, o.command_id, ids.ENTRY)
            unwinds = orders_of(state, account, o.command_id, ids.UNWIND)
            report.orders_at_exchange += len(entries)
            extra = max(len(entries) - 1, 0) + max(len(unwinds) - 1, 0)
            legs = {leg: algos_of(state, account, o.command_id, leg) for leg in o.legs}
            extra += sum(max(len(rows) - 1, 0) for rows in legs.values())
            if extra:
                report.duplicates += extra
                report.problems.append(f"command {o.index}: {extra} duplicate order(s)")
            final = o.final
            flagged = bool(final and isinstance(final.get("data"), dict) and final["data"].get("protection"))
            report.protection_flagged += flagged
            if flagged and final is not None:
                p = final["data"]["protection"]
                why = f"{p['policy']}: {re.sub(r'[0-9]{6,}', '…', p['error'])[:60]}"
                reasons[why] = reasons.get(why, 0) + 1
            if final is None:
                if not entries:
                    report.lost += 1
                    report.problems.append(f"command {o.index}: no final answer, not at the exchange")
                # at the exchange without a final answer: the client gave up; counted by the gap check
            elif final["code"] == 200:
                if not entries:
                    report.lost += 1
                    report.problems.append(f"command {o.index}: answered 200, no order at the exchange")
                elif final["data"]["market"]["orderId"] != entries[0]["orderId"]:
                    report.mismatched += 1
                    report.problems.append(f"command {o.index}: reply and exchange disagree on the order id")
            elif entries and not flagged:
                report.mismatched += 1
                report.problems.append(
                    f"command {o.index}: answered {final['code']} {final['msg']!r}, but its entry is at the exchange"
                )
            if entries and unwinds:
                report.unwound_by_policy += 1
            elif entries and o.legs:
                missing = [leg for leg, rows in legs.items() if not any(r["algoStatus"] == "NEW" for r in rows)]
                if missing and not flagged:
                    report.protection_gaps += 1
                    seen = {leg: [(r["algoId"], r["algoStatus"]) for r in rows] for leg, rows in legs.items()}
                    report.problems.append(
                        f"command {o.index} ({o.command_id}): entry without {missing}, not flagged; at the exchange "
                        f"{seen}; reply {json.dumps(final, default=str)[:600]}"
                    )
        report.final_codes = dict(codes)
        report.protection_reasons = reasons
        report.problems += self.problems
        return report


def _is_final(reply: Reply) -> bool:
    return errors.is_final(reply.code, reply.data) and errors.is_final(reply.status, reply.data)


def _wait_workers(stack: Stack, n: int, timeout: float = 30.0) -> None:
    assert stack.gateway is not None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            data = httpx.get(f"{stack.gateway.url}/readyz", timeout=2).json().get("data") or {}
            if int(data.get("workers", 0)) >= n:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{n} workers did not start")


def restart_broker(amqp_url: str, outage: float) -> None:
    """Stop the local RabbitMQ app for `outage` seconds; always start it again and wait for it."""
    if shutil.which("rabbitmqctl") is None:
        raise RuntimeError("rabbitmqctl is needed for broker restarts")
    try:
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
        time.sleep(outage)
    finally:
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
        subprocess.run(["rabbitmqctl", "await_startup"], check=True, capture_output=True, timeout=120)
        end = time.monotonic() + 60
        while not answers(amqp_url) and time.monotonic() < end:
            time.sleep(0.2)


async def run_chaos(cfg: Config, amqp_url: str, paper_url: str, admin: PaperAdmin) -> Report:
    """One chaos run on a bus namespace and paper accounts of its own (the paper server is given)."""
    stack = Stack(
        amqp_url,
        paper_url,
        admin,
        accounts=cfg.accounts,
        worker={"recv_window": cfg.recv_window, "exchange_timeout": cfg.exchange_timeout},
        gateway={"request_timeout": cfg.request_timeout},
    )
    await asyncio.to_thread(stack.start_gateway)
    chaos = Chaos(cfg, stack)
    try:
        return await chaos.run()
    finally:
        await asyncio.to_thread(stack.stop)
