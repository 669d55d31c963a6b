"""Placing orders exactly once.

Binance keeps `newClientOrderId` unique only among *open* orders: a filled market order re-sent
with the same id fills again. So nothing here ever re-POSTs blindly:

1. Before sending, look the order up by its deterministic client id; if it exists, it was placed
   (by an earlier run of this command): report it.
2. On a redelivered command, an earlier run may have sent the order moments ago: wait until
   anything it could have sent is past its recvWindow, then look again.
3. Send once. "Certainly not executed" answers (connect failure, 503 Service Unavailable, 429,
   -1021) are retried after a pause.
4. After an unknown outcome (timeout, 5xx, -1006/-1007), look it up; if not there, wait until the
   request's timestamp + recvWindow has passed (Binance can no longer accept it), look again, and
   only then send again.

The recvWindow wait (steps 2 and 4, and `started_by_earlier_run` for an expired command) has one
implementation, `wait_out_recv_window`, on the exchange's clock.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from worker import metrics
from worker.binance.client import FapiClient
from worker.binance.endpoints import ClosePositionOrder, Exchange, Json, MarketOrder
from worker.binance.errors import (
    ClockSkew,
    ExchangeRateLimited,
    ExchangeUnavailable,
    OrderStatusUnknown,
)
from worker.binance.retry import MAX_WAIT, waits_out

log = logging.getLogger("aiqt.worker.orders")

Lookup = Callable[[], Awaitable[Json | None]]
Send = Callable[[], Awaitable[Json]]

#: Allowance for the error of our estimate of the exchange clock.
CLOCK_MARGIN_MS = 1000
MAX_SENDS = 3


async def wait_out_recv_window(client: FapiClient, sent_ms: int | None = None) -> None:
    """Wait until a request signed at `sent_ms` (default: now), on the exchange's clock, is past its
    recvWindow: from then on Binance can no longer accept it."""
    now = client.clock.now_ms()
    target = (now if sent_ms is None else sent_ms) + client.recv_window + CLOCK_MARGIN_MS
    delay = (target - now) / 1000
    if delay > 0:
        await client.sleep(delay)


async def started_by_earlier_run(client: FapiClient, lookup: Lookup) -> Json | None:
    """For an expired, redelivered command: did the crashed run send this order? Waits out the
    recvWindow of anything it may still have in flight before trusting "no"."""
    found = await lookup()
    if found is None:
        await wait_out_recv_window(client)
        found = await lookup()
    return found


async def place_order(
    exchange: Exchange, order: MarketOrder, *, redelivered: bool, looked_up: bool = False
) -> tuple[Json, bool]:
    """Place a market order at most once. Returns (order, already_existed)."""
    return await place_once(
        exchange.client,
        lambda: exchange.new_order(order),
        lambda: exchange.find_order(order.symbol, order.client_id),
        redelivered=redelivered,
        looked_up=looked_up,
        what=f"order {order.client_id}",
    )


async def place_algo_order(
    exchange: Exchange, order: ClosePositionOrder, *, redelivered: bool, looked_up: bool = False
) -> tuple[Json, bool]:
    """Place a conditional order at most once. Returns (algo order, already_existed)."""
    return await place_once(
        exchange.client,
        lambda: exchange.new_algo_order(order),
        lambda: exchange.find_algo_order(order.client_id),
        redelivered=redelivered,
        looked_up=looked_up,
        what=f"algo order {order.client_id}",
    )


async def place_once(
    client: FapiClient,
    send: Send,
    lookup: Lookup,
    *,
    redelivered: bool,
    looked_up: bool = False,
    what: str = "order",
) -> tuple[Json, bool]:
    """Place an order at most once: `send` POSTs it once, `lookup` finds it by its client id.
    Returns (order, already_existed)."""
    if not looked_up:
        existing = await lookup()
        if existing is not None:
            metrics.RECONCILIATIONS.labels(outcome="found_before_send").inc()
            return existing, True
    if redelivered:
        # A previous run may have sent this order just before it died, and that request may still
        # be accepted until its recvWindow ends. Wait that out, then look again.
        await wait_out_recv_window(client)
        existing = await lookup()
        if existing is not None:
            metrics.RECONCILIATIONS.labels(outcome="found_after_redelivery").inc()
            return existing, True

    for attempt in range(1, MAX_SENDS + 1):
        sent_ms = client.clock.now_ms()
        try:
            order: dict[str, Any] = await send()
            return order, False
        except ClockSkew:
            await client.sync_time()
            if attempt == MAX_SENDS:
                raise
        except ExchangeRateLimited as exc:
            if attempt == MAX_SENDS or not waits_out(exc):
                raise
            await client.sleep(min(exc.retry_after or 0.5, MAX_WAIT))
        except ExchangeUnavailable:
            if attempt == MAX_SENDS:
                raise
            await client.sleep(0.2 * attempt)
        except OrderStatusUnknown as exc:
            log.warning("unknown outcome for %s (%s); reconciling by client id", what, exc)
            found = await lookup()
            if found is not None:
                metrics.RECONCILIATIONS.labels(outcome="found_after_unknown").inc()
                return found, False
            await wait_out_recv_window(client, sent_ms)
            found = await lookup()
            if found is not None:
                metrics.RECONCILIATIONS.labels(outcome="found_after_window").inc()
                return found, False
            metrics.RECONCILIATIONS.labels(outcome="not_executed").inc()
            if attempt == MAX_SENDS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
