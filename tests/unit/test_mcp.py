"""The MCP server's tool table and its error paths, against a gateway stand-in (`httpx.MockTransport`),
through the SDK's own in-memory client.

What the stand-in answers is the gateway's envelope; so these tests pin down how every kind of
refusal reaches the model — a risk limit, a scope, a route the gateway does not have yet (the kill
switch before the guard's endpoints are merged), an unknown outcome — whatever produces it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp.client.client import Client

from aiqt.client import AsyncAiqtClient
from aiqt.mcp import TOOLS, BearerAuth, KeyPair, bearer_token, build_server
from schemas import codec
from schemas.enums import CommandType
from schemas.registry import COMMANDS

EXPECTED = {
    "account_summary",
    "get_klines",
    "get_funding_rate",
    "open_market",
    "close_market",
    "cancel_order",
    "modify_order",
    "set_leverage",
    "set_margin_mode",
    "command_status",
    "halt_trading",
    "resume_trading",
}

Handler = Callable[[httpx.Request], httpx.Response]


class Gateway:
    """Records each request and answers with `answer(request)`."""

    def __init__(self, answer: Handler) -> None:
        self.requests: list[httpx.Request] = []
        self._answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._answer(request)


ORDER = {
    "orderId": 1,
    "symbol": "BTCUSDT",
    "status": "FILLED",
    "clientOrderId": "x",
    "price": "0",
    "avgPrice": "95000",
    "origQty": "0.1",
    "executedQty": "0.1",
    "cumQty": "0.1",
    "cumQuote": "9500",
    "timeInForce": "GTC",
    "type": "MARKET",
    "reduceOnly": False,
    "closePosition": False,
    "side": "BUY",
    "positionSide": "BOTH",
    "stopPrice": "0",
    "workingType": "CONTRACT_PRICE",
    "priceProtect": False,
    "origType": "MARKET",
    "priceMatch": "NONE",
    "selfTradePreventionMode": "NONE",
    "goodTillDate": 0,
    "updateTime": 1,
}


def _text(result: Any) -> str:
    """The text a model reads of a tool result."""
    (block,) = result.content
    assert isinstance(block, types.TextContent)
    return block.text


def envelope(status: int, code: int, msg: str, data: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, content=codec.envelope(code, msg, data), headers=headers)


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[Handler], Any]]:
    clients: list[AsyncAiqtClient] = []

    def make(answer: Handler) -> tuple[Client, Gateway]:
        gateway = Gateway(answer)
        http = httpx.AsyncClient(transport=httpx.MockTransport(gateway))
        client = AsyncAiqtClient("http://gw.test", "key-unit-test", "secret-unit-test", http=http)
        clients.append(client)
        return Client(build_server(lambda: client)), gateway

    yield make
    for c in clients:
        await c.aclose()


async def test_the_twelve_tools_with_registry_schemas_and_honest_hints(connect: Any) -> None:
    mcp, _ = connect(lambda r: envelope(200, 200, "ok"))
    async with mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
    assert set(tools) == EXPECTED

    # input schemas are the registry's payload schemas: the gateway's patterns, enums and bounds
    open_props = tools["open_market"].input_schema["properties"]
    registry = COMMANDS[CommandType.ORDER_OPEN_MARKET].payload.model_json_schema()["properties"]
    assert open_props["quantity"]["anyOf"] == registry["quantity"]["anyOf"]
    assert open_props["stopLoss"]["anyOf"] == registry["stopLoss"]["anyOf"]
    assert tools["open_market"].input_schema["required"] == ["symbol", "side", "quantity"]
    assert tools["open_market"].input_schema["additionalProperties"] is False
    assert "base asset" in open_props["quantity"]["description"]
    assert tools["set_leverage"].input_schema["properties"]["leverage"]["maximum"] == 125
    assert tools["get_klines"].input_schema["properties"]["limit"]["maximum"] == 1000

    # every write takes an optional idempotency key and says what to do after a timeout
    for name in EXPECTED - {"account_summary", "get_klines", "get_funding_rate", "command_status"}:
        schema = tools[name].input_schema
        assert "idempotencyKey" in schema["properties"], name
        assert "idempotencyKey" not in schema.get("required", []), name
        assert "command_status" in (tools[name].description or ""), name
    assert tools["command_status"].input_schema["required"] == ["idempotencyKey"]

    # output schemas: the envelope around the registry's reply model
    out = tools["open_market"].output_schema
    assert out is not None and set(out["required"]) == {"code", "msg", "data", "idempotencyKey"}
    assert set(out["properties"]["data"]["properties"]) >= {"market", "stopLoss", "takeProfit"}

    hints = {name: tools[name].annotations for name in EXPECTED}
    for name in ("account_summary", "get_klines", "get_funding_rate", "command_status"):
        assert hints[name] is not None and hints[name].read_only_hint is True, name
    for name in ("open_market", "close_market", "cancel_order", "modify_order", "halt_trading"):
        h = hints[name]
        assert h is not None and h.read_only_hint is False and h.destructive_hint is True, name
    # the key is optional, so two calls without one are two orders: not idempotent by the spec's meaning
    assert hints["open_market"].idempotent_hint is False
    assert hints["close_market"].idempotent_hint is False
    assert hints["set_leverage"].idempotent_hint is True


async def test_a_write_sends_its_key_and_exact_decimals(connect: Any) -> None:
    data = {"market": ORDER, "stopLoss": None, "takeProfit": None}
    mcp, gw = connect(lambda r: envelope(200, 200, "订单提交成功", data))
    async with mcp:
        given = await mcp.call_tool(
            "open_market",
            {"symbol": "BTCUSDT", "side": "BUY", "quantity": 0.1, "stopLoss": "90000.5", "idempotencyKey": "a-1"},
        )
        generated = await mcp.call_tool("open_market", {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.3"})
    assert not given.is_error and given.structured_content["idempotencyKey"] == "a-1"
    first, second = gw.requests
    assert first.headers["idempotency-key"] == "a-1"
    assert first.url.path == "/api/order/open/market" and first.method == "POST"
    body = codec.loads(first.content)
    # 0.1 arrives as a float; the gateway gets the digits the agent wrote, as an exact number
    assert body["quantity"] == Decimal("0.1") and b'"quantity":0.1,' in first.content
    assert body["stopLoss"] == Decimal("90000.5")
    key = generated.structured_content["idempotencyKey"]
    assert key and key.startswith("mcp-") and second.headers["idempotency-key"] == key


async def test_path_and_query_come_from_the_registry_route(connect: Any) -> None:
    mcp, gw = connect(lambda r: envelope(200, 200, "Success", {"orderId": 7, "status": "CANCELED"}))
    async with mcp:
        result = await mcp.call_tool("cancel_order", {"orderId": 7, "symbol": "BTCUSDT"})
    assert not result.is_error, result.content
    (req,) = gw.requests
    assert req.method == "DELETE" and req.url.path == "/api/order/7" and req.url.params["symbol"] == "BTCUSDT"
    assert req.headers["idempotency-key"] == result.structured_content["idempotencyKey"]


@pytest.mark.parametrize(
    ("status", "code", "msg", "hint"),
    [
        # a risk limit (the guard's refusal, as the envelope carries it)
        (400, 400, "order notional 12,000 USDT exceeds this account's limit of 5,000", None),
        # a read-only key
        (403, 403, "This API key may not trade (scopes: read)", None),
        # Binance's own rejection, passed through
        (400, -2019, "Margin is insufficient.", None),
        # unknown outcome: the model is told to look it up or retry with the same key
        (504, 504, "No reply within 10s; the outcome is unknown.", "command_status"),
        (503, 503, "Message bus unavailable; the command was not accepted. Retry later.", "Nothing was executed"),
    ],
)
async def test_refusals_are_tool_errors_the_model_can_act_on(
    connect: Any, status: int, code: int, msg: str, hint: str | None
) -> None:
    mcp, _ = connect(lambda r: envelope(status, code, msg))
    async with mcp:
        result = await mcp.call_tool(
            "open_market", {"symbol": "BTCUSDT", "side": "BUY", "quantity": "1", "idempotencyKey": "k-42"}
        )
    assert result.is_error
    text = _text(result)
    assert msg in text and f"code {code}" in text and "k-42" in text
    assert result.structured_content == {"code": code, "msg": msg, "data": None, "idempotencyKey": "k-42"}
    if hint:
        assert hint in text


@pytest.mark.parametrize(
    ("tool", "args", "method", "path", "body"),
    [
        ("halt_trading", {"flatten": True}, "POST", "/api/account/halt", {"flatten": True}),
        ("halt_trading", {}, "POST", "/api/account/halt", {"flatten": False}),
        ("resume_trading", {}, "POST", "/api/account/resume", {}),
        ("command_status", {"idempotencyKey": "k-1"}, "GET", "/api/commands/k-1", None),
    ],
)
async def test_kill_switch_tools_call_the_documented_routes_and_surface_404(
    connect: Any, tool: str, args: dict[str, Any], method: str, path: str, body: dict[str, Any] | None
) -> None:
    """Until the guard's endpoints are merged the gateway answers 404 for these routes."""
    mcp, gw = connect(lambda r: envelope(404, 404, "Not Found"))
    async with mcp:
        result = await mcp.call_tool(tool, args)
    assert result.is_error and "Not Found" in _text(result)
    (req,) = gw.requests
    assert (req.method, req.url.path) == (method, path)
    if body is None:
        assert req.content == b""
    else:
        assert json.loads(req.content or b"{}") == body


