"""Events: what happened at the exchange, pushed to every client the moment it happens.

Commands go in, events come out. The streamer turns Binance's user-data and market streams into
these and publishes them on the topic exchange `<namespace>.events`:

    <account>.<type>            order, position, balance, protection, margin_call, liquidation, stream
    market.<SYMBOL>.<stream>    markPrice, kline_<interval>

An account event's body is `{"type", "account", "seq", "time", "data"}`. `seq` increases by one per
account across streamer restarts and takeovers, so a consumer sees a gap; delivery is at least once,
and `seq` (or an order's id and status) lets a consumer drop a repeat. `data` uses the API
document's field names, with money as JSON numbers or strings exactly as the REST replies write it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.replies import Num, Str


class EventType(StrEnum):
    ORDER = "order"
    POSITION = "position"
    BALANCE = "balance"
    PROTECTION = "protection"
    MARGIN_CALL = "margin_call"
    LIQUIDATION = "liquidation"
    STREAM = "stream"


class EventData(BaseModel):
    model_config = ConfigDict(frozen=True)


class OrderEvent(EventData):
    """Every state change of a regular order or of an SL/TP (algo) order."""

    orderId: int
    clientOrderId: str
    symbol: str
    side: str
    type: str
    status: str
    price: Str
    avgPrice: Str
    origQty: Str
    executedQty: Str
    stopPrice: Str
    positionSide: str
    reduceOnly: bool
    updateTime: int
    #: True for an SL/TP order of the algo service (its id is the algo id, as in the account summary).
    algo: bool = False
    #: Binance's execution type (NEW, TRADE, CANCELED, EXPIRED, AMENDMENT, CALCULATED) or, for an algo
    #: order, its algo status (NEW, TRIGGERING, TRIGGERED, FINISHED, CANCELED, REJECTED, EXPIRED).
    execution: str = ""
    lastFilledQty: Str | None = None
    lastFilledPrice: Str | None = None
    commission: Str | None = None
    commissionAsset: str | None = None
    realizedPnl: Str | None = None


class PositionEvent(EventData):
    """A position as the account summary shows it; quantity 0 when it closed."""

    symbol: str
    positionSide: str
    direction: str
    quantity: Num
    entryPrice: Num
    unrealizedPnl: Num
    marginType: str


class BalanceEvent(EventData):
    currency: str
    balance: Num
    change: Num
    reason: str


class ProtectionEvent(EventData):
    """The stop loss or take profit of an AIQT command fired (its order filled)."""

    commandId: str | None = Field(description="The command that placed it; null if not an AIQT order")
    leg: str = Field(description="SL or TP")
    orderId: int
    clientOrderId: str
    symbol: str
    fillPrice: Str
    quantity: Str


class MarginCallEvent(EventData):
    symbol: str
    positionSide: str
    quantity: Num
    markPrice: Num
    unrealizedPnl: Num
    maintenanceMargin: Num
    marginType: str


class LiquidationEvent(EventData):
    symbol: str
    side: str
    orderId: int
    quantity: Str
    price: Str
    status: str


class StreamEvent(EventData):
    """The streamer's own news: connected, reconnected, resynced (and the gap the resync covered)."""

    status: str
    reason: str = ""
    gapFromTime: int | None = None
    gapToTime: int | None = None
    republished: int = 0


EVENT_DATA: dict[EventType, type[EventData]] = {
    EventType.ORDER: OrderEvent,
    EventType.POSITION: PositionEvent,
    EventType.BALANCE: BalanceEvent,
    EventType.PROTECTION: ProtectionEvent,
    EventType.MARGIN_CALL: MarginCallEvent,
    EventType.LIQUIDATION: LiquidationEvent,
    EventType.STREAM: StreamEvent,
}


class Event(BaseModel):
    """An account event, as published on the bus and sent to WebSocket clients."""

    model_config = ConfigDict(frozen=True)

    type: EventType
    account: str
    seq: int = Field(ge=1)
    time: int = Field(description="Milliseconds since the epoch: the exchange's event time")
    data: dict[str, Any]


class MarketEvent(BaseModel):
    """Market data: `market.<SYMBOL>.<stream>` (no seq: the latest value is what matters)."""

    model_config = ConfigDict(frozen=True)

    type: str = "market"
    stream: str
    symbol: str
    time: int
    data: dict[str, Any]
