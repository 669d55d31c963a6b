"""The nine documented endpoints end to end: REST → gateway → RabbitMQ → worker → paper exchange
(real HTTP) → reply. Assertions check what the paper exchange holds, not only what AIQT says."""

from __future__ import annotations

import concurrent.futures
import uuid
from decimal import Decimal
from typing import Any

import pytest

from harness.holdings import position
from harness.stack import Account, Stack

pytestmark = pytest.mark.integration

D = Decimal


def _orders(stack: Stack, account: Account) -> list[dict[str, Any]]:
    return list(stack.state(account)["orders"])


def _position(stack: Stack, account: Account, symbol: str = "BTCUSDT", side: str = "BOTH") -> Decimal:
    return position(stack.state(account), symbol, side)


def _limit_order(stack: Stack, account: Account) -> int:
    stack.admin.set_mark("BTCUSDT", "95000")
    return stack.limit_order(account)


# --- order/open/market ---------------------------------------------------------------------------


def test_open_market_with_stop_loss_and_take_profit(stack: Stack, account: Account) -> None:
    stack.admin.set_mark("BTCUSDT", "95000")
    with stack.client(account) as c:
        reply = c.open_market("BTCUSDT", "BUY", "0.010", stop_loss="90000", take_profit="99000.5")
    assert (reply.status, reply.code, reply.msg) == (200, 200, "订单提交成功")  # the API document's own words
    market, sl, tp = reply.data["market"], reply.data["stopLoss"], reply.data["takeProfit"]
    assert market["status"] == "FILLED" and market["type"] == "MARKET" and market["executedQty"] == "0.010"
    assert (sl["type"], D(sl["stopPrice"]), sl["closePosition"], sl["side"]) == ("STOP_MARKET", D(90000), True, "SELL")
    assert (tp["type"], tp["workingType"]) == ("TAKE_PROFIT_MARKET", "MARK_PRICE")

    state = stack.state(account)
    assert [(o["clientOrderId"], o["status"]) for o in state["orders"]] == [(market["clientOrderId"], "FILLED")]
    algos = {a["clientAlgoId"]: a for a in state["algoOrders"]}
    assert set(algos) == {sl["clientOrderId"], tp["clientOrderId"]}
    assert all(a["closePosition"] and a["workingType"] == "MARK_PRICE" for a in algos.values())
    assert D(algos[sl["clientOrderId"]]["triggerPrice"]) == D("90000")
    assert _position(stack, account) == D("0.010")


def test_open_market_without_protection_returns_null_legs(stack: Stack, account: Account) -> None:
    with stack.client(account) as c:
        reply = c.open_market("ETHUSDT", "SELL", "0.5")
    assert reply.code == 200 and reply.data["stopLoss"] is None and reply.data["takeProfit"] is None
    assert _position(stack, account, "ETHUSDT") == D("-0.5")
    assert stack.state(account)["algoOrders"] == []


def test_stop_loss_fires_at_the_exchange(stack: Stack, account: Account) -> None:
    stack.admin.set_mark("SOLUSDT", "180")
    with stack.client(account) as c:
        reply = c.open_market("SOLUSDT", "BUY", "10", stop_loss="170")
    assert reply.code == 200
    stack.admin.set_mark("SOLUSDT", "169")
    assert _position(stack, account, "SOLUSDT") == 0
    stack.admin.unpin("SOLUSDT")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"side": "BUY", "quantity": 1}, "symbol: is required"),
        ({"symbol": "BTCUSDT", "side": "HOLD", "quantity": 1}, "side:"),
        ({"symbol": "BTCUSDT", "side": "BUY", "quantity": -1}, "quantity: must be greater than 0"),
        ({"symbol": "BTCUSDT", "side": "BUY", "quantity": "NaN"}, "quantity:"),
        ({"symbol": "BTCUSDT", "side": "BUY", "quantity": "1" + "0" * 30}, "quantity: must be less than"),
        ({"symbol": "BTCUSDT", "side": "BUY", "quantity": 1e30}, "quantity: must be written without an exponent"),
        ({"symbol": "BTCUSDT", "side": "BUY", "quantity": "abc"}, "quantity:"),
        ({"symbol": "BTCUSDT", "side": "BUY", "quantity": 1, "stoploss": 1}, "stoploss: is not a known field"),
    ],
)
def test_open_market_bad_input_names_the_field(
    stack: Stack, account: Account, body: dict[str, Any], message: str
) -> None:
    with stack.client(account) as c:
        reply = c.request("POST", "/api/order/open/market", None, body)
    assert (reply.status, reply.code, reply.data) == (400, 400, None)
    assert message in reply.msg
    assert _orders(stack, account) == []