async def test_invalid_arguments_are_refused_before_anything_is_sent(connect: Any) -> None:
    mcp, gw = connect(lambda r: envelope(200, 200, "ok"))
    async with mcp:
        missing = await mcp.call_tool("open_market", {"symbol": "BTCUSDT", "side": "BUY"})
        bad_key = await mcp.call_tool(
            "open_market", {"symbol": "BTCUSDT", "side": "BUY", "quantity": "1", "idempotencyKey": "no spaces"}
        )
        leverage = await mcp.call_tool("set_leverage", {"symbol": "BTCUSDT", "leverage": 500})
        misspelt = await mcp.call_tool(
            "open_market", {"symbol": "BTCUSDT", "side": "BUY", "quantity": 1, "stoploss": 1}
        )
    assert gw.requests == []
    for result, words in (
        (missing, "quantity: is required"),
        (bad_key, "idempotencyKey"),
        (leverage, "leverage"),
        (misspelt, "stoploss"),
    ):
        assert result.is_error and words in _text(result), result.content


async def test_unknown_outcome_after_a_lost_connection_names_the_key(connect: Any) -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    mcp, _ = connect(drop)
    async with mcp:
        result = await mcp.call_tool(
            "close_market", {"symbol": "BTCUSDT", "positionSide": "LONG", "idempotencyKey": "c1"}
        )
    text = _text(result)
    assert result.is_error and "outcome is unknown" in text and "command_status" in text and "'c1'" in text


