"""The worker process: consumes commands, runs handlers against the exchange, replies.

Every outcome becomes an envelope: a handler's Refusal, a Binance rejection (its code and msg
passed through), an exchange that stays unavailable (503) or whose answer stays unknown (504),
and anything unexpected (500, logged with its traceback, never sent to the caller).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
import uuid
from dataclasses import replace
from typing import Any

import httpx
from pydantic import BaseModel

from bus import BusUnavailable, CommandConsumer, CommandLocked, Delivery, HandlerResult, Topology
from bus.audit import AuditLog
from bus.events import OrderIndex
from bus.halts import Halts, HaltUnknown
from bus.lock import CommandLocks
from bus.logs import command_id as log_command_id
from bus.marker import REPLAY_MARGIN_MS, StartMarkers
from schemas import codec, errors
from schemas.enums import CommandType
from schemas.registry import COMPLETABLE_COMMANDS, MUTATING_COMMANDS
from schemas.validation import InvalidCommand, parse_payload
from worker import metrics
from worker.accounts import account_exchanges
from worker.binance.clock import ServerClock
from worker.binance.errors import (
    ExchangeAuthError,
    ExchangeError,
    ExchangeRateLimited,
    ExchangeRejected,
    ExchangeUnavailable,
    OrderStatusUnknown,
)
from worker.commands import HANDLERS
from worker.commands.system import ping
from worker.context import AccountContext, Run
from worker.limits import Policy
from worker.limits.runtime import GovernorRuntime
from worker.marketdata import MarketData
from worker.outcome import Outcome, Refusal
from worker.settings import WorkerSettings

log = logging.getLogger("aiqt.worker")

#: How long a command waits for another worker that is running the same command id.
LOCK_WAIT = 30.0
#: Seconds between attempts to reach RabbitMQ when a worker starts.
START_RETRY = 2.0
#: Commands whose first run may skip the order look-up: each of their runs leaves a start marker
#: first (bus/marker.py). Only the entry's orders (entry, SL/TP, unwind) use the proof; a close looks
#: its order up in parallel with the position it needs anyway, so a marker would only cost it time.
PLACES_ORDERS = frozenset({CommandType.ORDER_OPEN_MARKET})


class Worker:
    """One worker process. Any number may consume the same queue."""

    def __init__(self, settings: WorkerSettings, *, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        connections = settings.exchange_connections or settings.worker_concurrency
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.exchange_timeout, connect=min(settings.exchange_timeout, 2.0)),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )
        clock = ServerClock()
        #: The fleet-wide governor in front of every exchange call of this worker (worker.limits).
        self.limits = GovernorRuntime(
            settings,
            name=self.name,
            clock=clock,
            policy=Policy(safety=settings.governor_safety, reserve=settings.governor_reserve),
        )
        #: Closed candles, settled funding, recent live values: one cache for every account.
        self.market = MarketData(max_age_ms=settings.live_max_age_ms, server_now_ms=clock.now_ms)
        self.halts = Halts(Topology(settings.bus_namespace, settings.queue_type))
        governor = self.limits.governor if settings.governor else None
        self.accounts = {
            name: AccountContext(
                name=name,
                exchange=exchange,
                protection_policy=settings.protection_policy,
                market=self.market,
                risk=settings.risk.get(name),
                halts=self.halts,
            )
            for name, exchange in account_exchanges(self._http, settings, clock=clock, governor=governor).items()
        }
        # The audit journal (bus/audit.py): each outcome is handed over after its reply is published.
        self.audit = (
            AuditLog(
                Topology(settings.bus_namespace, settings.queue_type),
                worker=self.name,
                on_failure=lambda reason: metrics.AUDIT_FAILURES.labels(reason=reason).inc(),
                on_written=metrics.AUDIT_WRITTEN.inc,
            )
            if settings.audit
            else None
        )
        self.consumer = CommandConsumer(
            settings,
            self.handle,
            prefetch=settings.worker_concurrency,
            name=f"aiqt-worker {self.name}",
            on_dead_letter=lambda reason: metrics.DEAD_LETTERS.labels(reason=reason).inc(),
            audit=self.audit,
        )
        self._locks = CommandLocks(self.consumer.bus, self.consumer.topology)
        self._markers = StartMarkers(self.consumer.bus, self.consumer.topology)

    async def start(self) -> None:
        if self.settings.governor:
            await self.limits.start({name: ctx.exchange for name, ctx in self.accounts.items()})
        for ctx in self.accounts.values():
            try:
                await ctx.exchange.client.sync_time()
            except ExchangeError as exc:
                log.warning("could not sync the exchange clock yet: %s", exc)
            break  # one clock per exchange
        # Everything a handler uses is in place before the first delivery can arrive (a redelivered
        # command may arrive the moment the consumer starts). All of it follows the consumer's
        # connection, whichever node it is on after a failover.
        self.halts.bind(self.consumer.bus)
        index = OrderIndex(self.consumer.bus, self.consumer.topology.namespace)

        async def record_leg(account: str, client_id: str, command_id: str, leg: str) -> None:
            # Never let the index stop a stop loss: without it the protection event lacks only its command id.
            try:
                await index.record(account, client_id, command_id, leg)
            except Exception as exc:
                log.warning("order index not written for %s: %s", client_id, exc)

        for ctx in self.accounts.values():
            ctx.record_leg = record_leg
        if self.audit is not None:
            await self.audit.start(self.consumer.bus)  # declares the stream once connected
        await self.consumer.start()
        if self.settings.governor:
            await self.limits.joined()
        for name in self.accounts:
            try:
                if await self.halts.is_halted(name):
                    log.warning("account %s is halted: opening orders are refused until it is resumed", name)
            except HaltUnknown as exc:
                log.warning("%s; its opening orders are refused until it can be read", exc)
        log.info(
            "worker %s consuming %s (exchange %s)",
            self.name,
            self.consumer.topology.commands_queue,
            self.settings.exchange_url,
        )

    async def close(self) -> None:
        await self.halts.close()
        if self.audit is not None:
            await self.audit.close()
        await self.consumer.close()
        await self.limits.close()
        await self._http.aclose()

    async def handle(self, delivery: Delivery) -> HandlerResult:
        log_command_id.set(delivery.command_id)
        started = time.perf_counter()
        if delivery.queue_wait_ms is not None:
            metrics.QUEUE_WAIT_SECONDS.observe(max(delivery.queue_wait_ms, 0) / 1000)
        outcome = await self._outcome(delivery)
        data = outcome.data.model_dump() if isinstance(outcome.data, BaseModel) else outcome.data
        body = codec.dumps({"code": outcome.code, "msg": outcome.msg, "data": data})
        elapsed = time.perf_counter() - started  # including the reply's serialisation
        metrics.COMMANDS.labels(type=delivery.type.value, code=str(outcome.code)).inc()
        metrics.COMMAND_SECONDS.labels(type=delivery.type.value).observe(elapsed)
        log.info(
            "%s → %s in %.1f ms%s",
            delivery.type.value,
            outcome.code,
            elapsed * 1000,
            " (redelivered)" if delivery.redelivered else "",
        )
        headers: dict[str, Any] = {"x-worker-ms": round(elapsed * 1000, 3), **outcome.headers}
        if outcome.code == errors.OK and delivery.type != CommandType.SYSTEM_PING:
            headers.setdefault("x-aiqt-source", "exchange")  # unless a handler served it from cache or live state
        if delivery.queue_wait_ms is not None:
            headers["x-queue-ms"] = round(delivery.queue_wait_ms, 3)
        return HandlerResult(code=outcome.code, body=body, headers=headers, dead_letter=outcome.dead_letter)

    async def _outcome(self, delivery: Delivery) -> Outcome:
        try:
            payload = parse_payload(delivery.type, delivery.payload)
            if delivery.type == CommandType.SYSTEM_PING:
                return ping(self.name)
            ctx = self.accounts.get(delivery.account)
            if ctx is None:
                return Outcome(errors.BAD_REQUEST, f"Unknown account '{delivery.account}'")
            run = Run(command_id=delivery.command_id, redelivered=delivery.redelivered, complete_only=delivery.expired)
            if delivery.expired and delivery.type not in COMPLETABLE_COMMANDS:
                return Outcome(
                    errors.TIMEOUT,
                    f"Command {delivery.command_id} expired in the queue after a worker failed while running it; "
                    "it was not run again. The failed attempt may have applied it: check the order or position.",
                    dead_letter="deadline exceeded after a failed attempt; not run again",
                )
            handler = HANDLERS[delivery.type]
            if delivery.type in MUTATING_COMMANDS:
                async with self._locks.hold(f"{delivery.account}.{delivery.command_id}", wait=LOCK_WAIT):
                    if delivery.type in PLACES_ORDERS and delivery.signature_key and self._markers is not None:
                        mark = await self._markers.mark(f"{delivery.account}.{delivery.command_id}")
                        run = replace(run, first_attempt=not mark.earlier_run and _replay_window_open(delivery))
                    result: Outcome = await handler(ctx, payload, run)
            else:
                result = await handler(ctx, payload, run)
            return result
        except InvalidCommand as exc:
            return Outcome(exc.code, exc.msg, exc.data)
        except Refusal as exc:
            return exc.outcome
        except ExchangeAuthError as exc:
            log.error("exchange refused the credentials of account %s: %s", delivery.account, exc)
            return Outcome(errors.INTERNAL, f"The exchange refused AIQT's credentials for this account ({exc.code})")
        except ExchangeRateLimited as exc:
            headers = {"x-retry-after": max(1, math.ceil(exc.retry_after or 1))}
            if getattr(exc, "not_sent", False):  # AIQT's own governor: nothing reached the exchange
                return Outcome(errors.RATE_LIMITED, exc.msg, None, headers)
            return Outcome(errors.RATE_LIMITED, f"Rate limited by the exchange: {exc.msg}", None, headers)
        except ExchangeRejected as exc:
            return Outcome(exc.code if exc.code is not None else errors.BAD_REQUEST, exc.msg)
        except ExchangeUnavailable as exc:
            return Outcome(errors.UNAVAILABLE, f"Exchange unavailable: {exc.msg}")
        except OrderStatusUnknown as exc:
            return Outcome(
                errors.TIMEOUT,
                f"The exchange did not confirm the outcome ({exc.msg}). Retry with the same Idempotency-Key "
                f"(command {delivery.command_id}) to learn it; nothing will be placed twice.",
            )
        except BusUnavailable as exc:  # e.g. the start marker could not be made: nothing was sent
            return Outcome(errors.UNAVAILABLE, f"Message bus unavailable; the command was not executed ({exc})")
        except CommandLocked as exc:
            return Outcome(errors.CONFLICT, f"{exc}; retry with the same Idempotency-Key to get its outcome")
        except Exception:
            log.exception("command %s (%s) failed", delivery.command_id, delivery.type)
            return Outcome(errors.INTERNAL, f"Internal error (command {delivery.command_id})")


def _replay_window_open(delivery: Delivery) -> bool:
    """Whether an empty start marker proves this is the first run: only a fresh delivery of a command
    whose publisher bounds its replays, while every possible replay must still find our marker."""
    if delivery.redelivered or delivery.expired or delivery.replayable_until is None:
        return False
    limit = delivery.replayable_until + REPLAY_MARGIN_MS
    now = time.time() * 1000
    return now <= limit and (delivery.deadline_ms is None or delivery.deadline_ms <= limit)


async def run_worker(settings: WorkerSettings) -> None:
    """Run a worker until cancelled."""
    worker = Worker(settings)
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.metrics_host)
    while True:
        # A worker started while RabbitMQ is away (a restart, a deploy) waits for it instead of exiting.
        try:
            await worker.start()
            break
        except BusUnavailable as exc:
            log.warning("%s; retrying in %gs", exc, START_RETRY)
            await worker.consumer.close()
            await asyncio.sleep(START_RETRY)
    try:
        await asyncio.Event().wait()
    finally:
        await worker.close()
