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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from worker import metrics
from worker.binance.client import FapiClient, Params
from worker.binance.errors import (
    ClockSkew,
    ExchangeNotFound,
    ExchangeRateLimited,
    ExchangeUnavailable,
    OrderStatusUnknown,
)
from worker.binance.retry import waits_out

log = logging.getLogger("aiqt.worker.orders")

Lookup = Callable[[], Awaitable[dict[str, Any] | None]]

#: Allowance for the error of our estimate of the exchange clock.
CLOCK_MARGIN_MS = 1000
MAX_SENDS = 3


async def find_order(client: FapiClient, symbol: str, client_id: str) -> dict[str, Any] | None:
    try:
        order: dict[str, Any] = await client.call(
            "GET", "/fapi/v1/order", {"symbol": symbol, "origClientOrderId": client_id}
        )
        return order
    except ExchangeNotFound:
        return None


async def find_algo_order(client: FapiClient, client_algo_id: str) -> dict[str, Any] | None:
    try:
        order: dict[str, Any] = await client.call("GET", "/fapi/v1/algoOrder", {"clientAlgoId": client_algo_id})
        return order
    except ExchangeNotFound:
        return None


async def _wait_until_server_time(client: FapiClient, target_ms: int) -> None:
    delay = (target_ms - client.clock.now_ms()) / 1000
    if delay > 0:
        await asyncio.sleep(delay)


async def place_once(
    client: FapiClient,
    path: str,
    params: Params,
    lookup: Lookup,
    *,
    redelivered: bool,
    looked_up: bool = False,
) -> tuple[dict[str, Any], bool]:
    """Place an order at most once. Returns (order, already_existed)."""
    if not looked_up:
        existing = await lookup()
        if existing is not None:
            metrics.RECONCILIATIONS.labels(outcome="found_before_send").inc()
            return existing, True
    if redelivered:
        # A previous run may have sent this order just before it died, and that request may still
        # be accepted until its recvWindow ends. Wait that out, then look again.
        await _wait_until_server_time(client, client.clock.now_ms() + client.recv_window + CLOCK_MARGIN_MS)
        existing = await lookup()
        if existing is not None:
            metrics.RECONCILIATIONS.labels(outcome="found_after_redelivery").inc()
            return existing, True

    for attempt in range(1, MAX_SENDS + 1):
        sent_ms = client.clock.now_ms()
        try:
            order: dict[str, Any] = await client.send("POST", path, params)
            return order, False
        except ClockSkew:
            await client.sync_time()
            if attempt == MAX_SENDS:
                raise
        except ExchangeRateLimited as exc:
            if attempt == MAX_SENDS or not waits_out(exc):
                raise
            await asyncio.sleep(min(exc.retry_after or 0.5, 3.0))
        except ExchangeUnavailable:
            if attempt == MAX_SENDS:
                raise
            await asyncio.sleep(0.2 * attempt)
        except OrderStatusUnknown as exc:
            log.warning("unknown outcome for %s (%s); reconciling by client id", path, exc)
            found = await lookup()
            if found is not None:
                metrics.RECONCILIATIONS.labels(outcome="found_after_unknown").inc()
                return found, False
            await _wait_until_server_time(client, sent_ms + client.recv_window + CLOCK_MARGIN_MS)
            found = await lookup()
            if found is not None:
                metrics.RECONCILIATIONS.labels(outcome="found_after_window").inc()
                return found, False
            metrics.RECONCILIATIONS.labels(outcome="not_executed").inc()
            if attempt == MAX_SENDS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
