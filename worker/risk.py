"""Risk limits per account (`AIQT_RISK`), checked by the worker before an order reaches the exchange.

Why in the worker and not the gateway: an outside AMQP publisher never passes through the gateway,
and a limit that only REST callers meet is no limit. The worker is the one place every opening order
goes through, so it is bound there.

Why the figures come from the exchange and not from a local ledger: the 24 h notional and the order
rate must hold across every worker and survive their restarts. The exchange already keeps the truth
(the account's trades, its positions, the mark price), so the worker reads it when it checks
(`worker.commands.orders`) and needs no store of its own. This module is the pure part: given those
figures, may this order go? Every refusal names the limit, its value and the order's value.

What is never limited: closing (close_market, a reduce-only order), cancelling and halting. A
limit exists to stop risk from growing, never to trap a position that is already open.

Money is `Decimal` throughout; notionals are in USDT at the mark price.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas import errors

#: The window of maxDailyNotional (rolling, not a calendar day) and of maxOrdersPerMinute.
DAY_MS = 24 * 60 * 60 * 1000
MINUTE_MS = 60 * 1000


class RiskLimits(BaseModel):
    """One account's limits. Every limit is optional; an account without an entry has none."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    maxOrderNotional: Decimal | None = Field(None, gt=0, description="USDT per order, at the mark price")
    maxPositionNotional: Decimal | None = Field(
        None, gt=0, description="USDT per symbol (one position side), after the order, at the mark price"
    )
    maxLeverage: int | None = Field(None, ge=1, le=125, description="Highest leverage that may be set or opened at")
    symbols: frozenset[str] | None = Field(None, description="The only symbols that may be opened (allowlist)")
    maxOrdersPerMinute: int | None = Field(None, ge=1, description="Orders of the account in the last 60 s")
    maxDailyNotional: Decimal | None = Field(
        None, gt=0, description="USDT traded in the last 24 h (rolling), this order included"
    )
    reduceOnly: bool = Field(False, description="Only closing orders: every opening order is refused")

    @property
    def needs_trades(self) -> bool:
        """Whether checking an order needs the account's recent trades from the exchange."""
        return self.maxDailyNotional is not None or self.maxOrdersPerMinute is not None

    @property
    def needs_position(self) -> bool:
        """Whether checking an order needs the mark price and the position (positionRisk)."""
        return any(x is not None for x in (self.maxOrderNotional, self.maxPositionNotional, self.maxLeverage))


class RiskRefused(Exception):
    """An order over a limit: the reply is HTTP 400 with this message."""

    def __init__(self, limit: str, msg: str) -> None:
        super().__init__(msg)
        self.limit = limit
        self.msg = msg
        self.code = errors.BAD_REQUEST


def usdt(value: Decimal) -> str:
    """12000 → "12,000"; 12000.50 → "12,000.5": exact digits, thousands grouped, never via float."""
    return format(value.normalize(), ",f")


@dataclass(frozen=True)
class Trade:
    """One of the account's trades, as far as the limits care."""

    time: int  # ms, exchange clock
    order_id: int
    quote_qty: Decimal  # price × quantity, USDT


@dataclass(frozen=True)
class OpeningOrder:
    """An order that may add to a position, with what the exchange said about its symbol."""

    symbol: str
    quantity: Decimal
    #: +1 if it adds to the long side (or reduces a short in one-way mode), -1 for the short side.
    direction: int
    mark_price: Decimal | None = None
    #: The signed position amount of the side this order trades, before it.
    position: Decimal = Decimal(0)
    #: The symbol's current leverage at the exchange.
    leverage: int | None = None

    @property
    def notional(self) -> Decimal:
        assert self.mark_price is not None
        return self.quantity * self.mark_price


def check_static(limits: RiskLimits, symbol: str) -> None:
    """The limits that need nothing from the exchange: reduceOnly and the symbol allowlist."""
    if limits.reduceOnly:
        raise RiskRefused(
            "reduceOnly",
            "this account may only close positions (reduceOnly): an opening order is refused; "
            "send reduceOnly=true or use /api/order/close/market",
        )
    if limits.symbols is not None and symbol not in limits.symbols:
        allowed = ", ".join(sorted(limits.symbols)) or "none"
        raise RiskRefused("symbols", f"symbol {symbol} is not in this account's allowlist ({allowed}) (symbols)")