def test_binance_rejection_is_passed_through(stack: Stack, account: Account) -> None:
    with stack.client(account) as c:
        too_precise = c.open_market("BTCUSDT", "BUY", "0.0001234")
        no_margin = c.open_market("BTCUSDT", "BUY", "5")
        unknown = c.open_market("NOPEUSDT", "BUY", "1")
    assert too_precise.status == 400 and too_precise.code < 0
    assert (no_margin.status, no_margin.code) == (400, -2019)
    assert (unknown.status, unknown.code) == (400, -1121)
    assert _orders(stack, account) == []


# --- idempotency -------------------------------------------------------------------------------


def test_same_idempotency_key_places_one_order(stack: Stack, account: Account) -> None:
    key = uuid.uuid4().hex
    with stack.client(account) as c:
        first = c.open_market("BTCUSDT", "BUY", "0.002", idempotency_key=key)
        second = c.open_market("BTCUSDT", "BUY", "0.002", idempotency_key=key)
        other = c.open_market("BTCUSDT", "SELL", "0.001", idempotency_key=key)
    assert first.code == second.code == 200
    assert first.data == second.data
    assert (other.status, other.msg) == (400, "Idempotency-Key was already used for a different request")
    assert len(_orders(stack, account)) == 1
    assert _position(stack, account) == D("0.002")


def test_concurrent_duplicates_place_one_order(stack: Stack, account: Account) -> None:
    key = uuid.uuid4().hex
    with stack.client(account) as c, concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: c.open_market("BNBUSDT", "BUY", "1", idempotency_key=key), range(8)))
    assert {r.code for r in replies} == {200}
    assert len({r.data["market"]["orderId"] for r in replies}) == 1
    assert len(_orders(stack, account)) == 1
    assert _position(stack, account, "BNBUSDT") == D("1")


# --- account/summary ---------------------------------------------------------------------------


def test_account_summary(stack: Stack, account: Account) -> None:
    stack.admin.set_mark("BTCUSDT", "95000")
    with stack.client(account) as c:
        assert c.set_leverage("BTCUSDT", 5).code == 200
        opened = c.open_market("BTCUSDT", "BUY", "0.010", stop_loss="90000", take_profit="99000")
        stack.admin.set_mark("BTCUSDT", "96000")
        summary = c.account_summary()
        filtered = c.account_summary("ETHUSDT")
        everything = c.account_summary(show_zero=True)
    assert (summary.status, summary.code, summary.msg) == (200, 200, "Success")
    info = summary.data["accountInfo"]
    assert info["isHedgeMode"] is False
    assert D(str(info["totalWalletBalance"])) < D("10000")  # the taker fee was paid
    assert [b["currency"] for b in summary.data["balances"]] == ["USDT"]
    assert len(everything.data["balances"]) >= 6
    (pos,) = summary.data["positions"]
    assert (pos["symbol"], pos["direction"], pos["leverage"], pos["marginType"]) == ("BTCUSDT", "LONG", 5, "CROSS")
    assert D(str(pos["quantity"])) == D("0.010") and D(str(pos["markPrice"])) == D("96000")
    entry = D(str(pos["entryPrice"]))
    assert D(str(pos["unrealizedPnl"])) == (D("96000") - entry) * D("0.010")
    assert D(str(pos["marginUsed"])) == D("96000") * D("0.010") / 5
    assert D(str(pos["roe"])) > 0
    orders = {o["orderId"]: o for o in summary.data["activeOrders"]}
    assert set(orders) == {opened.data["stopLoss"]["orderId"], opened.data["takeProfit"]["orderId"]}
    assert D(str(orders[opened.data["stopLoss"]["orderId"]]["stopPrice"])) == D("90000")
    assert filtered.data["positions"] == [] and filtered.data["activeOrders"] == []
    stack.admin.unpin("BTCUSDT")


