"""`aiqt mcp`: AIQT's tools for AI agents, as an MCP server (the official `mcp` SDK, v2).

Why it is a client of the gateway: an agent must meet every rule a REST client meets — the key's
signature and scopes, the account's risk limits, the kill switch, idempotency — and the only way to
be sure nothing is skipped is to go through the same front door. Every tool call here becomes a
signed REST request made with `aiqt.client`; nothing talks to the bus or the exchange directly.

Two transports, one tool table:

* stdio — an MCP host runs `aiqt mcp` with `AIQT_URL`, `AIQT_API_KEY`, `AIQT_API_SECRET` in its
  environment; every call is signed with that key.
* Streamable HTTP at `/mcp` on the gateway — `aiqt gateway` composes it in (the gateway may not
  import `aiqt`; it serves an ASGI app handed to it). A caller sends `Authorization: Bearer
  <token>`, where the token names one of the gateway's client keys and proves knowledge of its
  secret (`bearer_token`); the tool calls are then signed with that key, in process, through the
  gateway app itself. So a token can do exactly what its key can, no more.

Why the low-level `Server` and not `MCPServer`: the tools' input schemas are the command registry's
payload schemas (the same patterns, enums and bounds the gateway enforces), and their output schemas
the registry's reply models; `MCPServer` derives schemas from Python signatures instead.

Money stays exact: a JSON number an agent sends arrives as a float, and is turned into a Decimal from
its shortest repr (the digits the agent wrote) before the payload model sees it; the text a model
reads is the gateway's reply with its digits.
"""

from __future__ import annotations

import contextvars
import copy
import hashlib
import hmac
import logging
import math
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import mcp_types as types
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, ConfigDict, Field

from aiqt.client import AsyncAiqtClient, Reply
from schemas import codec, errors
from schemas.enums import CommandType
from schemas.registry import COMMANDS
from schemas.validation import InvalidCommand, parse_payload

log = logging.getLogger("aiqt.mcp")

SERVER_NAME = "aiqt"
#: The Idempotency-Key rule of the gateway (gateway/idempotency.py), repeated in the tool schemas.
KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
_KEY = re.compile(KEY_PATTERN)
#: Paths the kill-switch tools call (the guard's endpoints; not bus commands, so not in the registry).
HALT_PATH = "/api/account/halt"
RESUME_PATH = "/api/account/resume"
COMMAND_STATUS_PATH = "/api/commands/{idempotencyKey}"

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


# --- calling a tool ------------------------------------------------------------------------------


class ToolRefused(Exception):
    """A call refused before it was sent: the message the model reads."""


