"""Binance JSON → the API document's shapes (worker.views), on responses shaped as Binance documents them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from worker.views import (
    ZERO,
    active_algo_order,
    active_order,
    algo_view,
    as_order,
    kline_view,
    leverage_view,
    order_view,
    position_view,
)

#: POST /fapi/v1/order, newOrderRespType=RESULT, a filled market order (Binance's documented fields).
MARKET_RESULT: dict[str, Any] = {
    "clientOrderId": "aq-Xk3b9Qz1L0mWc2Pq7Yt4Ra-M",
    "cumQty": "0.002",
    "cumQuote": "190.01240",
    "executedQty": "0.002",
    "orderId": 4049825141,
    "avgPrice": "95006.20",
    "origQty": "0.002",
    "price": "0.00",
    "reduceOnly": False,
    "side": "BUY",
    "positionSide": "BOTH",
    "status": "FILLED",
    "stopPrice": "0.00",
    "closePosition": False,
    "symbol": "BTCUSDT",
    "timeInForce": "GTC",
    "type": "MARKET",
    "origType": "MARKET",
    "updateTime": 1750485492076,
    "workingType": "CONTRACT_PRICE",
    "priceProtect": False,
    "priceMatch": "NONE",
    "selfTradePreventionMode": "EXPIRE_MAKER",
    "goodTillDate": 0,
}

#: POST /fapi/v1/algoOrder (algoType CONDITIONAL): a closePosition stop loss, as Binance documents it.
ALGO_NEW: dict[str, Any] = {
    "algoId": 2146760,
    "clientAlgoId": "aq-Xk3b9Qz1L0mWc2Pq7Yt4Ra-SL",
    "algoType": "CONDITIONAL",
    "orderType": "STOP_MARKET",
    "symbol": "BTCUSDT",
    "side": "SELL",
    "positionSide": "BOTH",
    "timeInForce": "GTC",
    "quantity": "0.000",
    "algoStatus": "NEW",
    "triggerPrice": "90000.00",
    "price": "0.00",
    "icebergQuantity": None,
    "selfTradePreventionMode": "EXPIRE_MAKER",
    "workingType": "MARK_PRICE",
    "priceMatch": "NONE",
    "closePosition": True,
    "priceProtect": False,
    "reduceOnly": False,
    "activatePrice": "",
    "callbackRate": "",
    "createTime": 1750485492076,
    "updateTime": 1750485492080,
    "triggerTime": 0,
    "goodTillDate": 0,
}


def test_order_view_of_a_filled_market_order() -> None:
    assert order_view(MARKET_RESULT).model_dump(mode="json") == {
        "orderId": 4049825141,
        "symbol": "BTCUSDT",
        "status": "FILLED",
        "clientOrderId": "aq-Xk3b9Qz1L0mWc2Pq7Yt4Ra-M",
        "price": "0.00",
        "avgPrice": "95006.20",
        "origQty": "0.002",
        "executedQty": "0.002",
        "cumQty": "0.002",
        "cumQuote": "190.01240",
        "timeInForce": "GTC",
        "type": "MARKET",
        "reduceOnly": False,
        "closePosition": False,
        "side": "BUY",
        "positionSide": "BOTH",
        "stopPrice": "0.00",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": "MARKET",
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "updateTime": 1750485492076,
    }


def test_order_view_fills_what_a_minimal_answer_leaves_out() -> None:
    minimal = {"orderId": "7", "symbol": "ETHUSDT", "status": "NEW", "type": "LIMIT", "side": "SELL", "time": 5}
    view = order_view(minimal)
    assert (view.orderId, view.clientOrderId, view.origType, view.updateTime) == (7, "", "LIMIT", 5)
    assert (view.executedQty, view.cumQty, view.price) == (Decimal(0), Decimal(0), Decimal(0))
    assert (view.timeInForce, view.positionSide, view.workingType) == ("GTC", "BOTH", "CONTRACT_PRICE")
    assert (view.priceMatch, view.selfTradePreventionMode, view.goodTillDate) == ("NONE", "NONE", 0)


def test_algo_view_is_the_order_object() -> None:
    assert algo_view(ALGO_NEW).model_dump(mode="json") == {
        "orderId": 2146760,
        "symbol": "BTCUSDT",
        "status": "NEW",
        "clientOrderId": "aq-Xk3b9Qz1L0mWc2Pq7Yt4Ra-SL",
        "price": "0.00",
        "avgPrice": "0",
        "origQty": "0.000",
        "executedQty": "0",
        "cumQty": "0",
        "cumQuote": "0",
        "timeInForce": "GTC",
        "type": "STOP_MARKET",
        "reduceOnly": True,  # a closePosition stop can only reduce
        "closePosition": True,
        "side": "SELL",
        "positionSide": "BOTH",
        "stopPrice": "90000.00",
        "workingType": "MARK_PRICE",
        "priceProtect": False,
        "origType": "STOP_MARKET",
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "updateTime": 1750485492080,
    }


def test_a_triggered_algo_order_reports_what_it_executed() -> None:
    # GET /fapi/v1/algoOrder after the stop fired: the actual* fields name the order it placed.
    queried = {
        **ALGO_NEW,
        "algoStatus": "FINISHED",
        "actualOrderId": "4049825199",
        "actualPrice": "89990.10",
        "actualType": "MARKET",
        "actualQty": "0.002",
        "updateTime": 0,
    }
    view = algo_view(queried)
    assert (view.status, view.avgPrice, view.executedQty, view.cumQty) == (
        "FINISHED",
        Decimal("89990.10"),
        Decimal("0.002"),
        Decimal("0.002"),
    )
    assert view.updateTime == 1750485492076  # no updateTime: the creation time
    assert view.orderId == 2146760  # the algo id, not the order it placed


@pytest.mark.parametrize(
    ("algo", "status", "reduce_only"),
    [
        ({"algoId": 1, "symbol": "BTCUSDT", "side": "BUY"}, "NEW", False),
        ({"algoId": 1, "symbol": "BTCUSDT", "side": "BUY", "reduceOnly": True}, "NEW", True),
        ({"algoId": 1, "symbol": "BTCUSDT", "side": "BUY", "algoStatus": "CANCELED"}, "CANCELED", False),
    ],
)
def test_as_order_defaults(algo: dict[str, Any], status: str, reduce_only: bool) -> None:
    order = as_order(algo)
    assert (order["status"], order["reduceOnly"], order["type"]) == (status, reduce_only, "")
    assert "clientOrderId" not in order  # absent stays absent, so order_view's defaults apply


def test_active_orders_plain_and_algo() -> None:
    limit = {
        "orderId": 11,
        "symbol": "BTCUSDT",
        "status": "NEW",
        "price": "90000",
        "origQty": "0.010",
        "executedQty": "0.004",
        "type": "LIMIT",
        "side": "BUY",
        "positionSide": "LONG",
        "stopPrice": "0",
        "time": 1000,
        "updateTime": 2000,
    }
    assert active_order(limit).model_dump(mode="json") == {
        "orderId": 11,
        "symbol": "BTCUSDT",
        "positionSide": "LONG",
        "price": "90000",
        "origQty": "0.010",
        "executedQty": "0.004",
        "status": "NEW",
        "type": "LIMIT",
        "side": "BUY",
        "time": 1000,
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
    }
    algo = active_algo_order({**ALGO_NEW, "actualQty": "0.002"})
    assert algo.model_dump(mode="json") == {
        "orderId": 2146760,
        "symbol": "BTCUSDT",
        "positionSide": "BOTH",
        "price": "0.00",
        "origQty": "0.000",
        "executedQty": "0",  # an open algo order has executed nothing
        "status": "NEW",
        "type": "STOP_MARKET",
        "side": "SELL",
        "time": 1750485492076,  # its creation time
        "stopPrice": "90000.00",
        "workingType": "MARK_PRICE",
    }


#: GET /fapi/v2/positionRisk rows (Binance's documented fields).
ONE_WAY_LONG = {
    "symbol": "BTCUSDT",
    "positionAmt": "0.010",
    "entryPrice": "95000.0",
    "markPrice": "96000.00000000",
    "unRealizedProfit": "10.00000000",
    "liquidationPrice": "85000.10",
    "leverage": "10",
    "maxNotionalValue": "2500000",
    "marginType": "cross",
    "isolatedMargin": "0.00000000",
    "isAutoAddMargin": "false",
    "positionSide": "BOTH",
    "notional": "960.00000000",
    "isolatedWallet": "0",
    "updateTime": 1750485492076,
}


def test_position_view_one_way_cross() -> None:
    assert position_view(ONE_WAY_LONG).model_dump(mode="json") == {
        "symbol": "BTCUSDT",
        "positionSide": "BOTH",
        "direction": "LONG",
        "marginType": "CROSS",
        "leverage": 10,
        "quantity": "0.010",
        "entryPrice": "95000.0",
        "markPrice": "96000.00000000",
        "liquidationPrice": "85000.10",
        "marginUsed": "96.00000000",  # notional / leverage
        "unrealizedPnl": "10.00000000",
        "roe": "10.42",  # pnl / margin, in %
    }


def test_position_view_hedge_short_isolated() -> None:
    row = {
        **ONE_WAY_LONG,
        "positionSide": "SHORT",
        "positionAmt": "-0.010",
        "marginType": "isolated",
        "isolatedMargin": "50.0",
        "unRealizedProfit": "-10.0",
    }
    view = position_view(row)
    assert (view.direction, view.marginType, view.quantity) == ("SHORT", "ISOLATED", Decimal("0.010"))
    assert (view.marginUsed, view.roe) == (Decimal("50.0"), Decimal("-20.00"))


@pytest.mark.parametrize("side", ["BOTH", "LONG", "SHORT"])
def test_a_flat_position_is_neutral(side: str) -> None:
    flat = {**ONE_WAY_LONG, "positionSide": side, "positionAmt": "0.000", "notional": "0", "unRealizedProfit": "0"}
    view = position_view(flat)
    assert (view.direction, view.quantity, view.marginUsed, view.roe) == ("NEUTRAL", ZERO, ZERO, ZERO)


def test_kline_view() -> None:
    row = [1750482000000, "95000.10", "95500.00", "94800.00", "95100.20", "123.456", 1750485599999, "11734567.89", 4321]
    assert kline_view(row).model_dump(mode="json") == {
        "time": 1750482000000,
        "open": "95000.10",
        "high": "95500.00",
        "low": "94800.00",
        "close": "95100.20",
        "volume": "123.456",
        "closeTime": 1750485599999,
        "quoteVolume": "11734567.89",
    }


def test_leverage_view() -> None:
    body = {"leverage": 21, "maxNotionalValue": "1000000", "symbol": "BTCUSDT"}
    assert leverage_view(body, "BTCUSDT", 21).model_dump() == {"symbol": "BTCUSDT", "leverage": 21, "maxQty": "1000000"}
    assert leverage_view({}, "ETHUSDT", 5).model_dump() == {"symbol": "ETHUSDT", "leverage": 5, "maxQty": "0"}
