"""Guard rails end to end (REST → gateway → RabbitMQ → worker → paper exchange): API key scopes, risk
limits per account (also for an outside AMQP publisher), the kill switch (halt, flatten, resume, and
a halt that outlives a worker and gateway restart), and command status (also after a 504).

Every assertion about orders and positions is checked against what the paper exchange holds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from typing import Any

import aio_pika
import httpx
import pytest

from aiqt.client import AiqtClient, sign_request
from gateway.app import create_app
from gateway.settings import ClientKey, GatewaySettings
from harness.servers import ThreadedUvicorn
from harness.stack import Account, Stack, StackFactory
from schemas.enums import Scope
from tests.test_auth_and_amqp import _publish

pytestmark = pytest.mark.integration

D = Decimal

#: acct0..acct6 each carry one limit; the others none.
RISK: dict[str, dict[str, Any]] = {
    "acct0": {"maxOrderNotional": 5000},
    "acct1": {"maxPositionNotional": "3000"},
    "acct2": {"maxLeverage": 10},
    "acct3": {"symbols": ["BTCUSDT"]},
    "acct4": {"maxOrdersPerMinute": 2},
    "acct5": {"maxDailyNotional": 2000},
    "acct6": {"reduceOnly": True},
}
READ_ONLY = Scope.READ, "read-only"
TRADE_ONLY = Scope.TRADE, "trade-only"
ADMIN_ONLY = Scope.ADMIN, "admin-only"


def _gateway_settings(stack: Stack, **overrides: Any) -> GatewaySettings:
    """Every account's own key has all three scopes; acct10 also has one key per single scope."""
    settings = stack.gateway_settings(**overrides)
    keys = [k.model_copy(update={"scopes": frozenset(Scope)}) for k in settings.client_keys]
    owner = next(a for a in stack.accounts if a.name == "acct10")
    for scope, name in (READ_ONLY, TRADE_ONLY, ADMIN_ONLY):
        keys.append(
            ClientKey(key=f"{name}-{owner.api_key}", secret=owner.api_secret, account=owner.name, scopes={scope})
        )
    settings.client_keys = keys
    return settings


def _start_gateway(stack: Stack) -> None:
    stack.gateway = ThreadedUvicorn(create_app(_gateway_settings(stack))).start()


@pytest.fixture(scope="module")
def gstack(make_module_stack: StackFactory) -> Stack:
    s = make_module_stack(accounts=16, workers=1, worker={"risk": RISK})
    _start_gateway(s)
    return s  # stopped by make_module_stack, which also deletes the accounts' halt queues


def acct(stack: Stack, name: str) -> Account:
    return next(a for a in stack.accounts if a.name == name)


def client(stack: Stack, account: Account, key: str | None = None) -> AiqtClient:
    assert stack.gateway is not None
    return AiqtClient(stack.gateway.url, key or account.api_key, account.api_secret)


def orders(stack: Stack, account: Account) -> list[dict[str, Any]]:
    return list(stack.state(account)["orders"])


def position(stack: Stack, account: Account, symbol: str = "BTCUSDT", side: str = "BOTH") -> Decimal:
    for p in stack.state(account)["positions"]:
        if p["symbol"] == symbol and p["positionSide"] == side:
            return D(p["positionAmt"])
    return D(0)


def open_at_exchange(stack: Stack, account: Account, symbol: str, side: str, qty: str) -> None:
    """A position opened straight at the exchange (not through AIQT, so no limit applies)."""
    body = stack.fapi(
        account,
        "POST",
        "/fapi/v1/order",
        symbol=symbol,
        side=side,
        type="MARKET",
        quantity=qty,
        newOrderRespType="RESULT",
    )
    assert body.get("status") == "FILLED", body


# --- scopes --------------------------------------------------------------------------------------


