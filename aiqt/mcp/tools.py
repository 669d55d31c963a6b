"""The MCP tools: names, descriptions written for a model, input schemas from the command registry,
output schemas from its reply models, and annotations. See aiqt.mcp for why it is built this way."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
from pydantic import BaseModel, ConfigDict, Field

from schemas.enums import CommandType
from schemas.registry import COMMANDS

SERVER_NAME = "aiqt"
#: The Idempotency-Key rule of the gateway (gateway/idempotency.py), repeated in the tool schemas.
KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
KEY_RE = re.compile(KEY_PATTERN)
#: Paths the kill-switch tools call (the guard's endpoints; not bus commands, so not in the registry).
# The kill switch and command status: their routes, from the registry like every other tool's.
HALT_PATH = COMMANDS[CommandType.ACCOUNT_HALT].path
RESUME_PATH = COMMANDS[CommandType.ACCOUNT_RESUME].path
COMMAND_STATUS_PATH = COMMANDS[CommandType.COMMAND_STATUS].path

INSTRUCTIONS = """\
AIQT trades Binance USDⓈ-M perpetual futures for one account (the API key's). Symbols look like
BTCUSDT. Quantities are in the base asset (0.01 = 0.01 BTC), never in USDT; prices, balances and PnL
are in USDT. Send numbers as decimal strings ("0.01", "65000.5") to keep exact digits.
Every write tool returns an idempotencyKey. If a write times out or says the outcome is unknown,
never send it again with a new key: call command_status with the key, or repeat the identical call
with the same idempotencyKey; AIQT runs one key at most once. Refusals (risk limits, scopes, a halted
account, exchange rejections) come back as errors whose text says what to change."""

_RETRY = (
    "Idempotency: pass idempotencyKey (1-64 characters of A-Z a-z 0-9 _ . : -) or one is generated; "
    "the result returns it. If the call times out or its outcome is unknown (error 504, or no answer), "
    "do not call again with a new key: call command_status with this key, or repeat the identical call "
    "with the same idempotencyKey. A key is executed at most once and a retry answers the first outcome; "
    "a new key is a new order."
)

# --- tools ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolDef:
    """One MCP tool: what the model sees (name, description, schemas, hints) and the REST call behind it."""

    name: str
    title: str
    description: str
    method: str
    path: str
    #: The payload model the input schema is taken from and the arguments are checked against.
    payload: type[BaseModel]
    #: The reply's `data` model (output schema); None = any JSON.
    reply: type[BaseModel] | None
    annotations: types.ToolAnnotations
    #: Better words for the model than the API document's, per field (the constraints stay the registry's).
    fields: Mapping[str, str] = field(default_factory=dict)
    #: The registry's command, when there is one (its rules validate the arguments before sending).
    command: CommandType | None = None

    @property
    def write(self) -> bool:
        return self.method != "GET"

    @property
    def path_fields(self) -> tuple[str, ...]:
        return tuple(name for name in self.payload.model_fields if "{" + name + "}" in self.path)

    def input_schema(self) -> dict[str, Any]:
        schema = copy.deepcopy(self.payload.model_json_schema())
        schema.pop("title", None)
        schema["description"] = self.title
        props: dict[str, Any] = schema.setdefault("properties", {})
        for name, text in self.fields.items():
            props[name]["description"] = text
            props[name].pop("title", None)
        if self.write:
            props["idempotencyKey"] = {
                "type": "string",
                "pattern": KEY_PATTERN,
                "description": "Optional. Reuse the key of an earlier call to retry it safely; omitted = a new key.",
            }
        return schema

    def output_schema(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        defs: dict[str, Any] = {}
        if self.reply is not None:
            data = copy.deepcopy(self.reply.model_json_schema(mode="serialization"))
            defs = data.pop("$defs", {})
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {
                "code": {"type": "integer", "description": "200 on success"},
                "msg": {"type": "string"},
                "idempotencyKey": {
                    "type": ["string", "null"],
                    "description": "The key this call ran under (writes); retry with it, never with a new one",
                },
                "data": data,
            },
            "required": ["code", "msg", "data", "idempotencyKey"],
        }
        if defs:
            schema["$defs"] = defs
        return schema

    def definition(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.input_schema(),
            output_schema=self.output_schema(),
            annotations=self.annotations,
        )


class _Args(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HaltArgs(_Args):
    """Arguments of halt_trading (POST /api/account/halt)."""

    flatten: bool = Field(False, description="Also cancel every open order and close every position at market")


class ResumeArgs(_Args):
    """Arguments of resume_trading (POST /api/account/resume)."""


class CommandStatusArgs(_Args):
    """Arguments of command_status (GET /api/commands/{idempotencyKey})."""

    idempotencyKey: str = Field(pattern=KEY_PATTERN, description="The key a write tool returned")


def _from_registry(
    command: CommandType, name: str, title: str, description: str, hints: types.ToolAnnotations, **fields: str
) -> ToolDef:
    spec = COMMANDS[command]
    return ToolDef(
        name=name,
        title=title,
        description=description,
        method=spec.method,
        path=spec.path,
        payload=spec.payload,
        reply=spec.reply,
        annotations=hints,
        fields=fields,
        command=command,
    )


def _hints(
    title: str, *, read_only: bool = False, destructive: bool = False, idempotent: bool = False
) -> types.ToolAnnotations:
    if read_only:
        return types.ToolAnnotations(title=title, read_only_hint=True, open_world_hint=True)
    return types.ToolAnnotations(
        title=title,
        read_only_hint=False,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=True,
    )


_SYMBOL = "Perpetual contract symbol, upper case, e.g. BTCUSDT"
_QTY = 'Quantity in the base asset (0.01 = 0.01 BTC on BTCUSDT), not USDT; a decimal string like "0.01"'

TOOLS: tuple[ToolDef, ...] = (
    _from_registry(
        CommandType.ACCOUNT_SUMMARY,
        "account_summary",
        "Account summary",
        "Read the account: wallet balance, margin balance, available balance and unrealized PnL (USDT); open "
        "positions (quantity in the base asset, entry/mark/liquidation prices in USDT, leverage, margin mode, "
        "ROE in percent); open orders, including stop-loss (STOP_MARKET) and take-profit (TAKE_PROFIT_MARKET) "
        "orders, whose orderId is what cancel_order takes. Times are Unix milliseconds (UTC). Read-only.",
        _hints("Account summary", read_only=True),
        symbol="Only this symbol's positions and orders (e.g. BTCUSDT); omit for all",
        showZero="Also list positions of quantity 0",
    ),
    _from_registry(
        CommandType.MARKET_KLINES,
        "get_klines",
        "Candlesticks",
        "Candlesticks (OHLCV) of a perpetual, oldest first. time and closeTime are Unix milliseconds (UTC); "
        "open, high, low, close are prices in USDT; volume is in the base asset, quoteVolume in USDT. "
        "Ask only for the candles you need: limit 1-1000, default 500. Read-only.",
        _hints("Candlesticks", read_only=True),
        symbol=_SYMBOL,
        interval="Candle length: 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M (default 1h)",
        limit="How many candles, newest last (1-1000, default 500)",
    ),
    _from_registry(
        CommandType.MARKET_FUNDING_RATE,
        "get_funding_rate",
        "Funding rate",
        "The current funding rate of a perpetual as a fraction per funding period (0.0001 = 0.01 %; positive: "
        "longs pay shorts), when it was set and the next funding time (Unix ms, UTC); with limit, also that many "
        "past realised rates. Read-only.",
        _hints("Funding rate", read_only=True),
        symbol=_SYMBOL,
        limit="Also return this many past funding rates (1-1000); omit for the current rate only",
    ),
    _from_registry(
        CommandType.ORDER_OPEN_MARKET,
        "open_market",
        "Open a position at market (with stop loss / take profit)",
        "Open or add to a position with a MARKET order, optionally protected by a stop loss and a take profit. "
        "side BUY opens or adds to a long, SELL a short. quantity is in the base asset (0.01 BTC), not USDT: "
        "notional = quantity × price. stopLoss and takeProfit are trigger prices in USDT, compared with the mark "
        "price: for a long the stop loss is below the current price and the take profit above it; for a short "
        "the reverse. Each becomes a STOP_MARKET / TAKE_PROFIT_MARKET order that closes the whole position when "
        "triggered; the result lists the entry fill and both orders (with their orderIds). If the protection "
        "could not be placed, the result's data.protection says so and what AIQT did (closed the position, or "
        "kept it flagged). reduceOnly=true only reduces an existing position. " + _RETRY,
        _hints("Open a position at market", destructive=True),
        symbol=_SYMBOL,
        side="BUY (long) or SELL (short)",
        quantity=_QTY,
        reduceOnly="true: may only reduce an existing position, never open or increase one",
        stopLoss="Stop-loss trigger price in USDT (mark price); below the price for a BUY, above it for a SELL",
        takeProfit="Take-profit trigger price in USDT (mark price); above the price for a BUY, below it for a SELL",
    ),
    _from_registry(
        CommandType.ORDER_CLOSE_MARKET,
        "close_market",
        "Close a position at market",
        "Close a position with a MARKET order: all of it, or only quantity (base asset). positionSide is the "
        "position to close: LONG closes a long, SHORT a short. The result gives the fill price, the slippage "
        "and what remains of the position. " + _RETRY,
        _hints("Close a position at market", destructive=True),
        symbol=_SYMBOL,
        positionSide="LONG or SHORT: the position to close",
        quantity="Close only this much (base asset); omit to close the whole position",
    ),
    _from_registry(
        CommandType.ORDER_CANCEL,
        "cancel_order",
        "Cancel an order",
        "Cancel an open order by its orderId: a resting LIMIT order, or a stop-loss / take-profit order (their "
        "orderIds are in account_summary's activeOrders and in open_market's result). Cancelling a stop loss "
        "leaves its position unprotected. An order that is already gone answers 404 'Order does not exist'. " + _RETRY,
        _hints("Cancel an order", destructive=True, idempotent=True),
        orderId="The order's id (an integer)",
        symbol="The order's symbol, e.g. BTCUSDT",
    ),
    _from_registry(
        CommandType.ORDER_MODIFY,
        "modify_order",
        "Modify a LIMIT order",
        "Change the price (USDT) and quantity (base asset) of a resting LIMIT order; side is the order's own side "
        "(it cannot be changed). Market orders fill at once and stop-loss / take-profit orders cannot be "
        "modified: cancel those and place new ones. " + _RETRY,
        _hints("Modify a LIMIT order", destructive=True, idempotent=True),
        orderId="The order's id (an integer)",
        symbol="The order's symbol, e.g. BTCUSDT",
        price='New limit price in USDT, a decimal string like "65000.5"',
        quantity="New quantity in the base asset (" + '"0.01"' + " = 0.01 BTC on BTCUSDT)",
        side="The order's side as placed: BUY or SELL",
    ),
    _from_registry(
        CommandType.POSITION_LEVERAGE,
        "set_leverage",
        "Set leverage",
        "Set the initial leverage of a symbol (an integer 1-125; the exchange may allow less for large "
        "positions, and the result gives maxQty, the largest position at this leverage). Higher leverage "
        "means less margin and a liquidation price closer to the entry. Setting the value it has already "
        "is a success. " + _RETRY,
        _hints("Set leverage", destructive=True, idempotent=True),
        symbol=_SYMBOL,
        leverage="Leverage, an integer from 1 to 125",
    ),
    _from_registry(
        CommandType.POSITION_MARGIN_MODE,
        "set_margin_mode",
        "Set margin mode",
        "Set a symbol's margin mode: ISOLATED (each position has its own margin) or CROSSED (positions share "
        "the account's balance). The exchange refuses a change while the symbol has a position or open orders. "
        "Setting the mode it has already is a success ('Margin mode unchanged'). " + _RETRY,
        _hints("Set margin mode", destructive=True, idempotent=True),
        symbol=_SYMBOL,
        marginType="ISOLATED or CROSSED",
    ),
    ToolDef(
        name="command_status",
        title="Outcome of an earlier command",
        description="The outcome of an earlier write, by the idempotencyKey a write tool returned: whether it ran, "
        "its code and msg, and the orders it placed. Use it after a timeout or an unknown outcome before "
        "deciding anything; it never executes the command. Read-only.",
        method="GET",
        path=COMMAND_STATUS_PATH,
        payload=CommandStatusArgs,
        reply=None,
        annotations=types.ToolAnnotations(title="Command status", read_only_hint=True, open_world_hint=False),
    ),
    ToolDef(
        name="halt_trading",
        title="Kill switch: halt trading",
        description="Halt trading on this account at once: new positions and increases are refused until a "
        "resume; cancels and closes still work. flatten=true also cancels every open order and closes every "
        "position at market. Use it when something is going wrong (losses beyond plan, a loop placing orders, "
        "data that makes no sense). The key needs the scope to halt; a refusal says so. " + _RETRY,
        method="POST",
        path=HALT_PATH,
        payload=HaltArgs,
        reply=None,
        annotations=_hints("Halt trading", destructive=True, idempotent=True),
    ),
    ToolDef(
        name="resume_trading",
        title="Resume trading after a halt",
        description="Lift a halt so that new positions may be opened again. Only resume when the reason for the "
        "halt has been dealt with; the key needs the scope to resume, and a refusal says so. " + _RETRY,
        method="POST",
        path=RESUME_PATH,
        payload=ResumeArgs,
        reply=None,
        annotations=_hints("Resume trading", destructive=False, idempotent=True),
    ),
)

TOOLS_BY_NAME = {tool.name: tool for tool in TOOLS}