def test_accounts_are_separate(stack: Stack) -> None:
    a, b = stack.take_account(), stack.take_account()
    with stack.client(a) as ca, stack.client(b) as cb:
        assert ca.open_market("XRPUSDT", "BUY", "100").code == 200
        assert cb.account_summary().data["positions"] == []
    assert stack.state(b)["orders"] == []


# --- market ------------------------------------------------------------------------------------


def test_klines(stack: Stack, account: Account) -> None:
    with stack.client(account) as c:
        default = c.klines("BTCUSDT")
        short = c.klines("ETHUSDT", "15m", 3)
        bad_interval = c.klines("BTCUSDT", "7m")
        too_many = c.klines("BTCUSDT", "1h", 1001)
        unknown = c.klines("NOPEUSDT")
    assert (default.code, default.data["interval"], len(default.data["klines"])) == (200, "1h", 500)
    k = short.data["klines"]
    assert len(k) == 3 and all(x["closeTime"] - x["time"] == 15 * 60_000 - 1 for x in k)
    assert all(D(str(x["low"])) <= D(str(x["open"])) <= D(str(x["high"])) for x in k)
    assert (bad_interval.status, bad_interval.code, bad_interval.msg) == (400, 400, "Invalid interval.")
    assert (too_many.status, too_many.code) == (400, 400) and "limit" in too_many.msg
    assert (unknown.status, unknown.code) == (400, -1121)


def test_funding_rate(stack: Stack, account: Account) -> None:
    with stack.client(account) as c:
        current = c.funding_rate("BTCUSDT")
        history = c.funding_rate("BTCUSDT", 3)
        missing = c.request("GET", "/api/market/funding-rate")
        unknown = c.funding_rate("NOPEUSDT")
    assert (current.code == 200 and "historyRates" not in current.data) or current.data["historyRates"] is None
    rate = current.data["currentRate"]
    assert rate["nextFundingTime"] > rate["time"] and isinstance(rate["rate"], Decimal)
    assert len(history.data["historyRates"]) == 3
    assert all(row["realized"] == 0 for row in history.data["historyRates"])  # no position then
    assert (missing.status, missing.code, missing.msg) == (400, 400, "Symbol parameter is required")
    assert (unknown.status, unknown.code, unknown.msg) == (400, 400, "Invalid symbol")


# --- cancel / modify ---------------------------------------------------------------------------


def test_cancel_regular_and_algo_orders(stack: Stack, account: Account) -> None:
    order_id = _limit_order(stack, account)
    with stack.client(account) as c:
        opened = c.open_market("BTCUSDT", "BUY", "0.010", stop_loss="90000")
        sl_id = opened.data["stopLoss"]["orderId"]
        canceled = c.cancel_order(order_id, "BTCUSDT")
        again = c.cancel_order(order_id, "BTCUSDT")
        algo = c.cancel_order(sl_id, "BTCUSDT")
        unknown = c.cancel_order(123456789, "BTCUSDT")
        missing_symbol = c.request("DELETE", f"/api/order/{order_id}")
    assert (canceled.status, canceled.msg, canceled.data) == (
        200,
        "Order canceled",
        {"orderId": order_id, "status": "CANCELED"},
    )
    assert again.code == 200 and again.data["status"] == "CANCELED"
    assert (algo.code, algo.data["orderId"]) == (200, sl_id)
    assert (unknown.status, unknown.code, unknown.msg, unknown.data) == (404, 404, "Order does not exist", None)
    assert missing_symbol.status == 400 and "symbol" in missing_symbol.msg
    state = stack.state(account)
    assert {o["orderId"]: o["status"] for o in state["orders"]}[order_id] == "CANCELED"
    assert {a["algoId"]: a["algoStatus"] for a in state["algoOrders"]}[sl_id] == "CANCELED"


