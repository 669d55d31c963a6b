"""Enumerations shared by the REST API, the bus and the worker."""

from __future__ import annotations

from enum import StrEnum


class CommandType(StrEnum):
    """Routing keys on the `aiqt.commands` exchange: one per documented endpoint, plus ping."""

    ACCOUNT_SUMMARY = "account.summary"
    MARKET_KLINES = "market.klines"
    MARKET_FUNDING_RATE = "market.funding_rate"
    ORDER_CANCEL = "order.cancel"
    ORDER_MODIFY = "order.modify"
    ORDER_OPEN_MARKET = "order.open_market"
    ORDER_CLOSE_MARKET = "order.close_market"
    POSITION_LEVERAGE = "position.leverage"
    POSITION_MARGIN_MODE = "position.margin_mode"
    ACCOUNT_HALT = "account.halt"
    ACCOUNT_RESUME = "account.resume"
    COMMAND_STATUS = "command.status"
    SYSTEM_PING = "system.ping"


class Scope(StrEnum):
    """What an API key may do (`scopes` of an `AIQT_CLIENT_KEYS` entry). Each command needs one."""

    #: Account, market data, command status.
    READ = "read"
    #: Orders and positions: open, close, cancel, modify, leverage, margin mode.
    TRADE = "trade"
    #: The kill switch: halt and resume an account.
    ADMIN = "admin"


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class PositionDirection(StrEnum):
    """`positionSide` of the close-market request: which position to close."""

    LONG = "LONG"
    SHORT = "SHORT"


class MarginType(StrEnum):
    ISOLATED = "ISOLATED"
    CROSSED = "CROSSED"


class Interval(StrEnum):
    """Every kline interval Binance USDⓈ-M futures offers."""

    M1 = "1m"
    M3 = "3m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H2 = "2h"
    H4 = "4h"
    H6 = "6h"
    H8 = "8h"
    H12 = "12h"
    D1 = "1d"
    D3 = "3d"
    W1 = "1w"
    MO1 = "1M"
