"""Reply `data` of every command, and the envelope.

Field names and JSON types follow the API document: account, kline and funding figures are JSON
numbers; order objects carry Binance's strings. Both are Decimal in Python: `Num` is written as a
JSON number with the exact digits, `Str` as a string (see schemas.codec).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

#: Money written as a JSON number (exact digits, never via float).
Num = Annotated[Decimal, WithJsonSchema({"type": "number"})]
#: Money written as a JSON string, as Binance writes it ("0.030").
Str = Annotated[Decimal, PlainSerializer(lambda d: format(d, "f"), return_type=str), WithJsonSchema({"type": "string"})]


class Reply(BaseModel):
    model_config = ConfigDict(frozen=True)


class Envelope(Reply):
    """Every REST response and every bus reply: `{code, msg, data}`."""

    code: int
    msg: str
    data: Any = None


# --- account/summary ---------------------------------------------------------------------------


class AccountInfo(Reply):
    totalWalletBalance: Num
    totalUnrealizedProfit: Num
    totalMarginBalance: Num
    totalPositionInitialMargin: Num
    totalOpenOrderInitialMargin: Num
    availableBalance: Num
    maxWithdrawAmount: Num
    isHedgeMode: bool
    updateTime: int


class Balance(Reply):
    currency: str
    balance: Num
    available: Num
    unrealizedPnl: Num


class Position(Reply):
    symbol: str
    positionSide: str
    direction: str
    marginType: str
    leverage: int
    quantity: Num
    entryPrice: Num
    markPrice: Num
    liquidationPrice: Num
    marginUsed: Num
    unrealizedPnl: Num
    roe: Num


class ActiveOrder(Reply):
    orderId: int
    symbol: str
    positionSide: str
    price: Num
    origQty: Num
    executedQty: Num
    status: str
    type: str
    side: str
    time: int
    stopPrice: Num
    workingType: str


class AccountSummaryData(Reply):
    accountInfo: AccountInfo
    balances: list[Balance]
    positions: list[Position]
    activeOrders: list[ActiveOrder]


# --- market ------------------------------------------------------------------------------------


class Kline(Reply):
    time: int
    open: Num
    high: Num
    low: Num
    close: Num
    volume: Num
    closeTime: int
    quoteVolume: Num


class KlinesData(Reply):
    symbol: str
    interval: str
    klines: list[Kline]


class CurrentRate(Reply):
    rate: Num
    time: int
    nextFundingTime: int


class HistoryRate(Reply):
    rate: Num
    time: int
    realized: Num


class FundingRateData(Reply):
    symbol: str
    currentRate: CurrentRate
    historyRates: list[HistoryRate] | None = None


# --- orders ------------------------------------------------------------------------------------


class Order(Reply):
    """A Binance order object as the API document shows it (SL/TP algo orders mapped onto it)."""

    orderId: int
    symbol: str
    status: str
    clientOrderId: str
    price: Str
    avgPrice: Str
    origQty: Str
    executedQty: Str
    cumQty: Str
    cumQuote: Str
    timeInForce: str
    type: str
    reduceOnly: bool
    closePosition: bool
    side: str
    positionSide: str
    stopPrice: Str
    workingType: str
    priceProtect: bool
    origType: str
    priceMatch: str
    selfTradePreventionMode: str
    goodTillDate: int
    updateTime: int


class CancelData(Reply):
    orderId: int
    status: str


class Protection(Reply):
    """How the stop loss / take profit of an entry ended, when it did not end well."""

    status: str  # "FAILED" | "UNKNOWN"
    policy: str  # "close" | "keep"
    failedLegs: list[str]
    error: str
    closeOrder: Order | None = None


class OpenMarketData(Reply):
    market: Order
    stopLoss: Order | None
    takeProfit: Order | None
    protection: Protection | None = None


class CloseMarketData(Order):
    mode: str
    executedPrice: Num
    slippage: str
    remainingPosition: str
    positionClosed: bool


class LeverageData(Reply):
    symbol: str
    leverage: int
    maxQty: str


class MarginModeData(Reply):
    symbol: str
    marginType: str
    success: bool


class PingData(Reply):
    pong: bool
    worker: str
    time: int


# --- guard rails: halt / resume / command status -----------------------------------------------


class CanceledOrder(Reply):
    """An order the halt cancelled: a regular order, or an SL/TP (algo) order (`algo` true, `orderId` =
    its algoId)."""

    orderId: int
    symbol: str
    clientOrderId: str
    type: str
    algo: bool


class ClosedPosition(Reply):
    """A position the halt closed with a reduce-only market order."""

    symbol: str
    positionSide: str
    quantity: Str
    orderId: int
    clientOrderId: str
    status: str


class HaltData(Reply):
    halted: bool
    flatten: bool
    canceledOrders: list[CanceledOrder]
    closedPositions: list[ClosedPosition]


class ResumeData(Reply):
    halted: bool
    wasHalted: bool


class CommandOrder(Reply):
    """An order a command placed, found at the exchange by its client id."""

    leg: str  # "entry" | "stopLoss" | "takeProfit" | "close" | "unwind"
    algo: bool
    order: Order


class CommandStatusData(Reply):
    commandId: str
    idempotencyKey: str | None
    found: bool
    orders: list[CommandOrder]
    #: The symbols whose orders were looked up (the given one, or the account's recent ones).
    searchedSymbols: list[str]