def test_modify_limit_order(stack: Stack, account: Account) -> None:
    order_id = _limit_order(stack, account)
    with stack.client(account) as c:
        updated = c.modify_order(order_id, "BTCUSDT", "BUY", "0.020", "93000.5")
        missing = c.request("PATCH", f"/api/order/{order_id}", None, {"symbol": "BTCUSDT", "price": 1, "quantity": 1})
        out_of_range = c.modify_order(order_id, "BTCUSDT", "BUY", "0.020", "10000")
        unknown = c.modify_order(987654321, "BTCUSDT", "BUY", "0.020", "91000")
    assert (updated.code, updated.msg) == (200, "Order updated")
    assert (updated.data["price"], updated.data["origQty"], updated.data["status"]) == ("93000.50", "0.020", "NEW")
    assert (missing.status, missing.msg) == (400, "Missing symbol, orderId, or side")
    assert out_of_range.status == 400 and out_of_range.code < 0
    assert unknown.status == 404
    held = {o["orderId"]: o for o in stack.state(account)["orders"]}[order_id]
    assert (D(held["price"]), D(held["origQty"])) == (D("93000.5"), D("0.02"))


# --- order/close/market ------------------------------------------------------------------------


def test_close_market_partial_then_full(stack: Stack, account: Account) -> None:
    with stack.client(account) as c:
        assert c.open_market("ETHUSDT", "BUY", "1.000").code == 200
        partial = c.close_market("ETHUSDT", "LONG", "0.400")
        too_much = c.close_market("ETHUSDT", "LONG", "5")
        full = c.close_market("ETHUSDT", "LONG")
        none_left = c.close_market("ETHUSDT", "LONG")
        wrong_side = c.close_market("BTCUSDT", "SHORT")
        missing = c.request("POST", "/api/order/close/market", None, {"symbol": "ETHUSDT"})
    assert (partial.code, partial.msg) == (200, "Position partially closed")
    assert (partial.data["mode"], partial.data["remainingPosition"], partial.data["positionClosed"]) == (
        "ONE-WAY",
        "0.600",
        False,
    )
    assert partial.data["reduceOnly"] is True and partial.data["side"] == "SELL"
    assert isinstance(partial.data["executedPrice"], Decimal) and partial.data["slippage"].endswith("%")
    assert (too_much.status, too_much.msg) == (400, "Quantity exceeds position (max: 0.600)")
    assert (full.msg, full.data["positionClosed"], full.data["remainingPosition"]) == ("Position closed", True, "0.000")
    assert (none_left.status, none_left.msg, none_left.data) == (
        400,
        "No active position found",
        {"symbol": "ETHUSDT", "positionSide": "LONG", "mode": "ONE-WAY"},
    )
    assert wrong_side.status == 400 and wrong_side.msg == "No active position found"
    assert (missing.status, missing.msg, missing.data) == (
        400,
        "Missing required parameters",
        {"required": ["symbol", "positionSide"]},
    )
    assert _position(stack, account, "ETHUSDT") == 0


def test_full_close_cancels_the_sides_stop_orders(stack: Stack, account: Account) -> None:
    stack.admin.set_mark("BTCUSDT", "95000")
    with stack.client(account) as c:
        opened = c.open_market("BTCUSDT", "BUY", "0.004", stop_loss="90000", take_profit="99000")
        partial = c.close_market("BTCUSDT", "LONG", "0.002")
        held = {a["algoId"]: a["algoStatus"] for a in stack.state(account)["algoOrders"]}
        full = c.close_market("BTCUSDT", "LONG")
    legs = {opened.data["stopLoss"]["orderId"], opened.data["takeProfit"]["orderId"]}
    assert partial.data["positionClosed"] is False and set(held) == legs and set(held.values()) == {"NEW"}
    assert full.data["positionClosed"] is True
    after = {a["algoId"]: a["algoStatus"] for a in stack.state(account)["algoOrders"]}
    assert after == dict.fromkeys(legs, "CANCELED")
    stack.admin.unpin("BTCUSDT")