def check_opening(
    limits: RiskLimits, order: OpeningOrder, trades: Iterable[Trade] = (), *, now_ms: int | None = None
) -> None:
    """Raise RiskRefused if the order breaks any of the account's limits (checked in a fixed order:
    the cheapest and most fundamental first)."""
    check_static(limits, order.symbol)
    if limits.maxLeverage is not None and order.leverage is not None and order.leverage > limits.maxLeverage:
        raise RiskRefused(
            "maxLeverage",
            f"{order.symbol} is set to leverage {order.leverage}x, above this account's limit of "
            f"{limits.maxLeverage}x (maxLeverage); lower it with /api/position/leverage first",
        )
    if limits.needs_position and order.mark_price is None:
        # Fail closed: a notional that cannot be valued is not known to be under the limit.
        raise RiskRefused("maxOrderNotional", f"no mark price for {order.symbol}: the order cannot be valued")
    if limits.maxOrderNotional is not None and order.notional > limits.maxOrderNotional:
        raise RiskRefused(
            "maxOrderNotional",
            f"order notional {usdt(order.notional)} USDT exceeds this account's limit of "
            f"{usdt(limits.maxOrderNotional)} (maxOrderNotional)",
        )
    if limits.maxPositionNotional is not None:
        after = abs(order.position + order.direction * order.quantity) * (order.mark_price or 0)
        if after > limits.maxPositionNotional:
            raise RiskRefused(
                "maxPositionNotional",
                f"position notional after this order {usdt(after)} USDT in {order.symbol} exceeds this account's "
                f"limit of {usdt(limits.maxPositionNotional)} (maxPositionNotional)",
            )
    if limits.needs_trades:
        check_activity(limits, order, list(trades), now_ms)


def check_activity(limits: RiskLimits, order: OpeningOrder, trades: list[Trade], now_ms: int | None) -> None:
    """maxOrdersPerMinute and maxDailyNotional, from the account's trades at the exchange."""
    assert now_ms is not None, "activity limits need the exchange's time"
    if limits.maxOrdersPerMinute is not None:
        recent = {t.order_id for t in trades if t.time > now_ms - MINUTE_MS}
        if len(recent) + 1 > limits.maxOrdersPerMinute:
            raise RiskRefused(
                "maxOrdersPerMinute",
                f"{len(recent)} orders in the last minute; one more exceeds this account's limit of "
                f"{limits.maxOrdersPerMinute} (maxOrdersPerMinute)",
            )
    if limits.maxDailyNotional is not None:
        if order.mark_price is None:
            raise RiskRefused("maxDailyNotional", f"no mark price for {order.symbol}: the order cannot be valued")
        traded = sum((t.quote_qty for t in trades if t.time > now_ms - DAY_MS), Decimal(0))
        total = traded + order.notional
        if total > limits.maxDailyNotional:
            raise RiskRefused(
                "maxDailyNotional",
                f"notional traded in the last 24 h would be {usdt(total)} USDT ({usdt(traded)} traded + "
                f"{usdt(order.notional)} this order), exceeding this account's limit of "
                f"{usdt(limits.maxDailyNotional)} (maxDailyNotional)",
            )


def check_leverage(limits: RiskLimits, symbol: str, leverage: int) -> None:
    """position.leverage: raising a symbol's leverage above maxLeverage is refused (lowering never is)."""
    if limits.maxLeverage is not None and leverage > limits.maxLeverage:
        raise RiskRefused(
            "maxLeverage",
            f"leverage {leverage}x exceeds this account's limit of {limits.maxLeverage}x (maxLeverage)",
        )


def parse_limits(raw: dict[str, Any]) -> dict[str, RiskLimits]:
    """`AIQT_RISK` as JSON: {"<account>": {limits}}."""
    return {account: RiskLimits.model_validate(value) for account, value in raw.items()}
