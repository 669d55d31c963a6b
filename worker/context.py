"""What every handler is given: the account (its exchange endpoints, policy, cached position mode)
and the run (which command, and whether an earlier run of it may have acted already).

A command can run more than once: RabbitMQ redelivers it when a worker dies mid-command, and a
client retries with the same Idempotency-Key. `Run` carries what a handler needs to make a rerun
safe; the client ids derived from `command_id` (worker.ids) let it find what an earlier run did.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from bus.halts import Halts
from schemas import errors
from worker.binance.client import FapiClient
from worker.binance.endpoints import Exchange
from worker.marketdata import MarketData
from worker.outcome import Refusal
from worker.risk import RiskLimits

#: Seconds the account's position mode (hedge or one-way) is trusted before it is asked again.
HEDGE_MODE_TTL = 30.0
#: The dead-letter reason of a command that expired in the queue and was not executed.
EXPIRED_REASON = "deadline exceeded before execution; not executed"


@dataclass
class AccountContext:
    """What a handler needs for one account."""

    name: str
    exchange: Exchange
    #: When SL/TP cannot be placed after the entry filled (worker.protection).
    protection_policy: Literal["close", "keep"]
    #: Records (account, client id, command id, leg) of an SL/TP leg before it is sent, so that the
    #: streamer's `protection` event can name the command (bus.events.OrderIndex); None in unit tests.
    record_leg: Callable[[str, str, str, str], Awaitable[None]] | None = None
    #: The account's risk limits (AIQT_RISK); None: no limits.
    risk: RiskLimits | None = None
    #: The kill switch's state on the bus. A worker always has one (it fails closed until connected);
    #: None only where there is no bus at all (unit tests): then there is no kill switch either.
    halts: Halts | None = None
    #: Market data from cache and live state, shared by every account of the worker.
    market: MarketData = field(default_factory=MarketData)
    _hedge: tuple[bool, float] | None = None

    @property
    def client(self) -> FapiClient:
        """The signed client under the endpoints (its clock, its recvWindow); tests read it."""
        return self.exchange.client

    async def hedge_mode(self, *, fresh: bool = False) -> bool:
        now = time.monotonic()
        if fresh or self._hedge is None or now - self._hedge[1] > HEDGE_MODE_TTL:
            self._hedge = (await self.exchange.hedge_mode(), now)
        return self._hedge[0]


@dataclass(frozen=True)
class Run:
    """One execution of a command."""

    command_id: str
    redelivered: bool
    #: Expired in the queue after an earlier run crashed: only finish what that run started.
    complete_only: bool = False
    #: Proven the first run of this command id anywhere (bus/marker.py): no earlier run can have
    #: placed anything, so orders are sent without looking them up first.
    first_attempt: bool = False


def not_executed(run: Run) -> Refusal:
    """The answer for an expired command whose crashed earlier run had sent nothing."""
    return Refusal(
        errors.TIMEOUT,
        f"Command {run.command_id} expired in the queue; it was not executed",
        dead_letter=EXPIRED_REASON,
    )
