"""Command payloads: the fields of each documented REST request, and what travels on the bus.

A command message body is `{"type": <CommandType>, "account": <name>, "payload": {...}}`; the
payload carries the same fields, with the same names, as the REST request. Payloads are frozen and
refuse unknown fields: a misspelt `stopLoss` must be an error, never a silently naked position.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from schemas.codec import ExponentDecimal
from schemas.enums import CommandType, Interval, MarginType, PositionDirection, Side

# Larger than any real order, small enough to refuse absurd input before it reaches the exchange:
# amounts below these many integer digits (quantity < 10^8, price < 10^11), and no more than
# MAX_DIGITS digits in all. Precision within that is the exchange's to judge (stepSize, tickSize).
QUANTITY_DIGITS = 8
PRICE_DIGITS = 11
MAX_DIGITS = 40
#: Binance order ids are signed 64-bit integers.
MAX_ORDER_ID = 2**63 - 1

#: Binance's rules for numbers in requests: ASCII digits, an optional fraction, nothing else. Python's
#: own parsers are laxer (`Decimal("1_0")` is 10, `int("٣")` is 3, `"²".isdigit()` is true).
DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
INTEGER_PATTERN = r"^-?[0-9]+$"
SYMBOL_PATTERN = r"^[A-Z0-9]{2,20}$"
_DECIMAL_TEXT = re.compile(DECIMAL_PATTERN)
_INTEGER_TEXT = re.compile(INTEGER_PATTERN)


def amount_pattern(integer_digits: int) -> str:
    """A positive ASCII decimal below 10^integer_digits, as a regular expression (what the OpenAPI
    document and the AMQP contract promise; the validator below enforces the same)."""
    whole = rf"0*[1-9][0-9]{{0,{integer_digits - 1}}}(\.[0-9]+)?"
    fraction = r"0+\.[0-9]*[1-9][0-9]*"
    return rf"^({whole}|{fraction})$"


def _plain_decimal(value: Any) -> Any:
    """A JSON number without exponent, or a string of ASCII digits with an optional fraction."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, ExponentDecimal):
        raise ValueError("must be written without an exponent, digit for digit")
    if isinstance(value, float):
        raise ValueError("must be an exact decimal, not a binary float")
    if isinstance(value, str):
        if len(value) > MAX_DIGITS or not _DECIMAL_TEXT.match(value):
            raise ValueError(f"must be a decimal number of at most {MAX_DIGITS} ASCII digits, like 0.01")
        return Decimal(value)
    return value


def _plain_integer(value: Any) -> Any:
    """A JSON integer, or a string of ASCII digits."""
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    if isinstance(value, str):
        if len(value) > MAX_DIGITS or not _INTEGER_TEXT.match(value):
            raise ValueError("must be an integer of ASCII digits")
        return int(value)
    if isinstance(value, ExponentDecimal):
        raise ValueError("must be written without an exponent")
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)  # 28.0 is an integer to JSON Schema, and so to AIQT
    if not isinstance(value, int):
        raise ValueError("must be an integer")
    return value


def _plain_bool(value: Any) -> Any:
    """JSON true/false, or the strings "true"/"false" as Binance writes them in a query."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError("must be true or false")


def _check_amount(integer_digits: int) -> Any:
    limit = Decimal(10) ** integer_digits

    def check(value: Decimal) -> Decimal:
        if not value.is_finite():
            raise ValueError("must be a finite number")
        if value <= 0:
            raise ValueError("must be greater than 0")
        if value >= limit:
            raise ValueError(f"must be less than {limit}")
        if len(value.as_tuple().digits) > MAX_DIGITS:
            raise ValueError(f"has more than {MAX_DIGITS} digits")
        return value

    return check


def _amount_schema(integer_digits: int, example: str) -> WithJsonSchema:
    """A positive amount below 10^integer_digits: an ASCII decimal string, or a plain JSON number."""
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": amount_pattern(integer_digits), "maxLength": MAX_DIGITS},
                {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 10**integer_digits},
            ],
            "examples": [example],
        }
    )


Symbol = Annotated[
    str,
    Field(pattern=SYMBOL_PATTERN, description="Contract symbol, e.g. BTCUSDT", examples=["BTCUSDT"]),
]
Quantity = Annotated[
    Decimal,
    BeforeValidator(_plain_decimal),
    AfterValidator(_check_amount(QUANTITY_DIGITS)),
    _amount_schema(QUANTITY_DIGITS, "0.01"),
]
Price = Annotated[
    Decimal,
    BeforeValidator(_plain_decimal),
    AfterValidator(_check_amount(PRICE_DIGITS)),
    _amount_schema(PRICE_DIGITS, "65000.5"),
]
# Bounds first, then the text check: pydantic writes the bounds into the JSON schema only this way round.
Limit = Annotated[int, Field(ge=1, le=1000), BeforeValidator(_plain_integer)]
OrderId = Annotated[int, Field(gt=0, le=MAX_ORDER_ID), BeforeValidator(_plain_integer)]
Leverage = Annotated[int, Field(ge=1, le=125), BeforeValidator(_plain_integer)]
Flag = Annotated[bool, BeforeValidator(_plain_bool)]


class Payload(BaseModel):
    """Base of every command payload."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class AccountSummary(Payload):
    """GET /api/account/summary — 账户综合信息查询."""

    symbol: Symbol | None = Field(None, description="交易对标识符，用于过滤持仓和活动订单")
    showZero: Flag = Field(False, description='是否显示数量为零的持仓 (传入 "true")')