def test_scopes_refuse_with_403_naming_what_the_key_may_not_do(gstack: Stack) -> None:
    owner = acct(gstack, "acct10")
    gstack.admin.set_mark("BTCUSDT", "95000")
    with client(gstack, owner, f"read-only-{owner.api_key}") as c:
        assert c.account_summary().code == 200
        assert c.klines("BTCUSDT", limit=2).code == 200
        assert c.command_status("never-sent").code == 200
        trade = c.open_market("BTCUSDT", "BUY", "0.002")
        halt = c.halt()
    assert (trade.status, trade.code) == (403, 403)
    assert trade.msg.startswith("This API key may not trade (open, close, cancel or modify orders")
    assert "POST /api/order/open/market needs the 'trade' scope (this key has: read)" in trade.msg
    assert (halt.status, halt.code) == (403, 403)
    assert halt.msg.startswith("This API key may not halt or resume the account (kill switch)")
    with client(gstack, owner, f"trade-only-{owner.api_key}") as c:
        summary = c.account_summary()
        resume = c.resume()
        assert c.set_leverage("BTCUSDT", 5).code == 200
    assert (summary.status, summary.code) == (403, 403)
    assert summary.msg.startswith("This API key may not read account data, market data or command status")
    assert (resume.status, resume.code) == (403, 403) and "'admin' scope (this key has: trade)" in resume.msg
    with client(gstack, owner, f"admin-only-{owner.api_key}") as c:
        assert c.open_market("BTCUSDT", "BUY", "0.002").status == 403
        assert c.resume().code == 200
    assert orders(gstack, owner) == []  # nothing refused reached the exchange


def test_scope_check_comes_after_auth(gstack: Stack) -> None:
    owner = acct(gstack, "acct10")
    assert gstack.gateway is not None
    query = sign_request("0" * 32, "POST", "/api/account/halt", None, b"{}")
    response = httpx.post(
        f"{gstack.gateway.url}/api/account/halt?{query}",
        content=b"{}",
        headers={"X-API-KEY": f"read-only-{owner.api_key}", "Content-Type": "application/json"},
    )
    assert (response.status_code, response.json()["code"]) == (401, -1022)  # a bad signature is never a 403


# --- risk limits ---------------------------------------------------------------------------------


def test_max_order_notional(gstack: Stack) -> None:
    a = acct(gstack, "acct0")
    gstack.admin.set_mark("BTCUSDT", "95000")
    with client(gstack, a) as c:
        refused = c.open_market("BTCUSDT", "BUY", "0.1")
        assert (refused.status, refused.code) == (400, 400)
        assert refused.msg == "order notional 9,500 USDT exceeds this account's limit of 5,000 (maxOrderNotional)"
        assert refused.data == {"limit": "maxOrderNotional"}
        assert orders(gstack, a) == []
        assert c.open_market("BTCUSDT", "BUY", "0.05").code == 200  # 4,750
        gstack.admin.set_mark("BTCUSDT", "120000")  # the position is now worth 6,000: closing it is still allowed
        closed = c.close_market("BTCUSDT", "LONG")
    assert closed.code == 200, closed.msg
    assert position(gstack, a) == 0
    assert [o["status"] for o in orders(gstack, a)] == ["FILLED", "FILLED"]


def test_outside_amqp_publisher_is_bound_by_the_limits(gstack: Stack) -> None:
    a = acct(gstack, "acct0")
    gstack.admin.set_mark("BTCUSDT", "95000")
    before = len(orders(gstack, a))
    payload: dict[str, object] = {"symbol": "BTCUSDT", "side": "SELL", "quantity": D("0.2")}
    reply = asyncio.run(_publish(gstack, "order.open_market", a.name, payload, uuid.uuid4().hex))
    assert (reply["code"], reply["msg"]) == (
        400,
        "order notional 19,000 USDT exceeds this account's limit of 5,000 (maxOrderNotional)",
    )
    assert len(orders(gstack, a)) == before


