"""Orders, algo orders, positions and Binance's rejections, over real HTTP."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from paper.embedded import PaperAdmin

from .conftest import Fapi

D = Decimal
ORDER = "/fapi/v1/order"
ALGO = "/fapi/v1/algoOrder"


@pytest.fixture
def btc(admin: PaperAdmin, pinned: list[str]) -> str:
    admin.set_mark("BTCUSDT", "100000")
    pinned.append("BTCUSDT")
    return "BTCUSDT"


def position(admin: PaperAdmin, fapi: Fapi, symbol: str = "BTCUSDT", side: str = "BOTH") -> dict[str, Any]:
    positions: list[dict[str, Any]] = admin.state(fapi.api_key)["positions"]
    for p in positions:
        if p["symbol"] == symbol and p["positionSide"] == side:
            return p
    return {"positionAmt": "0"}


# --- market orders --------------------------------------------------------------------------
def test_market_ack_then_result(fapi: Fapi, admin: PaperAdmin, btc: str) -> None:
    ack = fapi.order(symbol=btc, side="BUY", type="MARKET", quantity="0.010")
    assert ack["status"] == "NEW"
    assert ack["executedQty"] == "0.000"
    assert isinstance(ack["orderId"], int)
    got = fapi.call("GET", ORDER, symbol=btc, orderId=ack["orderId"])
    assert got["status"] == "FILLED"
    assert got["avgPrice"] == "100000.00"
    assert isinstance(got["time"], int)
    res = fapi.market(btc, "BUY", "0.010")
    assert (res["status"], res["executedQty"], res["cumQuote"]) == ("FILLED", "0.010", "1000.00000")
    st = admin.state(fapi.api_key)
    pos = position(admin, fapi)
    assert pos["positionAmt"] == "0.020"
    assert pos["entryPrice"] == "100000"
    usdt = st["balances"][0]
    assert usdt["asset"] == "USDT"
    assert D(usdt["balance"]) == D("10000") - D("2") * D("0.5")  # 2 × 1000 notional × 0.0005 taker
    kinds = [i["incomeType"] for i in st["income"]]
    assert kinds == ["COMMISSION", "COMMISSION"]
    assert {b["asset"] for b in st["balances"]} == {"USDT", "USDC", "FDUSD", "BNB", "ETH", "BTC"}


def test_close_with_reduce_only_realizes_pnl(fapi: Fapi, admin: PaperAdmin, btc: str) -> None:
    fapi.market(btc, "BUY", "0.010")
    admin.set_mark(btc, "101000")
    res = fapi.market(btc, "SELL", "0.010", reduceOnly="true")
    assert res["status"] == "FILLED"
    assert res["reduceOnly"] is True
    inc = admin.state(fapi.api_key)["income"]
    pnl = [i for i in inc if i["incomeType"] == "REALIZED_PNL"]
    assert [p["income"] for p in pnl] == ["10.00000000"]
    assert position(admin, fapi)["positionAmt"] == "0.000"
    trades = fapi.call("GET", "/fapi/v1/userTrades", symbol=btc)
    assert [t["realizedPnl"] for t in trades] == ["0.00000000", "10.00000000"]


def test_reduce_only_rejected_when_flat(fapi: Fapi, btc: str) -> None:
    assert fapi.error("POST", ORDER, symbol=btc, side="SELL", type="MARKET", quantity="0.010", reduceOnly="true") == (
        400,
        -2022,
        "ReduceOnly Order is rejected.",
    )


def test_margin_insufficient(fapi: Fapi, btc: str) -> None:
    # 10000 USDT at 20x buys at most ~2 BTC of notional 200k
    assert fapi.error("POST", ORDER, symbol=btc, side="BUY", type="MARKET", quantity="3") == (
        400,
        -2019,
        "Margin is insufficient.",
    )


@pytest.mark.parametrize(
    ("params", "code", "msg"),
    [
        ({"type": "MARKET", "quantity": "0.0001"}, -1111, "Precision is over the maximum defined for this asset."),
        ({"type": "MARKET", "quantity": "0.0005"}, -1111, "Precision is over the maximum defined for this asset."),
        ({"type": "MARKET", "quantity": "0"}, -4003, "Quantity less than zero."),
        ({"type": "MARKET", "quantity": "0.000"}, -4003, "Quantity less than zero."),
        (
            {"type": "LIMIT", "quantity": "0.001", "price": "99000", "timeInForce": "GTC"},
            -4164,
            "Order's notional must be no smaller than 100 (unless you choose reduce only)",
        ),
        (
            {"type": "LIMIT", "quantity": "0.01", "price": "99000.05", "timeInForce": "GTC"},
            -4014,
            "Price not increased by tick size.",
        ),
        (
            {"type": "LIMIT", "quantity": "0.01", "price": "106000", "timeInForce": "GTC"},
            -4016,
            "Price is higher than mark price multiplier cap.",
        ),
        (
            {"type": "LIMIT", "quantity": "0.01", "price": "94000", "timeInForce": "GTC"},
            -4024,
            "Price is lower than mark price multiplier floor.",
        ),
        (
            {"type": "STOP_MARKET", "quantity": "0.01", "stopPrice": "90000"},
            -4120,
            "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
        ),
        (
            {"type": "TAKE_PROFIT_MARKET", "quantity": "0.01"},
            -4120,
            "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
        ),
        ({"type": "MARKET", "quantity": "0.01", "newClientOrderId": "bad id!"}, -4015, "Client order id is not valid."),
        (
            {"type": "MARKET", "quantity": "0.01", "newClientOrderId": "x" * 37},
            -4015,
            "Client order id length should not be more than 36 chars",
        ),
        ({"type": "MARKET"}, -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed."),
        (
            {"type": "LIMIT", "quantity": "0.01", "price": "99000"},
            -1102,
            "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.",
        ),
        ({"type": "MARKET", "quantity": "0.01", "symbol": "DOGEUSDT"}, -1121, "Invalid symbol."),
        (
            {"type": "MARKET", "quantity": "0.01", "positionSide": "LONG"},
            -4061,
            "Order's position side does not match user's setting.",
        ),
    ],
)
def test_order_rejections(fapi: Fapi, btc: str, params: dict[str, Any], code: int, msg: str) -> None:
    body = {"symbol": btc, "side": "BUY", **params}
    assert fapi.error("POST", ORDER, **body) == (400, code, msg)
    assert admin_orders(fapi) == []


def admin_orders(fapi: Fapi) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = fapi.call("GET", "/fapi/v1/allOrders", symbol="BTCUSDT")
    return orders


def test_missing_symbol_and_malformed(fapi: Fapi) -> None:
    assert fapi.error("POST", ORDER, side="BUY", type="MARKET", quantity="1")[1] == -1102
    assert fapi.error("POST", ORDER, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="1,5")[1] == -1100
    assert (
        fapi.error("POST", ORDER, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01", reduceOnly="yes")[1]
        == -1130
    )


# --- limit orders, modify, cancel, query ---------------------------------------------------------
def test_limit_rest_modify_fill(fapi: Fapi, admin: PaperAdmin, btc: str) -> None:
    o = fapi.order(
        symbol=btc,
        side="BUY",
        type="LIMIT",
        quantity="0.010",
        price="99000",
        timeInForce="GTC",
        newClientOrderId="lim-1",
    )
    assert o["status"] == "NEW"
    assert o["price"] == "99000.00"
    opens = fapi.call("GET", "/fapi/v1/openOrders", symbol=btc)
    assert [x["orderId"] for x in opens] == [o["orderId"]]
    assert fapi.call("GET", "/fapi/v1/openOrder", symbol=btc, origClientOrderId="lim-1")["orderId"] == o["orderId"]
    assert fapi.error("PUT", ORDER, symbol=btc, orderId=o["orderId"], side="BUY", quantity="0.010", price="99000") == (
        400,
        -5027,
        "No need to modify the order.",
    )
    m = fapi.call("PUT", ORDER, symbol=btc, orderId=o["orderId"], side="BUY", quantity="0.020", price="98500")
    assert (m["origQty"], m["price"], m["status"]) == ("0.020", "98500.00", "NEW")
    r = admin.set_mark(btc, "98400")
    assert r["triggered"] == []
    got = fapi.call("GET", ORDER, symbol=btc, origClientOrderId="lim-1")
    assert got["status"] == "FILLED"
    assert got["avgPrice"] == "98500.00"
    assert position(admin, fapi)["positionAmt"] == "0.020"
    inc = admin.state(fapi.api_key)["income"]
    assert inc[-1]["income"] == "-0.39400000"  # maker 0.0002 × 1970
    assert fapi.error("GET", "/fapi/v1/openOrder", symbol=btc, orderId=o["orderId"])[1:] == (
        -2013,
        "Order does not exist.",
    )


def test_marketable_limit_fills_at_once(fapi: Fapi, btc: str) -> None:
    o = fapi.order(
        symbol=btc,
        side="BUY",
        type="LIMIT",
        quantity="0.010",
        price="101000",
        timeInForce="GTC",
        newOrderRespType="RESULT",
    )
    assert (o["status"], o["avgPrice"]) == ("FILLED", "100000.00")
    code = fapi.error(
        "POST", ORDER, symbol=btc, side="BUY", type="LIMIT", quantity="0.010", price="101000", timeInForce="GTX"
    )[1]
    assert code == -5022


def test_cancel_and_query_unknown(fapi: Fapi, btc: str) -> None:
    o = fapi.order(
        symbol=btc,
        side="SELL",
        type="LIMIT",
        quantity="0.010",
        price="104000",
        timeInForce="GTC",
        newClientOrderId="c-1",
    )
    c = fapi.call("DELETE", ORDER, symbol=btc, origClientOrderId="c-1")
    assert (c["orderId"], c["status"]) == (o["orderId"], "CANCELED")
    assert fapi.error("DELETE", ORDER, symbol=btc, orderId=o["orderId"]) == (400, -2011, "Unknown order sent.")
    assert fapi.error("DELETE", ORDER, symbol=btc, orderId=1) == (400, -2011, "Unknown order sent.")
    assert fapi.error("GET", ORDER, symbol=btc, orderId=1) == (400, -2013, "Order does not exist.")
    assert fapi.error("GET", ORDER, symbol=btc, origClientOrderId="never") == (400, -2013, "Order does not exist.")
    assert fapi.call("GET", ORDER, symbol=btc, origClientOrderId="c-1")["status"] == "CANCELED"
    assert (
        fapi.error("PUT", ORDER, symbol=btc, orderId=o["orderId"], side="SELL", quantity="0.02", price="104000")[1]
        == -2013
    )


def test_client_id_unique_among_open_orders_only(fapi: Fapi, btc: str) -> None:
    first = fapi.market(btc, "BUY", "0.010", newClientOrderId="dup-1")
    again = fapi.market(btc, "BUY", "0.010", newClientOrderId="dup-1")  # filled: Binance lets it through
    assert again["orderId"] != first["orderId"]
    got = fapi.call("GET", ORDER, symbol=btc, origClientOrderId="dup-1")
    assert got["orderId"] == again["orderId"]  # the newest
    fapi.order(
        symbol=btc,
        side="BUY",
        type="LIMIT",
        quantity="0.010",
        price="99000",
        timeInForce="GTC",
        newClientOrderId="dup-2",
    )
    assert fapi.error(
        "POST",
        ORDER,
        symbol=btc,
        side="BUY",
        type="LIMIT",
        quantity="0.010",
        price="99000",
        timeInForce="GTC",
        newClientOrderId="dup-2",
    ) == (400, -4116, "clientOrderId is duplicated")


# --- algo orders ------------------------------------------------------------------------------
def test_stop_loss_fires_on_mark(fapi: Fapi, admin: PaperAdmin, btc: str) -> None:
    fapi.market(btc, "BUY", "0.010")
    sl = fapi.call(
        "POST",
        ALGO,
        algoType="CONDITIONAL",
        symbol=btc,
        side="SELL",
        type="STOP_MARKET",
        triggerPrice="95000",
        closePosition="true",
        workingType="MARK_PRICE",
        clientAlgoId="sl-1",
    )
    tp = fapi.call(
        "POST",
        ALGO,
        algoType="CONDITIONAL",
        symbol=btc,
        side="SELL",
        type="TAKE_PROFIT_MARKET",
        triggerPrice="110000",
        quantity="0.010",
        reduceOnly="true",
    )
    assert (sl["algoStatus"], sl["orderType"], sl["closePosition"]) == ("NEW", "STOP_MARKET", True)
    assert isinstance(sl["algoId"], int)
    opens = fapi.call("GET", "/fapi/v1/openAlgoOrders", symbol=btc)
    assert {a["algoId"] for a in opens} == {sl["algoId"], tp["algoId"]}
    assert fapi.call("GET", "/fapi/v1/openOrders", symbol=btc) == []
    r = admin.set_mark(btc, "96000")
    assert r["triggered"] == []
    r = admin.step_mark(btc, "-2")  # 94080
    assert r["triggered"] == [sl["algoId"]]
    assert r["markPrice"] == "94080.00"
    q = fapi.call("GET", ALGO, algoId=sl["algoId"])
    assert q["algoStatus"] == "FINISHED"
    assert q["actualOrderId"] != ""
    filled = fapi.call("GET", ORDER, symbol=btc, orderId=int(q["actualOrderId"]))
    assert (filled["status"], filled["type"], filled["side"]) == ("FILLED", "MARKET", "SELL")
    assert position(admin, fapi)["positionAmt"] == "0.000"
    st = admin.state(fapi.api_key)
    algo = {a["algoId"]: a for a in st["algoOrders"]}
    assert algo[sl["algoId"]]["actualOrderId"] == filled["orderId"]
    # the TP is reduce-only and the position is gone: cancel it
    c = fapi.call("DELETE", ALGO, algoId=tp["algoId"])
    assert c == {"algoId": tp["algoId"], "clientAlgoId": tp["clientAlgoId"], "code": "200", "msg": "success"}
    assert fapi.error("DELETE", ALGO, algoId=tp["algoId"]) == (400, -2011, "Unknown order sent.")
    assert fapi.error("DELETE", ALGO, algoId=sl["algoId"]) == (400, -2011, "Unknown order sent.")
    assert fapi.call("GET", ALGO, clientAlgoId="sl-1")["algoId"] == sl["algoId"]
    hist = fapi.call("GET", "/fapi/v1/allAlgoOrders", symbol=btc)
    assert {a["algoId"] for a in hist} == {sl["algoId"], tp["algoId"]}


def test_take_profit_with_quantity_for_short(fapi: Fapi, admin: PaperAdmin, btc: str) -> None:
    fapi.market(btc, "SELL", "0.020")
    tp = fapi.call(
        "POST",
        ALGO,
        algoType="CONDITIONAL",
        symbol=btc,
        side="BUY",
        type="TAKE_PROFIT_MARKET",
        triggerPrice="97000",
        quantity="0.010",
        reduceOnly="true",
    )
    r = admin.set_mark(btc, "96900")
    assert r["triggered"] == [tp["algoId"]]
    assert position(admin, fapi)["positionAmt"] == "-0.010"


def test_algo_rejections(fapi: Fapi, btc: str) -> None:
    base = {"algoType": "CONDITIONAL", "symbol": btc, "side": "SELL", "type": "STOP_MARKET"}
    code, msg = fapi.error("POST", ALGO, **base, triggerPrice="95000", closePosition="true")[1:]
    assert code == -4509
    assert msg
    fapi.market(btc, "BUY", "0.010")
    assert fapi.error("POST", ALGO, **base, triggerPrice="101000", closePosition="true")[1] == -2021
    assert fapi.error("POST", ALGO, **base, triggerPrice="95000", closePosition="true", quantity="0.01")[1] == -4137
    assert fapi.error("POST", ALGO, **base, closePosition="true")[1] == -1102
    assert fapi.error("POST", ALGO, **{**base, "algoType": "VP"}, triggerPrice="95000", quantity="0.01")[1] == -1130
    assert fapi.error("GET", ALGO, algoId=42) == (400, -2013, "Order does not exist.")
    assert fapi.error("DELETE", ALGO, algoId=42) == (400, -2011, "Unknown order sent.")
    assert fapi.error("DELETE", ALGO, clientAlgoId="nope") == (400, -2011, "Unknown order sent.")


def test_cancel_all_algo_open_orders(fapi: Fapi, btc: str) -> None:
    fapi.market(btc, "BUY", "0.010")
    for trig in ("90000", "91000"):
        fapi.call(
            "POST",
            ALGO,
            algoType="CONDITIONAL",
            symbol=btc,
            side="SELL",
            type="STOP_MARKET",
            triggerPrice=trig,
            closePosition="true",
        )
    r = fapi.call("DELETE", "/fapi/v1/algoOpenOrders", symbol=btc)
    assert r["code"] == 200
    assert fapi.call("GET", "/fapi/v1/openAlgoOrders") == []


# --- settings ----------------------------------------------------------------------------------
def test_leverage_and_margin_type(fapi: Fapi, btc: str) -> None:
    assert fapi.call("POST", "/fapi/v1/leverage", symbol=btc, leverage=10)["leverage"] == 10
    assert fapi.error("POST", "/fapi/v1/leverage", symbol=btc, leverage=126) == (
        400,
        -4028,
        "Leverage 126 is not valid",
    )
    assert fapi.error("POST", "/fapi/v1/leverage", symbol=btc, leverage=0)[1] == -4028
    assert fapi.error("POST", "/fapi/v1/marginType", symbol=btc, marginType="CROSSED") == (
        400,
        -4046,
        "No need to change margin type.",
    )
    ok = fapi.call("POST", "/fapi/v1/marginType", symbol=btc, marginType="ISOLATED")
    assert ok == {"code": 200, "msg": "success"}
    cfg = fapi.call("GET", "/fapi/v1/symbolConfig", symbol=btc)
    assert cfg == [
        {
            "symbol": btc,
            "marginType": "ISOLATED",
            "isAutoAddMargin": False,
            "leverage": 10,
            "maxNotionalValue": "230000000",
        }
    ]
    fapi.order(symbol=btc, side="BUY", type="LIMIT", quantity="0.010", price="99000", timeInForce="GTC")
    assert fapi.error("POST", "/fapi/v1/marginType", symbol=btc, marginType="CROSSED") == (
        400,
        -4047,
        "Margin type cannot be changed if there exists open orders.",
    )
    fapi.call("DELETE", "/fapi/v1/allOpenOrders", symbol=btc)
    fapi.market(btc, "BUY", "0.010")
    assert fapi.error("POST", "/fapi/v1/marginType", symbol=btc, marginType="CROSSED") == (
        400,
        -4048,
        "Margin type cannot be changed if there exists position.",
    )
    pr = fapi.call("GET", "/fapi/v2/positionRisk", symbol=btc)[0]
    assert (pr["marginType"], pr["leverage"], pr["isolatedWallet"]) == ("isolated", "10", "100.00000000")
    assert isinstance(pr["updateTime"], int)


def test_brackets_commission_account_config(fapi: Fapi) -> None:
    b = fapi.call("GET", "/fapi/v1/leverageBracket", symbol="BTCUSDT")
    assert b["symbol"] == "BTCUSDT"
    first = b["brackets"][0]
    assert (first["initialLeverage"], first["notionalFloor"], first["maintMarginRatio"], first["cum"]) == (
        125,
        0,
        0.004,
        0,
    )
    assert len(fapi.call("GET", "/fapi/v1/leverageBracket")) == 5
    assert fapi.call("GET", "/fapi/v1/commissionRate", symbol="ETHUSDT")["takerCommissionRate"] == "0.0005"
    cfg = fapi.call("GET", "/fapi/v1/accountConfig")
    assert cfg["dualSidePosition"] is False
    assert cfg["canTrade"] is True


def test_account_and_balance_shapes(fapi: Fapi, btc: str) -> None:
    fapi.market(btc, "BUY", "0.010")
    v3 = fapi.call("GET", "/fapi/v3/account")
    assert [p["symbol"] for p in v3["positions"]] == ["BTCUSDT"]
    assert "leverage" not in v3["positions"][0]
    assert [a["asset"] for a in v3["assets"]] == ["USDT", "USDC", "FDUSD", "BNB", "ETH", "BTC"]
    v2 = fapi.call("GET", "/fapi/v2/account")
    assert len(v2["positions"]) == 5
    btc_pos = next(p for p in v2["positions"] if p["symbol"] == "BTCUSDT")
    assert (btc_pos["leverage"], btc_pos["isolated"], btc_pos["positionAmt"]) == ("20", False, "0.010")
    assert D(v2["totalWalletBalance"]) == D("9999.5")
    for path in ("/fapi/v2/balance", "/fapi/v3/balance"):
        bal = fapi.call("GET", path)
        assert bal[0]["asset"] == "USDT"
        assert bal[0]["balance"] == "9999.50000000"
        assert bal[1]["balance"] == "0.00000000"
    v3p = fapi.call("GET", "/fapi/v3/positionRisk")
    assert [p["symbol"] for p in v3p] == ["BTCUSDT"]
    assert v3p[0]["notional"] == "1000.00000000"
    assert len(fapi.call("GET", "/fapi/v2/positionRisk")) == 5


# --- hedge mode -------------------------------------------------------------------------------
def test_hedge_mode(fapi: Fapi, admin: PaperAdmin, btc: str) -> None:
    dual = "/fapi/v1/positionSide/dual"
    assert fapi.call("GET", dual) == {"dualSidePosition": False}
    assert fapi.error("POST", dual, dualSidePosition="false") == (400, -4059, "No need to change position side.")
    fapi.order(symbol=btc, side="BUY", type="LIMIT", quantity="0.010", price="99000", timeInForce="GTC")
    assert fapi.error("POST", dual, dualSidePosition="true")[1:] == (
        -4067,
        "Position side cannot be changed if there exists open orders.",
    )
    fapi.call("DELETE", "/fapi/v1/allOpenOrders", symbol=btc)
    fapi.market(btc, "BUY", "0.010")
    assert fapi.error("POST", dual, dualSidePosition="true")[1:] == (
        -4068,
        "Position side cannot be changed if there exists position.",
    )
    fapi.market(btc, "SELL", "0.010", reduceOnly="true")
    assert fapi.call("POST", dual, dualSidePosition="true") == {"code": 200, "msg": "success"}
    assert fapi.call("GET", dual) == {"dualSidePosition": True}
    assert fapi.error("POST", ORDER, symbol=btc, side="BUY", type="MARKET", quantity="0.010")[1] == -4061
    assert fapi.error(
        "POST", ORDER, symbol=btc, side="BUY", type="MARKET", quantity="0.010", positionSide="LONG", reduceOnly="true"
    ) == (400, -1106, "Parameter 'reduceonly' sent when not required.")
    fapi.market(btc, "BUY", "0.010", positionSide="LONG")
    fapi.market(btc, "SELL", "0.020", positionSide="SHORT")
    st = admin.state(fapi.api_key)
    assert st["dualSidePosition"] is True
    amts = {p["positionSide"]: p["positionAmt"] for p in st["positions"] if p["symbol"] == btc}
    assert (amts["LONG"], amts["SHORT"]) == ("0.010", "-0.020")
    risk = fapi.call("GET", "/fapi/v3/positionRisk", symbol=btc)
    assert {p["positionSide"] for p in risk} == {"LONG", "SHORT"}
    assert (
        fapi.error("POST", ORDER, symbol=btc, side="SELL", type="MARKET", quantity="0.020", positionSide="LONG")[1]
        == -2022
    )
    sl = fapi.call(
        "POST",
        ALGO,
        algoType="CONDITIONAL",
        symbol=btc,
        side="BUY",
        positionSide="SHORT",
        type="STOP_MARKET",
        triggerPrice="102000",
        closePosition="true",
    )
    r = admin.set_mark(btc, "102500")
    assert r["triggered"] == [sl["algoId"]]
    amts = {p["positionSide"]: p["positionAmt"] for p in admin.state(fapi.api_key)["positions"]}
    assert (amts["LONG"], amts["SHORT"]) == ("0.010", "0.000")
    fapi.market(btc, "SELL", "0.010", positionSide="LONG")
    assert fapi.call("POST", dual, dualSidePosition="false")["code"] == 200


# --- isolated margin and liquidation ------------------------------------------------------------
def test_isolated_liquidation(fapi: Fapi, admin: PaperAdmin, btc: str) -> None:
    fapi.call("POST", "/fapi/v1/marginType", symbol=btc, marginType="ISOLATED")
    fapi.call("POST", "/fapi/v1/leverage", symbol=btc, leverage=50)
    fapi.market(btc, "BUY", "0.100")
    pr = fapi.call("GET", "/fapi/v2/positionRisk", symbol=btc)[0]
    assert pr["isolatedWallet"] == "200.00000000"  # 10000 notional / 50
    lp = D(pr["liquidationPrice"])
    assert D("98000") < lp < D("98500")
    r = admin.set_mark(btc, str((lp + D("50")).quantize(D("0.1"))))
    assert r["liquidated"] == []
    r = admin.set_mark(btc, str((lp - D("10")).quantize(D("0.1"))))
    assert len(r["liquidated"]) == 1
    assert r["liquidated"][0]["apiKey"] == fapi.api_key
    st = admin.state(fapi.api_key)
    assert position(admin, fapi)["positionAmt"] == "0.000"
    wallet = D(st["balances"][0]["balance"])
    # lost exactly the isolated margin plus the opening commission
    assert wallet == D("10000") - D("200") - D("5")
    auto = [o for o in st["orders"] if o["clientOrderId"].startswith("autoclose-")]
    assert len(auto) == 1
    assert auto[0]["status"] == "FILLED"


def test_cross_liquidation(fapi: Fapi, admin: PaperAdmin, btc: str) -> None:
    fapi.call("POST", "/fapi/v1/leverage", symbol=btc, leverage=100)
    fapi.market(btc, "SELL", "0.500")  # 50k notional on 10k wallet
    lp = D(fapi.call("GET", "/fapi/v3/positionRisk", symbol=btc)[0]["liquidationPrice"])
    assert D("119000") < lp < D("120000")
    r = admin.set_mark(btc, str(lp.quantize(D("0.1")) + 1))
    assert [x["positionAmt"] for x in r["liquidated"]] == ["-0.500"]
    st = admin.state(fapi.api_key)
    assert D(st["balances"][0]["balance"]) >= 0
    assert any(i["incomeType"] == "INSURANCE_CLEAR" for i in st["income"])


# --- market data -------------------------------------------------------------------------------
def test_klines(fapi: Fapi, admin: PaperAdmin, pinned: list[str]) -> None:
    get = fapi.client.get
    rows = get("/fapi/v1/klines", params={"symbol": "ETHUSDT", "interval": "1m"}).json()
    assert len(rows) == 500
    assert all(len(r) == 12 for r in rows)
    assert all(isinstance(r[0], int) and isinstance(r[6], int) and isinstance(r[8], int) for r in rows)
    assert all(isinstance(r[1], str) for r in rows)
    assert all(rows[i][4] == rows[i + 1][1] for i in range(len(rows) - 1))
    assert all(D(r[3]) <= min(D(r[1]), D(r[4])) and D(r[2]) >= max(D(r[1]), D(r[4])) for r in rows)
    assert len(get("/fapi/v1/klines", params={"symbol": "ETHUSDT", "interval": "1d", "limit": 2000}).json()) == 1500
    for iv in ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"):
        r = get("/fapi/v1/klines", params={"symbol": "XRPUSDT", "interval": iv, "limit": 3})
        assert r.status_code == 200
        assert len(r.json()) == 3
    r = get("/fapi/v1/klines", params={"symbol": "ETHUSDT", "interval": "7m"})
    assert (r.status_code, r.json()) == (400, {"code": -1120, "msg": "Invalid interval."})
    r = get("/fapi/v1/klines", params={"symbol": "ETHBTC", "interval": "1m"})
    assert (r.status_code, r.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})
    admin.set_mark("ETHUSDT", "3500")
    pinned.append("ETHUSDT")
    last = get("/fapi/v1/klines", params={"symbol": "ETHUSDT", "interval": "1m", "limit": 1}).json()[0]
    assert last[4] == "3500.00"
    assert get("/fapi/v1/premiumIndex", params={"symbol": "ETHUSDT"}).json()["markPrice"] == "3500.00000000"


def test_funding_settles_on_clock_advance(fapi: Fapi, admin: PaperAdmin, btc: str) -> None:
    fapi.market(btc, "BUY", "0.100")
    clock = admin.clock()
    nft = (clock["marketTime"] // 28_800_000 + 1) * 28_800_000
    r = admin.advance(nft - clock["marketTime"] + 1000)
    assert r["fundingSettled"] == 1
    inc = [i for i in admin.state(fapi.api_key)["income"] if i["incomeType"] == "FUNDING_FEE"]
    assert len(inc) == 1
    assert inc[0]["time"] == nft
    rates = fapi.client.get("/fapi/v1/fundingRate", params={"symbol": btc, "limit": 1}).json()
    assert rates[0]["fundingTime"] == nft
    assert rates[0]["markPrice"] == "100000.00000000"
    assert D(inc[0]["income"]) == -D("0.1") * D("100000") * D(rates[0]["fundingRate"])
    got = fapi.call("GET", "/fapi/v1/income", incomeType="FUNDING_FEE", startTime=nft - 1)
    assert [g["tranId"] for g in got] == [inc[0]["tranId"]]
    later = admin.advance(16 * 3_600_000)
    assert later["fundingSettled"] == 2
    assert abs(fapi.call("GET", "/fapi/v1/time")["serverTime"] - later["wallTime"]) < 5000


# --- more order kinds ---------------------------------------------------------------------------
def test_order_test_endpoint_validates_without_placing(fapi: Fapi, btc: str) -> None:
    assert fapi.call("POST", "/fapi/v1/order/test", symbol=btc, side="BUY", type="MARKET", quantity="0.010") == {}
    r = fapi.raw("POST", "/fapi/v1/order/test", {"symbol": btc, "side": "BUY", "type": "MARKET", "quantity": "50"})
    assert r.json()["code"] == -2019
    assert fapi.call("GET", "/fapi/v1/allOrders", symbol=btc) == []


def test_ioc_fok_gtd(fapi: Fapi, admin: PaperAdmin, btc: str) -> None:
    ioc = fapi.order(
        symbol=btc,
        side="BUY",
        type="LIMIT",
        quantity="0.010",
        price="99000",
        timeInForce="IOC",
        newOrderRespType="RESULT",
    )
    assert ioc["status"] == "EXPIRED"
    assert fapi.error(
        "POST", ORDER, symbol=btc, side="BUY", type="LIMIT", quantity="0.010", price="99000", timeInForce="FOK"
    )[1:] == (-5021, "Due to the order could not be filled immediately, the FOK order has been rejected.")
    now = admin.clock()["marketTime"]
    assert (
        fapi.error(
            "POST",
            ORDER,
            symbol=btc,
            side="BUY",
            type="LIMIT",
            quantity="0.010",
            price="99000",
            timeInForce="GTD",
            goodTillDate=now + 1000,
        )[1]
        == -5040
    )
    gtd = fapi.order(
        symbol=btc,
        side="BUY",
        type="LIMIT",
        quantity="0.010",
        price="99000",
        timeInForce="GTD",
        goodTillDate=now + 700_000,
    )
    admin.advance(800_000)
    assert fapi.call("GET", ORDER, symbol=btc, orderId=gtd["orderId"])["status"] == "EXPIRED"


def test_trailing_stop(fapi: Fapi, admin: PaperAdmin, btc: str) -> None:
    fapi.market(btc, "BUY", "0.010")
    ts = fapi.call(
        "POST",
        ALGO,
        algoType="CONDITIONAL",
        symbol=btc,
        side="SELL",
        type="TRAILING_STOP_MARKET",
        quantity="0.010",
        callbackRate="1",
        reduceOnly="true",
    )
    assert ts["callbackRate"] == "1"
    assert admin.set_mark(btc, "102000")["triggered"] == []
    assert admin.set_mark(btc, "101000")["triggered"] == []
    assert admin.set_mark(btc, "100970")["triggered"] == [ts["algoId"]]
    assert position(admin, fapi)["positionAmt"] == "0.000"


def test_stop_limit_algo_places_a_limit(fapi: Fapi, admin: PaperAdmin, btc: str) -> None:
    fapi.market(btc, "BUY", "0.010")
    st = fapi.call(
        "POST",
        ALGO,
        algoType="CONDITIONAL",
        symbol=btc,
        side="SELL",
        type="STOP",
        quantity="0.010",
        triggerPrice="99000",
        price="98000",
        reduceOnly="true",
    )
    assert admin.set_mark(btc, "98950")["triggered"] == [st["algoId"]]
    q = fapi.call("GET", ALGO, algoId=st["algoId"])
    assert (q["algoStatus"], q["actualType"]) == ("FINISHED", "LIMIT")
    assert position(admin, fapi)["positionAmt"] == "0.000"


def test_history_filters(fapi: Fapi, btc: str) -> None:
    ids = [fapi.market(btc, side, "0.010")["orderId"] for side in ("BUY", "SELL", "BUY")]
    assert [o["orderId"] for o in fapi.call("GET", "/fapi/v1/allOrders", symbol=btc, orderId=ids[1])] == ids[1:]
    assert [o["orderId"] for o in fapi.call("GET", "/fapi/v1/allOrders", symbol=btc, limit=1)] == ids[-1:]
    trades = fapi.call("GET", "/fapi/v1/userTrades", symbol=btc, orderId=ids[0])
    assert [t["orderId"] for t in trades] == ids[:1]
    assert trades[0]["buyer"] is True
    assert trades[0]["commissionAsset"] == "USDT"
    inc = fapi.call("GET", "/fapi/v1/income", incomeType="COMMISSION", limit=2)
    assert len(inc) == 2
    assert (
        fapi.call("GET", "/fapi/v1/income", incomeType="COMMISSION", limit=2, page=2)[0]["tranId"] > inc[-1]["tranId"]
    )


def test_modify_checks_filters_and_margin(fapi: Fapi, btc: str) -> None:
    o = fapi.order(symbol=btc, side="BUY", type="LIMIT", quantity="0.010", price="99000", timeInForce="GTC")
    put = {"symbol": btc, "orderId": o["orderId"], "side": "BUY"}
    assert fapi.error("PUT", ORDER, **put, quantity="5", price="99000")[1] == -2019
    assert fapi.error("PUT", ORDER, **put, quantity="0.010", price="99000.05")[1] == -4014
    assert fapi.error("PUT", ORDER, **put, quantity="0.0101", price="99000")[1] == -1111
    assert fapi.error("PUT", ORDER, **put, quantity="0.010", price="90000")[1] == -4024
    held = fapi.call("GET", ORDER, symbol=btc, orderId=o["orderId"])
    assert (held["origQty"], held["price"], held["status"]) == ("0.010", "99000.00", "NEW")
    m = fapi.order(symbol=btc, side="BUY", type="MARKET", quantity="0.010")
    assert (
        fapi.error("PUT", ORDER, symbol=btc, orderId=m["orderId"], side="BUY", quantity="0.02", price="99000")[1]
        == -2013
    )


def test_cross_liquidation_price_accounts_for_other_positions(
    fapi: Fapi, admin: PaperAdmin, btc: str, pinned: list[str]
) -> None:
    admin.set_mark("ETHUSDT", "3400")
    pinned.append("ETHUSDT")
    for sym in (btc, "ETHUSDT"):
        fapi.call("POST", "/fapi/v1/leverage", symbol=sym, leverage=50)
    fapi.market(btc, "BUY", "3")
    fapi.market("ETHUSDT", "BUY", "10")
    lp = D(fapi.call("GET", "/fapi/v3/positionRisk", symbol=btc)[0]["liquidationPrice"])
    alone = D("100000") - (D("10000") - D("150") - D("17")) / 3  # rough: without the ETH leg
    assert lp > D("90000")
    assert lp != alone
    assert admin.set_mark(btc, str((lp + 2).quantize(D("0.1"))))["liquidated"] == []
    r = admin.set_mark(btc, str((lp - 2).quantize(D("0.1"))))
    assert sorted(x["symbol"] for x in r["liquidated"]) == [btc, "ETHUSDT"]
    assert all(p["positionAmt"] in ("0.000", "0") for p in admin.state(fapi.api_key)["positions"])