def test_hedge_mode_open_and_close(stack: Stack, account: Account) -> None:
    stack.fapi(
        account,
        "POST",
        "/fapi/v1/positionSide/dual",
        dualSidePosition="true",
    )
    with stack.client(account) as c:
        long = c.open_market("BTCUSDT", "BUY", "0.003", stop_loss="50000")
        short = c.open_market("BTCUSDT", "SELL", "0.002")
        summary = c.account_summary()
        closed = c.close_market("BTCUSDT", "LONG")
    assert long.code == 200 and long.data["market"]["positionSide"] == "LONG"
    assert long.data["stopLoss"]["positionSide"] == "LONG"
    assert short.data["market"]["positionSide"] == "SHORT"
    assert summary.data["accountInfo"]["isHedgeMode"] is True
    assert {(p["positionSide"], p["direction"]) for p in summary.data["positions"]} == {
        ("LONG", "LONG"),
        ("SHORT", "SHORT"),
    }
    assert (closed.code, closed.data["mode"], closed.data["positionSide"]) == (200, "HEDGE", "LONG")
    assert _position(stack, account, side="LONG") == 0 and _position(stack, account, side="SHORT") == D("-0.002")


# --- position ----------------------------------------------------------------------------------


def test_leverage(stack: Stack, account: Account) -> None:
    with stack.client(account) as c:
        ok = c.set_leverage("BTCUSDT", 20)
        too_high = c.set_leverage("BTCUSDT", 126)
        zero = c.set_leverage("BTCUSDT", 0)
        missing = c.request("POST", "/api/position/leverage", None, {"symbol": "BTCUSDT"})
        over_symbol_max = c.set_leverage("XRPUSDT", 125)
    assert (ok.code, ok.msg, ok.data["leverage"], ok.data["symbol"]) == (200, "Leverage updated", 20, "BTCUSDT")
    assert D(ok.data["maxQty"]) > 0
    assert (too_high.status, too_high.msg) == (400, "Invalid leverage (1-125 allowed)")
    assert zero.msg == "Invalid leverage (1-125 allowed)"
    assert (missing.status, missing.msg) == (400, "Missing required parameters: symbol, leverage")
    assert over_symbol_max.status == 400 and over_symbol_max.code < 0  # Binance's own code, passed through
    configs = stack.fapi(account, "GET", "/fapi/v1/symbolConfig", symbol="BTCUSDT")
    assert configs[0]["leverage"] == 20


def test_margin_mode(stack: Stack, account: Account) -> None:
    with stack.client(account) as c:
        changed = c.set_margin_mode("ETHUSDT", "ISOLATED")
        same = c.set_margin_mode("ETHUSDT", "ISOLATED")
        invalid = c.set_margin_mode("ETHUSDT", "CROSS")
        missing = c.request("POST", "/api/position/margin-mode", None, {"symbol": "ETHUSDT"})
        assert c.open_market("ETHUSDT", "BUY", "0.1").code == 200
        with_position = c.set_margin_mode("ETHUSDT", "CROSSED")
    assert (changed.code, changed.msg, changed.data) == (
        200,
        "Margin mode updated",
        {"symbol": "ETHUSDT", "marginType": "ISOLATED", "success": True},
    )
    assert (same.code, same.msg) == (200, "Margin mode unchanged")
    assert (invalid.status, invalid.msg) == (400, "Invalid marginType (ISOLATED/CROSSED)")
    assert (missing.status, missing.msg) == (400, "Missing required parameters: symbol, marginType")
    assert (with_position.status, with_position.code) == (400, -4048)
    configs = stack.fapi(account, "GET", "/fapi/v1/symbolConfig", symbol="ETHUSDT")
    assert configs[0]["marginType"] == "ISOLATED"


def test_funding_realized_is_what_this_account_paid(stack: Stack, account: Account) -> None:
    stack.admin.set_mark("XRPUSDT", "2.5")
    with stack.client(account) as c:
        assert c.open_market("XRPUSDT", "BUY", "1000").code == 200
        stack.admin.advance(8 * 3600 * 1000)  # one funding settlement at the exchange
        reply = c.funding_rate("XRPUSDT", 5)
    stack.admin.unpin("XRPUSDT")
    income = [i for i in stack.state(account)["income"] if i["incomeType"] == "FUNDING_FEE"]
    assert len(income) == 1
    rows = {row["time"]: row for row in reply.data["historyRates"]}
    settled = rows[int(income[0]["time"])]
    assert settled["realized"] == D(income[0]["income"]) != 0
    assert sum(row["realized"] for row in rows.values()) == D(income[0]["income"])
