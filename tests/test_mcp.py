"""`aiqt mcp` end to end, driven by the MCP SDK's own client over each transport — in memory, stdio
(`python -m aiqt.cli mcp` as an MCP host would spawn it) and Streamable HTTP at the gateway's `/mcp`
with a bearer token — against a real gateway, RabbitMQ, workers and the paper exchange. What the
tools claim is checked against what the paper exchange holds.

The guard's refusals through MCP (a read-only key, the notional cap, the symbol list, halt and resume)
are in tests/test_mcp_guard.py, on the guard tests' stack of keys and limits.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import httpx2
import mcp_types as types
import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from aiqt.mcp import KeyPair, bearer_token, build_server, gateway_mount
from gateway.app import create_app
from harness.servers import ThreadedUvicorn
from harness.stack import Account, Stack

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
TRANSPORTS = ["memory", "stdio", "http"]


@pytest.fixture(scope="module")
def mcp_gateway(stack: Stack) -> Iterator[ThreadedUvicorn]:
    """A second gateway on the stack's bus, composed as `aiqt gateway` composes it: with `/mcp` mounted."""
    settings = stack.gateway_settings()
    keys = [KeyPair(k.key, k.secret.get_secret_value()) for k in settings.client_keys]
    server = ThreadedUvicorn(create_app(settings, mounts=[gateway_mount(keys)])).start()
    yield server
    server.stop()


@asynccontextmanager
async def connect(kind: str, stack: Stack, account: Account, mcp_url: str | None = None) -> AsyncIterator[Client]:
    if kind == "memory":
        async with stack.async_client(account) as client, Client(build_server(lambda: client)) as mcp:
            yield mcp
    elif kind == "stdio":
        assert stack.gateway is not None
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "aiqt.cli", "mcp"],
            env={
                "AIQT_URL": stack.gateway.url,
                "AIQT_API_KEY": account.api_key,
                "AIQT_API_SECRET": account.api_secret,
                "PYTHONPATH": str(ROOT),
                **({"PATH": os.environ["PATH"]} if "PATH" in os.environ else {}),
            },
            cwd=ROOT,
        )
        async with Client(params) as mcp:
            yield mcp
    else:
        assert mcp_url is not None
        headers = {"Authorization": f"Bearer {bearer_token(account.api_key, account.api_secret)}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http,
            Client(streamable_http_client(mcp_url, http_client=http)) as mcp,
        ):
            yield mcp


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def mcp_url(transport: str, request: pytest.FixtureRequest) -> str | None:
    if transport != "http":
        return None
    gw: ThreadedUvicorn = request.getfixturevalue("mcp_gateway")
    return f"{gw.url}/mcp"


def _text(result: Any) -> str:
    """The text a model reads of a tool result."""
    (block,) = result.content
    assert isinstance(block, types.TextContent)
    return block.text


def _data(result: Any) -> Any:
    assert not result.is_error, result.content
    return result.structured_content["data"]


async def test_tools_are_listed_with_schemas_and_hints(
    stack: Stack, account: Account, transport: str, mcp_url: str | None
) -> None:
    async with connect(transport, stack, account, mcp_url) as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
    assert len(tools) == 12 and {"open_market", "halt_trading", "command_status"} <= set(tools)
    open_market = tools["open_market"]
    assert open_market.annotations is not None and open_market.annotations.destructive_hint is True
    summary_hints = tools["account_summary"].annotations
    assert summary_hints is not None and summary_hints.read_only_hint is True
    assert {"stopLoss", "takeProfit", "idempotencyKey"} <= set(open_market.input_schema["properties"])
    assert open_market.output_schema is not None


async def test_read_the_account(stack: Stack, account: Account, transport: str, mcp_url: str | None) -> None:
    async with connect(transport, stack, account, mcp_url) as mcp:
        result = await mcp.call_tool("account_summary", {})
    data = _data(result)
    assert result.structured_content["code"] == 200
    assert data["accountInfo"]["availableBalance"] > 0
    assert isinstance(data["positions"], list) and isinstance(data["activeOrders"], list)


