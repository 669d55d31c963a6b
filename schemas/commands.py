"""Command payloads: the fields of each documented REST request, and what travels on the bus.

A command message body is `{"type": <CommandType>, "account": <name>, "payload": {...}}`; the
payload carries the same fields, with the same names, as the REST request. Payloads are frozen and
refuse unknown fields: a misspelt `stopLoss` must be an error, never a silently naked position.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from schemas.enums import CommandType, Interval, MarginType, PositionDirection, Side

# Larger than any real order, small enough to refuse absurd input before it reaches the exchange.
MAX_QUANTITY = Decimal("100000000")
MAX_PRICE = Decimal("100000000000")
MAX_DECIMALS = 12
#: Binance order ids are signed 64-bit integers.
MAX_ORDER_ID = 2**63 - 1


def _upper_symbol(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


def _check_amount(limit: Decimal) -> Any:
    def check(value: Decimal) -> Decimal:
        if not value.is_finite():
            raise ValueError("must be a finite number")
        if value <= 0:
            raise ValueError("must be greater than 0")
        if value > limit:
            raise ValueError(f"must not exceed {limit}")
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > MAX_DECIMALS:
            raise ValueError(f"has more than {MAX_DECIMALS} decimal places")
        return value

    return check


Symbol = Annotated[
    str,
    BeforeValidator(_upper_symbol),
    Field(pattern=r"^[A-Z0-9]{2,20}$", description="Contract symbol, e.g. BTCUSDT", examples=["BTCUSDT"]),
]
Quantity = Annotated[Decimal, BeforeValidator(_no_bool), AfterValidator(_check_amount(MAX_QUANTITY))]
Price = Annotated[Decimal, BeforeValidator(_no_bool), AfterValidator(_check_amount(MAX_PRICE))]


class Payload(BaseModel):
    """Base of every command payload."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class AccountSummary(Payload):
    """GET /api/account/summary — 账户综合信息查询."""

    symbol: Symbol | None = Field(None, description="交易对标识符，用于过滤持仓和活动订单")
    showZero: bool = Field(False, description='是否显示数量为零的持仓 (传入 "true")')


class Klines(Payload):
    """GET /api/market/klines — K线历史数据."""

    symbol: Symbol = Field(description="交易对符号（基础币+报价币）")
    interval: Interval = Field(Interval.H1, description="K线间隔（支持标准Binance间隔）")
    limit: int = Field(500, ge=1, le=1000, description="返回数据条数（最大值1000）")


class FundingRate(Payload):
    """GET /api/market/funding-rate — 资金费率查询."""

    symbol: Symbol = Field(description="查询的交易对")
    limit: int | None = Field(None, ge=1, le=1000, description="返回的历史记录数量（1-1000）")


class CancelOrder(Payload):
    """DELETE /api/order/{orderId} — 取消订单 (a regular order or an SL/TP algo order)."""

    orderId: int = Field(gt=0, le=MAX_ORDER_ID, description="订单ID")
    symbol: Symbol = Field(description="交易对名称")


class ModifyOrder(Payload):
    """PATCH /api/order/{orderId} — 修改订单 (a resting LIMIT order)."""

    orderId: int = Field(gt=0, le=MAX_ORDER_ID, description="订单ID")
    symbol: Symbol = Field(description="交易对名称")
    price: Price = Field(description="新价格 (限价单必填)")
    quantity: Quantity = Field(description="新数量")
    side: Side = Field(description="原订单方向")


class OpenMarket(Payload):
    """POST /api/order/open/market — 市价开仓, with optional stop loss and take profit."""

    symbol: Symbol = Field(description="交易对符号")
    side: Side = Field(description="买卖方向 (BUY/SELL)")
    quantity: Quantity = Field(description="下单数量")
    reduceOnly: bool = Field(False, description="是否只减仓（true=仅平仓，false=可开仓）")
    stopLoss: Price | None = Field(None, description="止损触发价 (标记价格)")
    takeProfit: Price | None = Field(None, description="止盈触发价 (标记价格)")


class CloseMarket(Payload):
    """POST /api/order/close/market — 市价平仓 (whole position, or `quantity`)."""

    symbol: Symbol = Field(description="交易对符号")
    positionSide: PositionDirection = Field(description="持仓方向 (LONG/SHORT)")
    quantity: Quantity | None = Field(None, description="平仓数量（不传时平全仓）")


class SetLeverage(Payload):
    """POST /api/position/leverage — 调整杠杆倍数."""

    symbol: Symbol = Field(description="合约交易对")
    leverage: int = Field(ge=1, le=125, description="杠杆倍数 (1-125)")


class SetMarginMode(Payload):
    """POST /api/position/margin-mode — 设置保证金模式."""

    symbol: Symbol = Field(description="合约交易对")
    marginType: MarginType = Field(description="保证金模式：ISOLATED（逐仓）/ CROSSED（全仓）")


class Ping(Payload):
    """system.ping — answered by the worker without any exchange call."""


PAYLOADS: dict[CommandType, type[Payload]] = {
    CommandType.ACCOUNT_SUMMARY: AccountSummary,
    CommandType.MARKET_KLINES: Klines,
    CommandType.MARKET_FUNDING_RATE: FundingRate,
    CommandType.ORDER_CANCEL: CancelOrder,
    CommandType.ORDER_MODIFY: ModifyOrder,
    CommandType.ORDER_OPEN_MARKET: OpenMarket,
    CommandType.ORDER_CLOSE_MARKET: CloseMarket,
    CommandType.POSITION_LEVERAGE: SetLeverage,
    CommandType.POSITION_MARGIN_MODE: SetMarginMode,
    CommandType.SYSTEM_PING: Ping,
}


class CommandMessage(BaseModel):
    """The body of a command on the bus. AMQP `message_id` carries the command id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: CommandType
    account: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
    payload: dict[str, Any] = Field(default_factory=dict)