def test_max_position_notional(gstack: Stack) -> None:
    a = acct(gstack, "acct1")
    gstack.admin.set_mark("BTCUSDT", "95000")
    with client(gstack, a) as c:
        assert c.open_market("BTCUSDT", "BUY", "0.03").code == 200  # 2,850
        refused = c.open_market("BTCUSDT", "BUY", "0.002")  # 3,040 after
        assert (refused.status, refused.code) == (400, 400)
        assert refused.msg == (
            "position notional after this order 3,040 USDT in BTCUSDT exceeds this account's limit of "
            "3,000 (maxPositionNotional)"
        )
        assert len(orders(gstack, a)) == 1
        assert c.open_market("BTCUSDT", "SELL", "0.01", reduce_only=True).code == 200  # reduce-only: a close
        assert c.close_market("BTCUSDT", "LONG").code == 200
    assert position(gstack, a) == 0


def test_max_leverage(gstack: Stack) -> None:
    a = acct(gstack, "acct2")
    gstack.admin.set_mark("BTCUSDT", "95000")
    with client(gstack, a) as c:
        raised = c.set_leverage("BTCUSDT", 20)
        assert (raised.status, raised.msg) == (400, "leverage 20x exceeds this account's limit of 10x (maxLeverage)")
        # The paper exchange (like Binance) starts a symbol at 20x: opening at it is refused too.
        refused = c.open_market("BTCUSDT", "BUY", "0.002")
        assert (refused.status, refused.data) == (400, {"limit": "maxLeverage"})
        assert refused.msg.startswith("BTCUSDT is set to leverage 20x, above this account's limit of 10x (maxLeverage)")
        assert orders(gstack, a) == []
        assert c.set_leverage("BTCUSDT", 5).code == 200  # lowering is always allowed
        assert c.open_market("BTCUSDT", "BUY", "0.002").code == 200
    state = gstack.state(a)
    assert state["leverage"]["BTCUSDT"] == 5 and len(state["orders"]) == 1


def test_symbol_allowlist(gstack: Stack) -> None:
    a = acct(gstack, "acct3")
    gstack.admin.set_mark("BTCUSDT", "95000")
    gstack.admin.set_mark("ETHUSDT", "3500")
    with client(gstack, a) as c:
        refused = c.open_market("ETHUSDT", "BUY", "0.1")
        assert (refused.status, refused.msg) == (
            400,
            "symbol ETHUSDT is not in this account's allowlist (BTCUSDT) (symbols)",
        )
        assert orders(gstack, a) == []
        open_at_exchange(gstack, a, "ETHUSDT", "BUY", "0.1")
        assert c.close_market("ETHUSDT", "LONG").code == 200  # a close is never blocked
        assert c.open_market("BTCUSDT", "BUY", "0.002").code == 200
    assert position(gstack, a, "ETHUSDT") == 0 and position(gstack, a) == D("0.002")


def test_max_orders_per_minute(gstack: Stack) -> None:
    a = acct(gstack, "acct4")
    gstack.admin.set_mark("BTCUSDT", "95000")
    with client(gstack, a) as c:
        assert c.open_market("BTCUSDT", "BUY", "0.002").code == 200
        assert c.open_market("BTCUSDT", "BUY", "0.002").code == 200
        refused = c.open_market("BTCUSDT", "BUY", "0.002")
        assert (refused.status, refused.msg) == (
            400,
            "2 orders in the last minute; one more exceeds this account's limit of 2 (maxOrdersPerMinute)",
        )
        assert len(orders(gstack, a)) == 2
        assert c.close_market("BTCUSDT", "LONG").code == 200
    assert position(gstack, a) == 0