def _exact(value: Any) -> Any:
    """A JSON number the agent sent, as the Decimal it wrote (floats never reach a payload)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ToolRefused("numbers must be finite")
        return Decimal(repr(value))
    return value


def _jsonable(value: Any) -> Any:
    """Reply data for `structured_content`: JSON numbers stay JSON numbers (a Decimal would be written as a
    string there, against the output schema). The text content keeps the exact digits."""
    if isinstance(value, Decimal):  # codec.loads reads only numbers with a fraction as Decimal
        return float(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, Any] | None
    body: dict[str, Any] | None
    key: str | None


def build_request(tool: ToolDef, arguments: Mapping[str, Any]) -> Request:
    """The REST request of a tool call, with the arguments checked by the same rules the gateway applies.
    Writes get an idempotency key (the one given, or a new one)."""
    args = {name: _exact(value) for name, value in arguments.items()}
    key: str | None = None
    if tool.write:
        given = args.pop("idempotencyKey", None)
        if given is not None and not isinstance(given, str):
            raise ToolRefused("idempotencyKey: must be a string")
        key = given or f"mcp-{uuid.uuid4().hex}"
        if not _KEY.fullmatch(key):
            raise ToolRefused("idempotencyKey: 1 to 64 characters of A-Z a-z 0-9 _ . : -")
    try:
        if tool.command is not None:
            model: BaseModel = parse_payload(tool.command, args)
        else:
            model = tool.payload.model_validate(args)
    except InvalidCommand as exc:
        raise ToolRefused(exc.msg) from exc
    except ValueError as exc:  # pydantic's ValidationError
        raise ToolRefused(str(exc)) from exc
    values = {k: v for k, v in model.model_dump().items() if v is not None}
    path = tool.path.format(**{name: values.pop(name) for name in tool.path_fields})
    if tool.method in ("POST", "PATCH", "PUT"):
        return Request(tool.method, path, None, values, key)
    return Request(tool.method, path, values or None, None, key)


def _guidance(reply: Reply, key: str | None) -> str:
    """What the model should do next, after a refusal or an unknown outcome."""
    if reply.code == errors.TIMEOUT:
        if key:
            return (
                f" The outcome is unknown: do not send a new order. Call command_status with idempotencyKey "
                f"'{key}', or repeat this call with idempotencyKey '{key}'."
            )
        return " The outcome is unknown; repeating this read is safe."
    if reply.code == errors.UNAVAILABLE:
        return f" Nothing was executed; retry later{_same_key(key)}."
    if reply.code == errors.RATE_LIMITED:
        after = reply.headers.get("retry-after")
        return f" Rate limited: wait {after or 'a few'} s, then retry{_same_key(key)}."
    if reply.code == errors.CONFLICT:
        return f" The same command is still running; retry{_same_key(key)} to get its outcome."
    return ""


def _same_key(key: str | None) -> str:
    return f" with idempotencyKey '{key}'" if key else ""


def _result(reply: Reply, key: str | None) -> types.CallToolResult:
    structured = {"code": reply.code, "msg": reply.msg, "data": _jsonable(reply.data), "idempotencyKey": key}
    if reply.ok:
        exact = codec.dumps({"code": reply.code, "msg": reply.msg, "data": reply.data, "idempotencyKey": key})
        return types.CallToolResult(
            content=[types.TextContent(text=exact.decode())], structured_content=structured, is_error=False
        )
    text = f"Refused (code {reply.code}): {reply.msg}.{_guidance(reply, key)}"
    if key:
        text += f" [idempotencyKey {key}]"
    return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=structured, is_error=True)


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)


#: Gives the signed client of the current call (one per process over stdio, one per bearer token over HTTP).
ClientFor = Callable[[], AsyncAiqtClient]


async def call_tool(client: AsyncAiqtClient, name: str, arguments: Mapping[str, Any]) -> types.CallToolResult:
    """Run one tool: check the arguments, send the REST request, turn the reply into a tool result."""
    tool = TOOLS_BY_NAME.get(name)
    if tool is None:
        return _error(f"Unknown tool {name!r}; the tools are: {', '.join(TOOLS_BY_NAME)}")
    try:
        req = build_request(tool, arguments)
    except ToolRefused as exc:
        return _error(f"Invalid arguments: {exc}. Nothing was sent.")
    try:
        reply = await client.request(req.method, req.path, req.params, req.body, idempotency_key=req.key)
    except httpx.ConnectError as exc:
        log.warning("cannot reach the gateway for %s: %s", name, exc)
        return _error(f"Cannot reach the AIQT gateway; nothing was sent. Retry later{_same_key(req.key)}.")
    except httpx.HTTPError as exc:  # a timeout or a connection lost after sending: the outcome is unknown
        log.warning("no answer from the gateway for %s: %r", name, exc)
        if req.key:
            return _error(
                f"No answer from AIQT ({type(exc).__name__}); the outcome is unknown. Do not send a new order: call "
                f"command_status with idempotencyKey '{req.key}', or repeat this call with idempotencyKey "
                f"'{req.key}'."
            )
        return _error(f"No answer from AIQT ({type(exc).__name__}); repeating this read is safe.")
    return _result(reply, req.key)


def build_server(client_for: ClientFor, *, name: str = SERVER_NAME) -> Server[Any]:
    """The MCP server: the tool table above, each call signed by `client_for()`'s key."""
    listed = types.ListToolsResult(tools=[tool.definition() for tool in TOOLS])

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return listed

    async def on_call(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            client = client_for()
        except LookupError:
            return _error("Not authenticated: send Authorization: Bearer <token> (see `aiqt mcp-token`).")
        return await call_tool(client, params.name, params.arguments or {})

    return Server(
        name,
        version="0.1.0",
        title="AIQT — Binance USDⓈ-M futures",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=on_call,
    )


# --- stdio -------------------------------------------------------------------------------------


async def serve_stdio(url: str, api_key: str, api_secret: str, *, timeout: float = 30.0) -> None:
    """Serve MCP over stdin/stdout, every call signed with this key (what `aiqt mcp` runs)."""
    from mcp.server.stdio import stdio_server

    async with AsyncAiqtClient(url, api_key, api_secret, timeout=timeout) as client:
        server = build_server(lambda: client)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())


# --- Streamable HTTP on the gateway ---------------------------------------------------------------

BEARER_CONTEXT = b"aiqt-mcp-bearer-v1\n"


