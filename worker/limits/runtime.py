"""The governor as a worker runs it: one per worker process, its limits read from the exchange,
its freezes shared with the fleet over the bus (`bus.fleet`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bus.config import BusSettings
from bus.errors import BusUnavailable
from bus.fleet import FleetLink
from worker.binance.clock import ServerClock
from worker.binance.endpoints import Exchange
from worker.binance.errors import ExchangeError
from worker.limits.governor import Freeze, Governor, Policy, parse_rate_limits

log = logging.getLogger("aiqt.worker.limits")


class GovernorRuntime:
    """Owns the worker's `Governor` and its `FleetLink`."""

    def __init__(self, settings: BusSettings, *, name: str, clock: ServerClock, policy: Policy) -> None:
        self.name = name
        self.governor = Governor(policy=policy, now_ms=clock.now_ms, on_freeze=self._broadcast, origin=name)
        self.fleet = FleetLink(
            settings, on_freeze=self._received, on_workers=self.governor.set_workers, name=f"aiqt-governor {name}"
        )
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, exchanges: dict[str, Exchange]) -> None:
        """Join the fleet first (a ban in force must be known before the first request), then read
        the limits from the exchange."""
        try:
            await self.fleet.start()
        except BusUnavailable as exc:
            log.warning("governor not linked to the fleet yet (%s); frozen alone until it is", exc)
        for account, exchange in exchanges.items():
            try:
                if account == next(iter(exchanges)):
                    info = await exchange.exchange_info()
                    limits = parse_rate_limits(list(info.get("rateLimits") or []))
                    self.governor.configure(limits)
                    log.info(
                        "exchange limits: weight %d/min, orders %d/10s %d/min",
                        limits.weight_1m,
                        limits.orders_10s,
                        limits.orders_1m,
                    )
                rows = await exchange.order_rate_limits()
                if isinstance(rows, list) and rows:
                    self.governor.configure_account(account, parse_rate_limits(rows, self.governor.limits))
            except ExchangeError as exc:
                # The documented limits stay (2400/300/1200); the headers correct them as they come.
                log.info("could not read the limits of account %s from the exchange: %s", account, exc)

    async def joined(self) -> None:
        """This worker consumes now: count the fleet again, so its share is right from the start."""
        await self.fleet.refresh()

    async def close(self) -> None:
        await self.fleet.close()

    def _broadcast(self, freeze: Freeze) -> None:
        log.warning(
            "exchange rate limit (HTTP %s): fleet frozen until %d: %s", freeze.status, freeze.until_ms, freeze.reason
        )
        task = asyncio.get_running_loop().create_task(self.fleet.publish_freeze(freeze.to_json()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _received(self, raw: dict[str, Any]) -> None:
        freeze = Freeze.from_json(raw)
        if freeze.origin != self.name:
            self.governor.freeze(freeze, broadcast=False)