def test_max_daily_notional_is_read_from_the_exchange(gstack: Stack) -> None:
    a = acct(gstack, "acct5")
    gstack.admin.set_mark("BTCUSDT", "95000")
    gstack.admin.set_mark("ETHUSDT", "3500")
    open_at_exchange(gstack, a, "ETHUSDT", "BUY", "0.1")  # traded outside AIQT: counts too
    eth = D(gstack.state(a)["trades"][0]["quoteQty"])
    with client(gstack, a) as c:
        assert c.open_market("BTCUSDT", "BUY", "0.01").code == 200  # 950
        refused = c.open_market("BTCUSDT", "BUY", "0.01")
    traded = (eth + D(950)).normalize()
    assert (refused.status, refused.data) == (400, {"limit": "maxDailyNotional"})
    total = (traded + 950).normalize()
    assert refused.msg == (
        f"notional traded in the last 24 h would be {total:,f} USDT ({traded:,f} traded + 950 this order), "
        "exceeding this account's limit of 2,000 (maxDailyNotional)"
    )
    assert len([o for o in orders(gstack, a) if o["symbol"] == "BTCUSDT"]) == 1
    with client(gstack, a) as c:
        assert c.close_market("BTCUSDT", "LONG").code == 200  # closing is never limited


def test_reduce_only_account(gstack: Stack) -> None:
    a = acct(gstack, "acct6")
    gstack.admin.set_mark("BTCUSDT", "95000")
    with client(gstack, a) as c:
        refused = c.open_market("BTCUSDT", "BUY", "0.002")
        assert (refused.status, refused.data) == (400, {"limit": "reduceOnly"})
        assert refused.msg.startswith("this account may only close positions (reduceOnly)")
        assert orders(gstack, a) == []
        open_at_exchange(gstack, a, "BTCUSDT", "BUY", "0.004")
        assert c.open_market("BTCUSDT", "SELL", "0.001", reduce_only=True).code == 200
        assert c.close_market("BTCUSDT", "LONG").code == 200
    assert position(gstack, a) == 0


# --- kill switch ---------------------------------------------------------------------------------


def _open_orders(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in state["orders"] if o["status"] in ("NEW", "PARTIALLY_FILLED")]


def _open_algos(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in state["algoOrders"] if a["algoStatus"] == "NEW"]


def test_halt_cancels_every_order_refuses_opens_allows_closes_and_resumes(gstack: Stack) -> None:
    a = acct(gstack, "acct7")
    gstack.admin.set_mark("BTCUSDT", "95000")
    with client(gstack, a) as c:
        opened = c.open_market("BTCUSDT", "BUY", "0.01", stop_loss="90000", take_profit="99000")
        assert opened.code == 200
        limit_id = gstack.limit_order(a, price="92000", qty="0.002")
        state = gstack.state(a)
        assert len(_open_orders(state)) == 1 and len(_open_algos(state)) == 2

        halted = c.halt()
        assert (halted.status, halted.code, halted.msg) == (200, 200, "Account halted")
        canceled = {(o["orderId"], o["algo"]) for o in halted.data["canceledOrders"]}
        assert canceled == {
            (limit_id, False),
            (opened.data["stopLoss"]["orderId"], True),
            (opened.data["takeProfit"]["orderId"], True),
        }
        assert halted.data["closedPositions"] == [] and halted.data["flatten"] is False
        state = gstack.state(a)
        assert _open_orders(state) == [] and _open_algos(state) == []
        assert position(gstack, a) == D("0.01")  # no flatten: the position stays

        refused = c.open_market("BTCUSDT", "BUY", "0.002")
        assert (refused.status, refused.code) == (400, 400)
        assert refused.msg.startswith("Account is halted: opening orders are refused until POST /api/account/resume")
        assert len(gstack.state(a)["orders"]) == 2  # the entry and the cancelled limit order, nothing new
        assert c.open_market("BTCUSDT", "SELL", "0.004", reduce_only=True).code == 200
        assert c.close_market("BTCUSDT", "LONG", "0.002").code == 200
        assert position(gstack, a) == D("0.004")

        resumed = c.resume()
        assert (resumed.code, resumed.msg, resumed.data) == (
            200,
            "Account resumed",
            {"halted": False, "wasHalted": True},
        )
        assert c.open_market("BTCUSDT", "BUY", "0.002").code == 200
        assert c.resume().msg == "Account was not halted"
    assert position(gstack, a) == D("0.006")


