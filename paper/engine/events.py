"""Domain events the engine emits as accounts change, for observers such as the WebSocket
streams.

The engine does no I/O: it calls each listener synchronously, in the order the changes happen,
with live state objects. A listener must read what it needs during the call (the objects keep
changing afterwards) and must not block; the stream layer renders Binance JSON at once and
queues it. A failing listener is logged and never disturbs the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from ..models import ZERO, Account, Algo, Order, Position, Trade


@dataclass(frozen=True, slots=True)
class OrderChanged:
    """An order was placed (NEW), traded (TRADE, CALCULATED for liquidations), amended
    (AMENDMENT), cancelled (CANCELED) or expired (EXPIRED). `trade` is set for fills."""

    account: Account
    order: Order
    execution: str
    time: int
    trade: Trade | None = None


@dataclass(frozen=True, slots=True)
class AlgoChanged:
    """An algo order's status changed (its `status` says to what); `reason` for REJECTED."""

    account: Account
    algo: Algo
    time: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class BalanceChanged:
    """Wallet or positions changed (reason: ORDER, FUNDING_FEE, MARGIN_TYPE_CHANGE, …);
    `positions` lists only the positions that changed."""

    account: Account
    reason: str
    time: int
    positions: tuple[Position, ...] = ()
    symbol: str = ""
    balance_change: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class LeverageChanged:
    account: Account
    symbol: str
    leverage: int
    time: int


@dataclass(frozen=True, slots=True)
class MarginCalled:
    """The account's cross margin ratio crossed the margin-call threshold."""

    account: Account
    positions: tuple[Position, ...]
    cross_wallet: Decimal
    time: int


@dataclass(frozen=True, slots=True)
class Liquidated:
    """A liquidation order filled (the public forceOrder stream shows it)."""

    order: Order
    price: Decimal
    time: int


EngineEvent = OrderChanged | AlgoChanged | BalanceChanged | LeverageChanged | MarginCalled | Liquidated
Listener = Callable[[EngineEvent], None]