def bearer_token(api_key: str, api_secret: str) -> str:
    """The bearer token of an API key for `/mcp`: `<api key>.<hex HMAC-SHA256(secret, label + key)>`.

    Derived, not stored: nothing new to configure, rotate or leak beside the key pair, and the gateway
    checks it with the secret it already has. It does not reveal the secret, but it is as powerful as
    the key (whoever holds it trades with the key's scopes): keep it like the secret. Rotating the
    secret revokes it."""
    mac = hmac.new(api_secret.encode(), BEARER_CONTEXT + api_key.encode(), hashlib.sha256).hexdigest()
    return f"{api_key}.{mac}"


@dataclass(frozen=True)
class KeyPair:
    key: str
    secret: str


_caller: contextvars.ContextVar[AsyncAiqtClient] = contextvars.ContextVar("aiqt_mcp_caller")

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class BearerAuth:
    """ASGI middleware in front of the SDK's Streamable HTTP app: a valid bearer token selects the signed
    client of its key for the tool calls of this request (the SDK carries context variables into its
    handlers); anything else gets 401 in the gateway's envelope."""

    def __init__(self, app: ASGIApp, keys: Sequence[KeyPair], client_of: Callable[[KeyPair], AsyncAiqtClient]) -> None:
        self.app = app
        self._keys = {k.key: k for k in keys}
        self._client_of = client_of

    def verify(self, header: str | None) -> KeyPair | None:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        key, dot, _mac = token.strip().rpartition(".")
        pair = self._keys.get(key) if dot else None
        if pair is None or not hmac.compare_digest(bearer_token(pair.key, pair.secret), token.strip()):
            return None
        return pair

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        pair = self.verify(headers.get("authorization"))
        if pair is None:
            body = codec.envelope(errors.UNAUTHORIZED, "Invalid or missing bearer token: Authorization: Bearer <token>")
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b'Bearer realm="aiqt"'),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        token = _caller.set(self._client_of(pair))
        try:
            await self.app(scope, receive, send)
        finally:
            _caller.reset(token)


#: Hosts the /mcp endpoint answers to besides loopback (DNS-rebinding guard), comma-separated: "gw.example:*".
ALLOWED_HOSTS_ENV = "AIQT_MCP_ALLOWED_HOSTS"


def transport_security(extra_hosts: Sequence[str] = ()) -> TransportSecuritySettings:
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", *extra_hosts]
    origins = [f"http://{h}" for h in hosts] + [f"https://{h}" for h in extra_hosts]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


@dataclass
class HttpEndpoint:
    """The `/mcp` endpoint as the gateway mounts it: an ASGI app and the lifespan it needs."""

    app: ASGIApp
    lifespan: Callable[[], Any]


def http_endpoint(
    gateway_app: Any,
    keys: Sequence[KeyPair],
    *,
    path: str = "/mcp",
    extra_hosts: Sequence[str] | None = None,
) -> HttpEndpoint:
    """The Streamable HTTP endpoint for a gateway app: tool calls go to `gateway_app` in process (through
    httpx's ASGI transport, so through its auth, scopes, limits and idempotency), signed with the key
    the bearer token names."""
    if extra_hosts is None:
        extra_hosts = [h.strip() for h in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",") if h.strip()]
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway_app), base_url="http://aiqt-gateway")
    clients: dict[str, AsyncAiqtClient] = {}

    def client_of(pair: KeyPair) -> AsyncAiqtClient:
        client = clients.get(pair.key)
        if client is None:
            client = clients[pair.key] = AsyncAiqtClient("http://aiqt-gateway", pair.key, pair.secret, http=http)
        return client

    server = build_server(_caller.get)
    starlette = server.streamable_http_app(
        streamable_http_path=path,
        stateless_http=True,  # any gateway process can answer any request: no sticky sessions
        json_response=True,  # one JSON answer per call; these tools neither stream nor ask back
        transport_security=transport_security(extra_hosts),
    )

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with server.session_manager.run():
            try:
                yield
            finally:
                await http.aclose()

    return HttpEndpoint(BearerAuth(starlette, keys, client_of), lifespan)


def gateway_mount(keys: Sequence[KeyPair], *, path: str = "/mcp") -> Callable[[Any], Any]:
    """What `aiqt gateway` hands to `gateway.app.create_app(mounts=...)`: the `/mcp` endpoint of that app."""
    from gateway.app import Mounted

    def factory(app: Any) -> Mounted:
        endpoint = http_endpoint(app, keys, path=path)
        return Mounted(path, endpoint.app, endpoint.lifespan)

    return factory