def test_halt_with_flatten_closes_every_position(gstack: Stack) -> None:
    a = acct(gstack, "acct8")
    gstack.admin.set_mark("BTCUSDT", "95000")
    gstack.admin.set_mark("ETHUSDT", "3500")
    with client(gstack, a) as c:
        assert c.open_market("BTCUSDT", "BUY", "0.01", stop_loss="90000").code == 200
        assert c.open_market("ETHUSDT", "SELL", "0.5", take_profit="3000").code == 200
        gstack.limit_order(a, side="SELL", price="99000", qty="0.002")
        halted = c.halt(flatten=True)
        assert halted.code == 200, halted.msg
        closed = {(p["symbol"], p["positionSide"], D(p["quantity"])) for p in halted.data["closedPositions"]}
        assert closed == {("BTCUSDT", "BOTH", D("0.01")), ("ETHUSDT", "BOTH", D("0.5"))}
        assert all(p["status"] == "FILLED" for p in halted.data["closedPositions"])
        assert len(halted.data["canceledOrders"]) == 3
        state = gstack.state(a)
        assert _open_orders(state) == [] and _open_algos(state) == []
        assert all(D(p["positionAmt"]) == 0 for p in state["positions"])
        closes = {o["orderId"] for o in state["orders"] if o["reduceOnly"]}
        assert closes == {p["orderId"] for p in halted.data["closedPositions"]}
        assert c.open_market("ETHUSDT", "BUY", "0.1").code == 400
        assert c.resume().code == 200
        assert c.open_market("ETHUSDT", "BUY", "0.1").code == 200


def test_halt_survives_worker_and_gateway_restart(gstack: Stack) -> None:
    a = acct(gstack, "acct9")
    daily = acct(gstack, "acct5")  # already traded in test_max_daily_notional: its limit outlives the restart too
    gstack.admin.set_mark("BTCUSDT", "95000")
    with client(gstack, a) as c:
        assert c.halt().code == 200
    assert gstack.gateway is not None
    gstack.gateway.stop()
    gstack.stop_workers()
    gstack.start_worker()
    _start_gateway(gstack)
    with client(gstack, a) as c:
        refused = c.open_market("BTCUSDT", "BUY", "0.002")
        assert (refused.status, refused.msg.split(":")[0]) == (400, "Account is halted")
        assert orders(gstack, a) == []
        with client(gstack, daily) as d:
            over = d.open_market("BTCUSDT", "BUY", "0.02")
        assert (over.status, over.data) == (400, {"limit": "maxDailyNotional"})
        assert c.resume().code == 200
        assert c.open_market("BTCUSDT", "BUY", "0.002").code == 200
    assert position(gstack, a) == D("0.002")


def test_halt_binds_an_outside_amqp_publisher(gstack: Stack) -> None:
    a = acct(gstack, "acct11")
    gstack.admin.set_mark("BTCUSDT", "95000")
    halted = asyncio.run(_publish(gstack, "account.halt", a.name, {}, uuid.uuid4().hex))
    assert halted["code"] == 200
    payload: dict[str, object] = {"symbol": "BTCUSDT", "side": "BUY", "quantity": D("0.002")}
    refused = asyncio.run(_publish(gstack, "order.open_market", a.name, payload, uuid.uuid4().hex))
    assert refused["code"] == 400 and str(refused["msg"]).startswith("Account is halted")
    assert orders(gstack, a) == []
    assert asyncio.run(_publish(gstack, "account.resume", a.name, {}, uuid.uuid4().hex))["code"] == 200


# --- command status ------------------------------------------------------------------------------