def test_bearer_tokens_name_a_key_and_prove_its_secret() -> None:
    keys = [KeyPair("key-a.with.dots", "secret-a"), KeyPair("key-b", "secret-b")]
    auth = BearerAuth(lambda s, r, w: None, keys, lambda pair: None)  # type: ignore[arg-type, return-value]
    token = bearer_token("key-a.with.dots", "secret-a")
    assert "secret-a" not in token
    assert auth.verify(f"Bearer {token}") == keys[0]
    assert auth.verify(f"bearer {bearer_token('key-b', 'secret-b')}") == keys[1]
    assert auth.verify(f"Bearer {bearer_token('key-b', 'secret-a')}") is None  # the wrong secret
    assert auth.verify(f"Bearer {bearer_token('key-c', 'secret-b')}") is None  # no such key
    assert auth.verify(token) is None and auth.verify(None) is None and auth.verify("Bearer ") is None


def test_every_tool_has_a_description_with_units_or_next_steps() -> None:
    for tool in TOOLS:
        assert len(tool.description) > 80, tool.name
    assert "USDT" in next(t for t in TOOLS if t.name == "open_market").description


def test_aiqt_mcp_token_prints_the_token_of_the_environment_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiqt.cli import main

    monkeypatch.setenv("AIQT_API_KEY", "aiqt-key-1")
    monkeypatch.setenv("AIQT_API_SECRET", "secret-1")
    assert main(["mcp-token"]) == 0
    assert capsys.readouterr().out.strip() == bearer_token("aiqt-key-1", "secret-1")
    monkeypatch.delenv("AIQT_API_SECRET")
    assert main(["mcp-token"]) == 2