class Klines(Payload):
    """GET /api/market/klines — K线历史数据."""

    symbol: Symbol = Field(description="交易对符号（基础币+报价币）")
    interval: Interval = Field(Interval.H1, description="K线间隔（支持标准Binance间隔）")
    limit: Limit = Field(500, description="返回数据条数（最大值1000）")


class FundingRate(Payload):
    """GET /api/market/funding-rate — 资金费率查询."""

    symbol: Symbol = Field(description="查询的交易对")
    limit: Limit | None = Field(None, description="返回的历史记录数量（1-1000）")


class CancelOrder(Payload):
    """DELETE /api/order/{orderId} — 取消订单 (a regular order or an SL/TP algo order)."""

    orderId: OrderId = Field(description="订单ID")
    symbol: Symbol = Field(description="交易对名称")


class ModifyOrder(Payload):
    """PATCH /api/order/{orderId} — 修改订单 (a resting LIMIT order)."""

    orderId: OrderId = Field(description="订单ID")
    symbol: Symbol = Field(description="交易对名称")
    price: Price = Field(description="新价格 (限价单必填)")
    quantity: Quantity = Field(description="新数量")
    side: Side = Field(description="原订单方向")


class OpenMarket(Payload):
    """POST /api/order/open/market — 市价开仓, with optional stop loss and take profit."""

    symbol: Symbol = Field(description="交易对符号")
    side: Side = Field(description="买卖方向 (BUY/SELL)")
    quantity: Quantity = Field(description="下单数量")
    reduceOnly: Flag = Field(False, description="是否只减仓（true=仅平仓，false=可开仓）")
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
    leverage: Leverage = Field(description="杠杆倍数 (1-125)")


class SetMarginMode(Payload):
    """POST /api/position/margin-mode — 设置保证金模式."""

    symbol: Symbol = Field(description="合约交易对")
    marginType: MarginType = Field(description="保证金模式：ISOLATED（逐仓）/ CROSSED（全仓）")


class Halt(Payload):
    """POST /api/account/halt — the kill switch: cancel every open order of the account (regular and
    SL/TP algo orders), with `flatten` also close every position at market, and refuse every opening
    order until `POST /api/account/resume`. Closes, cancels and reduce-only orders stay allowed."""

    flatten: Flag = Field(False, description="Also close every position at market (reduce-only)")


class Resume(Payload):
    """POST /api/account/resume — lift the account's halt: opening orders are accepted again."""


IdempotencyKey = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="The Idempotency-Key the command was sent with")
]
CommandId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


class CommandStatus(Payload):
    """GET /api/commands/{idempotencyKey} — what became of a command (the way to learn the outcome
    after a 504): the orders it placed, looked up at the exchange by their deterministic client ids.
    Never executes anything."""

    idempotencyKey: IdempotencyKey | None = Field(None, description="The Idempotency-Key of the command")
    commandId: CommandId = Field(
        description="The command id. REST: added by the gateway from the API key and the Idempotency-Key "
        "(never sent by the client). AMQP: the `message_id` the command was published with."
    )
    symbol: Symbol | None = Field(
        None,
        description="The command's symbol. Without it AIQT searches the symbols the account traded in the last "
        "7 days or holds positions or open orders in",
    )


class Ping(Payload):
    """system.ping — answered by the worker without any exchange call."""


class CommandMessage(BaseModel):
    """The body of a command on the bus. AMQP `message_id` carries the command id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: CommandType
    account: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
    payload: dict[str, Any] = Field(default_factory=dict)