def test_command_status_of_a_placed_order(gstack: Stack) -> None:
    a = acct(gstack, "acct12")
    gstack.admin.set_mark("BTCUSDT", "95000")
    key = f"status-{uuid.uuid4().hex[:8]}"
    with client(gstack, a) as c:
        opened = c.open_market("BTCUSDT", "BUY", "0.01", stop_loss="90000", take_profit="99000", idempotency_key=key)
        assert opened.code == 200
        status = c.command_status(key)
        with_symbol = c.command_status(key, symbol="BTCUSDT")
    assert (status.status, status.code, status.msg) == (200, 200, "Found at the exchange")
    assert status.data["found"] is True and status.data["idempotencyKey"] == key
    assert status.data["commandId"] == opened.headers["x-command-id"]
    legs = {o["leg"]: o["order"] for o in status.data["orders"]}
    assert set(legs) == {"entry", "stopLoss", "takeProfit"}
    state = gstack.state(a)
    assert (
        legs["entry"]["clientOrderId"] == opened.data["market"]["clientOrderId"] == state["orders"][0]["clientOrderId"]
    )
    assert legs["entry"]["status"] == "FILLED"
    assert {legs["stopLoss"]["clientOrderId"], legs["takeProfit"]["clientOrderId"]} == {
        x["clientAlgoId"] for x in state["algoOrders"]
    }
    assert with_symbol.data["orders"] == status.data["orders"] and with_symbol.data["searchedSymbols"] == ["BTCUSDT"]
    assert len(state["orders"]) == 1  # looking never placed anything


def test_command_status_of_a_key_never_placed(gstack: Stack) -> None:
    a = acct(gstack, "acct12")
    before = gstack.state(a)
    refused_key = f"refused-{uuid.uuid4().hex[:8]}"
    with client(gstack, a) as c:
        never = c.command_status(f"never-{uuid.uuid4().hex[:8]}")
        bad = c.open_market("BTCUSDT", "BUY", "99999", idempotency_key=refused_key)  # the exchange refuses it
        refused = c.command_status(refused_key)
    assert (never.status, never.code) == (200, 200)
    assert never.msg.startswith("Not found at the exchange: this command placed no order (searched BTCUSDT")
    assert never.data["found"] is False and never.data["orders"] == []
    assert bad.code != 200 and refused.data["found"] is False
    after = gstack.state(a)
    assert after["orders"] == before["orders"] and after["algoOrders"] == before["algoOrders"]


def test_command_status_after_a_504(gstack: Stack) -> None:
    a = acct(gstack, "acct13")
    gstack.admin.set_mark("BTCUSDT", "95000")
    impatient = ThreadedUvicorn(create_app(_gateway_settings(gstack, request_timeout=1.0))).start()
    gstack.admin.fault(kind="delay", apiKey=a.exchange_key, method="POST", path="/fapi/v1/order", delayMs=2500)
    key = f"late-{uuid.uuid4().hex[:8]}"
    try:
        with AiqtClient(impatient.url, a.api_key, a.api_secret) as c:
            first = c.open_market("BTCUSDT", "BUY", "0.003", idempotency_key=key)
    finally:
        impatient.stop()
    assert (first.status, first.code) == (504, 504)
    assert f"GET /api/commands/{key}" in first.msg and first.headers["x-command-id"] in first.msg
    with client(gstack, a) as c:
        end = time.monotonic() + 20
        status = c.command_status(key)
        while not status.data["found"] and time.monotonic() < end:
            time.sleep(0.2)
            status = c.command_status(key)
    assert status.code == 200 and status.data["found"] is True, status.msg
    (entry,) = status.data["orders"]
    assert entry["leg"] == "entry" and entry["order"]["status"] == "FILLED"
    state = gstack.state(a)
    assert [o["clientOrderId"] for o in state["orders"]] == [entry["order"]["clientOrderId"]]
    assert position(gstack, a) == D("0.003")


# --- the CLI -------------------------------------------------------------------------------------


