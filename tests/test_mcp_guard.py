"""The guard rails through MCP: what an agent sees when a scope, a risk limit or the kill switch says no.

Runs on the guard tests' stack (tests/test_guard.py: per-account risk limits, single-scope keys) with
the SDK's in-memory client, and checks the paper exchange: a refused call places nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
import pytest
from mcp.client.client import Client

from aiqt.client import AsyncAiqtClient
from aiqt.mcp import build_server
from harness.stack import Stack
from tests.test_guard import acct, gstack

pytestmark = pytest.mark.integration
__all__ = ["gstack"]  # the guard tests' module fixture, used here too


@asynccontextmanager
async def agent(stack: Stack, key: str, secret: str) -> AsyncIterator[Client]:
    assert stack.gateway is not None
    async with AsyncAiqtClient(stack.gateway.url, key, secret) as client, Client(build_server(lambda: client)) as mcp:
        yield mcp


def _text(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


def _orders(stack: Stack, name: str) -> list[dict[str, Any]]:
    return list(stack.state(acct(stack, name))["orders"])


async def test_a_read_only_key_may_read_but_not_trade(gstack: Stack) -> None:
    owner = acct(gstack, "acct10")
    before = len(_orders(gstack, "acct10"))
    async with agent(gstack, f"read-only-{owner.api_key}", owner.api_secret) as mcp:
        assert not (await mcp.call_tool("account_summary", {})).is_error
        refused = await mcp.call_tool("open_market", {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.001"})
    assert refused.is_error and refused.structured_content is not None
    assert refused.structured_content["code"] == 403 and "trade" in _text(refused)
    assert len(_orders(gstack, "acct10")) == before


async def test_notional_cap_and_symbol_list_refusals_name_the_limit(gstack: Stack) -> None:
    capped, listed = acct(gstack, "acct0"), acct(gstack, "acct3")
    gstack.admin.set_mark("BTCUSDT", "100000")
    before = len(_orders(gstack, "acct0")), len(_orders(gstack, "acct3"))
    async with agent(gstack, capped.api_key, capped.api_secret) as mcp:
        cap = await mcp.call_tool("open_market", {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.12"})
    async with agent(gstack, listed.api_key, listed.api_secret) as mcp:
        symbol = await mcp.call_tool("open_market", {"symbol": "ETHUSDT", "side": "BUY", "quantity": "0.1"})
    assert cap.is_error and "5,000" in _text(cap) and "maxOrderNotional" in _text(cap)
    assert symbol.is_error and "ETHUSDT" in _text(symbol)
    assert (len(_orders(gstack, "acct0")), len(_orders(gstack, "acct3"))) == before


async def test_halt_with_flatten_refuses_new_positions_until_resume(gstack: Stack) -> None:
    account = acct(gstack, "acct13")
    gstack.admin.set_mark("BTCUSDT", "95000")
    buy = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.002", "stopLoss": "90000"}
    async with agent(gstack, account.api_key, account.api_secret) as mcp:
        assert not (await mcp.call_tool("open_market", buy)).is_error
        halted = await mcp.call_tool("halt_trading", {"flatten": True})
        assert not halted.is_error, _text(halted)
        state = gstack.state(account)
        assert [a for a in state["algoOrders"] if a["algoStatus"] == "NEW"] == []
        assert all(p["positionAmt"] in ("0", "0.000") for p in state["positions"]), state["positions"]
        refused = await mcp.call_tool("open_market", buy)
        assert refused.is_error
        assert not (await mcp.call_tool("resume_trading", {})).is_error
        opened = await mcp.call_tool("open_market", buy)
        assert not opened.is_error, _text(opened)
        assert opened.structured_content is not None
        status = await mcp.call_tool("command_status", {"idempotencyKey": opened.structured_content["idempotencyKey"]})
    assert not status.is_error, _text(status)