async def test_open_with_stop_loss_and_take_profit_then_retry_with_its_key(
    stack: Stack, account: Account, transport: str, mcp_url: str | None
) -> None:
    stack.admin.set_mark("BTCUSDT", "95000")
    args = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.010", "stopLoss": "90000", "takeProfit": 99000.5}
    async with connect(transport, stack, account, mcp_url) as mcp:
        first = await mcp.call_tool("open_market", args)
        key = first.structured_content["idempotencyKey"]
        again = await mcp.call_tool("open_market", {**args, "idempotencyKey": key})
    opened = _data(first)
    assert opened["market"]["status"] == "FILLED" and opened["market"]["executedQty"] == "0.010"
    assert opened["stopLoss"]["type"] == "STOP_MARKET" and Decimal(opened["stopLoss"]["stopPrice"]) == 90000
    assert Decimal(opened["takeProfit"]["stopPrice"]) == Decimal("99000.5")
    assert _data(again)["market"]["orderId"] == opened["market"]["orderId"]
    assert again.structured_content["idempotencyKey"] == key

    state = stack.state(account)
    assert [o["clientOrderId"] for o in state["orders"]] == [opened["market"]["clientOrderId"]]  # one entry
    assert {a["clientAlgoId"] for a in state["algoOrders"]} == {
        opened["stopLoss"]["clientOrderId"],
        opened["takeProfit"]["clientOrderId"],
    }
    position = [p for p in state["positions"] if p["symbol"] == "BTCUSDT" and Decimal(p["positionAmt"]) != 0]
    assert [Decimal(p["positionAmt"]) for p in position] == [Decimal("0.010")]


async def test_every_other_tool_in_memory(stack: Stack, account: Account) -> None:
    stack.admin.set_mark("BTCUSDT", "95000")
    order_id = stack.limit_order(account, price="92000", qty="0.010")
    async with connect("memory", stack, account) as mcp:
        klines = _data(await mcp.call_tool("get_klines", {"symbol": "BTCUSDT", "interval": "1h", "limit": 3}))
        funding = _data(await mcp.call_tool("get_funding_rate", {"symbol": "BTCUSDT", "limit": 2}))
        leverage = _data(await mcp.call_tool("set_leverage", {"symbol": "ETHUSDT", "leverage": 7}))
        margin = _data(await mcp.call_tool("set_margin_mode", {"symbol": "ETHUSDT", "marginType": "ISOLATED"}))
        modified = _data(
            await mcp.call_tool(
                "modify_order",
                {"orderId": order_id, "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.020", "price": "91500"},
            )
        )
        cancelled = _data(await mcp.call_tool("cancel_order", {"orderId": order_id, "symbol": "BTCUSDT"}))
        opened = _data(await mcp.call_tool("open_market", {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.005"}))
        closed = _data(await mcp.call_tool("close_market", {"symbol": "BTCUSDT", "positionSide": "SHORT"}))
    assert len(klines["klines"]) == 3 and klines["interval"] == "1h"
    assert funding["symbol"] == "BTCUSDT" and len(funding["historyRates"]) <= 2
    assert (leverage["symbol"], leverage["leverage"]) == ("ETHUSDT", 7)
    assert margin["marginType"] == "ISOLATED"
    assert (modified["orderId"], Decimal(modified["price"]), Decimal(modified["origQty"])) == (
        order_id,
        Decimal("91500"),
        Decimal("0.020"),
    )
    assert (cancelled["orderId"], cancelled["status"]) == (order_id, "CANCELED")
    assert opened["market"]["status"] == "FILLED"
    assert closed["positionClosed"] is True

    state = stack.state(account)
    assert not [p for p in state["positions"] if Decimal(p["positionAmt"]) != 0]
    limit = next(o for o in state["orders"] if o["orderId"] == order_id)
    assert limit["status"] == "CANCELED"


async def test_exchange_refusals_come_back_as_tool_errors(stack: Stack, account: Account) -> None:
    async with connect("memory", stack, account) as mcp:
        missing = await mcp.call_tool("cancel_order", {"orderId": 123456789, "symbol": "BTCUSDT"})
        nothing = await mcp.call_tool("close_market", {"symbol": "BTCUSDT", "positionSide": "LONG"})
    assert missing.is_error and missing.structured_content["code"] == 404
    assert "Order does not exist" in _text(missing)
    assert nothing.is_error and nothing.structured_content["msg"] in _text(nothing)


async def test_command_status_of_an_unknown_key_says_nothing_was_placed(stack: Stack, account: Account) -> None:
    """A key that placed nothing: a plain answer the agent can act on ("not found at the exchange")."""
    async with connect("memory", stack, account) as mcp:
        status = await mcp.call_tool("command_status", {"idempotencyKey": f"never-{uuid.uuid4().hex}"})
    assert not status.is_error and status.structured_content is not None
    assert status.structured_content["data"]["found"] is False
    assert "not found" in status.structured_content["msg"].lower()


def test_http_endpoint_requires_a_valid_bearer_token(mcp_gateway: ThreadedUvicorn, account: Account) -> None:
    url = f"{mcp_gateway.url}/mcp"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    wrong = bearer_token(account.api_key, "not-the-secret")
    for headers in ({}, {"Authorization": f"Bearer {wrong}"}, {"Authorization": f"Basic {account.api_key}"}):
        r = httpx.post(url, json=body, headers=headers)
        assert r.status_code == 401 and r.json()["code"] == 401, headers
        assert r.headers["www-authenticate"].startswith("Bearer")