def test_cli_halt_status_resume(gstack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    from aiqt.cli import build_parser

    a = acct(gstack, "acct14")
    assert gstack.gateway is not None
    flags = ["--url", gstack.gateway.url, "--key", a.api_key, "--secret", a.api_secret]

    def aiqt(*argv: str) -> tuple[int, str, str]:
        args = build_parser().parse_args([argv[0], *flags, *argv[1:]])
        code: int = args.func(args)
        out = capsys.readouterr()
        return code, out.out, out.err

    gstack.admin.set_mark("BTCUSDT", "95000")
    code, _, err = aiqt("open", "BTCUSDT", "BUY", "0.002", "--sl", "90000", "--idempotency-key", "cli-open-1")
    assert code == 0, err
    code, out, err = aiqt("status", "cli-open-1")
    assert code == 0, err
    assert out.splitlines()[0] == "Found at the exchange"
    assert {line.split()[0] for line in out.splitlines()[3:] if line.strip()} >= {"entry", "stopLoss"}
    code, out, _ = aiqt("halt", "--flatten")
    assert code == 0 and out.splitlines()[0] == "Account halted"
    assert "cancelled 1 order(s)" in out and "closed 1 position(s)" in out
    state = gstack.state(a)
    assert _open_algos(state) == [] and all(D(p["positionAmt"]) == 0 for p in state["positions"])
    code, _, err = aiqt("open", "BTCUSDT", "BUY", "0.002")
    assert code == 1 and "error 400: Account is halted" in err
    code, out, _ = aiqt("resume")
    assert code == 0 and out.splitlines()[0] == "Account resumed"


def test_halt_flattens_both_sides_in_hedge_mode(gstack: Stack) -> None:
    a = acct(gstack, "acct15")
    gstack.admin.set_mark("BTCUSDT", "95000")
    assert gstack.fapi(a, "POST", "/fapi/v1/positionSide/dual", dualSidePosition="true").get("code") == 200
    with client(gstack, a) as c:
        assert c.open_market("BTCUSDT", "BUY", "0.003", stop_loss="90000").code == 200
        assert c.open_market("BTCUSDT", "SELL", "0.002", take_profit="90000").code == 200
        assert (position(gstack, a, side="LONG"), position(gstack, a, side="SHORT")) == (D("0.003"), D("-0.002"))
        halted = c.halt(flatten=True)
        assert halted.code == 200, halted.msg
        closed = {(p["positionSide"], D(p["quantity"])) for p in halted.data["closedPositions"]}
        assert closed == {("LONG", D("0.003")), ("SHORT", D("0.002"))}
        state = gstack.state(a)
        assert _open_algos(state) == [] and all(D(p["positionAmt"]) == 0 for p in state["positions"])
        assert c.open_market("BTCUSDT", "BUY", "0.002").code == 400
        assert c.resume().code == 200


async def test_halt_state_on_the_bus_fails_closed_and_leaks_no_channel(gstack: Stack) -> None:
    """Reads of accounts never halted (the broker answers "no such queue" by closing the channel) leave
    no channel behind; a connection that is gone makes every read fail (the worker then refuses)."""
    from bus.halts import Halts, HaltUnknown

    connection = await aio_pika.connect_robust(gstack.amqp_url)
    halts = Halts(gstack.topology)
    halts.bind(connection)
    assert await asyncio.gather(*(halts.is_halted(f"nobody{i}") for i in range(20))) == [False] * 20
    await halts.halt("acct15", "probe", flatten=False)
    assert await halts.is_halted("acct15") is True
    assert await halts.resume("acct15") is True and await halts.is_halted("acct15") is False
    for i in range(50):
        assert await halts.is_halted(f"nobody{i}") is False
    await asyncio.sleep(0.2)
    # A spare channel or two for the next checks, not one per check.
    assert len(connection.transport.connection.channels) <= 3  # type: ignore[union-attr]
    await halts.close()
    await connection.close()
    with pytest.raises(HaltUnknown):
        await halts.is_halted("acct15")
