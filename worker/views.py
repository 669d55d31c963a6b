"""Binance's JSON → the API document's reply shapes: the one place that maps exchange fields.

Pure functions, no I/O, so they are tested on recorded-shape JSON (tests/unit/test_views.py).

An algo (conditional) order is shown as an order object, as the document's stopLoss/takeProfit
are. It is the same mapping: `as_order` renames the algo order's fields to the order object's
(`algoId` → `orderId`, `triggerPrice` → `stopPrice`, …) and `order_view` does the rest, so a
field added to the order object is mapped once for both.

Money stays `Decimal` all the way (`dec`); a missing or empty Binance number reads as zero.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from schemas import replies as r

Json = dict[str, Any]

ZERO = Decimal(0)

#: Fields an algo order shares with an order object, under the same name.
SHARED_FIELDS = (
    "symbol",
    "side",
    "positionSide",
    "price",
    "timeInForce",
    "workingType",
    "priceProtect",
    "priceMatch",
    "selfTradePreventionMode",
    "goodTillDate",
    "closePosition",
    "updateTime",
)
#: Algo order field → the order object's name for it.
ALGO_TO_ORDER = {
    "algoId": "orderId",
    "clientAlgoId": "clientOrderId",
    "algoStatus": "status",
    "orderType": "type",
    "quantity": "origQty",
    "triggerPrice": "stopPrice",
    "actualPrice": "avgPrice",
    "actualQty": "executedQty",
    "createTime": "time",
}


def dec(value: Any) -> Decimal:
    if value is None or value == "":
        return ZERO
    return value if isinstance(value, Decimal) else Decimal(str(value))


def as_order(algo: Json) -> Json:
    """An algo order's JSON renamed to an order object's."""
    order = {key: algo[key] for key in SHARED_FIELDS if key in algo}
    order |= {name: algo[key] for key, name in ALGO_TO_ORDER.items() if key in algo}
    order.setdefault("status", "NEW")
    order.setdefault("type", algo.get("type", ""))
    # A closePosition stop can only reduce the position.
    order["reduceOnly"] = bool(algo.get("reduceOnly", False)) or bool(algo.get("closePosition", False))
    return order


def order_view(o: Json) -> r.Order:
    """A Binance order object (from POST/GET/PUT/DELETE order) in the document's shape."""
    executed = o.get("executedQty", "0")
    return r.Order(
        orderId=int(o["orderId"]),
        symbol=o["symbol"],
        status=o["status"],
        clientOrderId=o.get("clientOrderId", ""),
        price=dec(o.get("price")),
        avgPrice=dec(o.get("avgPrice")),
        origQty=dec(o.get("origQty")),
        executedQty=dec(executed),
        cumQty=dec(o.get("cumQty", executed)),
        cumQuote=dec(o.get("cumQuote")),
        timeInForce=o.get("timeInForce", "GTC"),
        type=o["type"],
        reduceOnly=bool(o.get("reduceOnly", False)),
        closePosition=bool(o.get("closePosition", False)),
        side=o["side"],
        positionSide=o.get("positionSide", "BOTH"),
        stopPrice=dec(o.get("stopPrice")),
        workingType=o.get("workingType", "CONTRACT_PRICE"),
        priceProtect=bool(o.get("priceProtect", False)),
        origType=o.get("origType", o["type"]),
        priceMatch=o.get("priceMatch", "NONE"),
        selfTradePreventionMode=o.get("selfTradePreventionMode", "NONE"),
        goodTillDate=int(o.get("goodTillDate") or 0),
        updateTime=int(o.get("updateTime") or o.get("time") or 0),
    )


def algo_view(algo: Json) -> r.Order:
    """An algo (conditional) order mapped onto the order object, as the document's SL/TP show."""
    return order_view(as_order(algo))


def active_order(o: Json) -> r.ActiveOrder:
    """An open order (GET openOrders) as one of the account summary's activeOrders."""
    return r.ActiveOrder(
        orderId=int(o["orderId"]),
        symbol=o["symbol"],
        positionSide=o.get("positionSide", "BOTH"),
        price=dec(o.get("price")),
        origQty=dec(o.get("origQty")),
        executedQty=dec(o.get("executedQty")),
        status=o["status"],
        type=o["type"],
        side=o["side"],
        time=int(o.get("time") or o.get("updateTime") or 0),
        stopPrice=dec(o.get("stopPrice")),
        workingType=o.get("workingType", "CONTRACT_PRICE"),
    )


def active_algo_order(algo: Json) -> r.ActiveOrder:
    """An open algo order (GET openAlgoOrders) as one of the account summary's activeOrders. An open
    algo order has executed nothing: once triggered, what it placed is an ordinary order."""
    return active_order(as_order(algo) | {"executedQty": ZERO})


def account_info(account: Json, config: Json) -> r.AccountInfo:
    """GET /fapi/v2/account and /fapi/v1/accountConfig → accountInfo."""
    assets = account.get("assets", [])
    return r.AccountInfo(
        totalWalletBalance=dec(account.get("totalWalletBalance")),
        totalUnrealizedProfit=dec(account.get("totalUnrealizedProfit")),
        totalMarginBalance=dec(account.get("totalMarginBalance")),
        totalPositionInitialMargin=dec(account.get("totalPositionInitialMargin")),
        totalOpenOrderInitialMargin=dec(account.get("totalOpenOrderInitialMargin")),
        availableBalance=dec(account.get("availableBalance")),
        maxWithdrawAmount=dec(account.get("maxWithdrawAmount")),
        isHedgeMode=bool(config.get("dualSidePosition", False)),
        updateTime=max([int(a.get("updateTime") or 0) for a in assets] or [0]),
    )


def balance_view(asset: Json) -> r.Balance:
    """One of GET /fapi/v2/account's assets."""
    return r.Balance(
        currency=asset["asset"],
        balance=dec(asset.get("walletBalance")),
        available=dec(asset.get("availableBalance")),
        unrealizedPnl=dec(asset.get("unrealizedProfit")),
    )


def position_view(row: Json) -> r.Position:
    """One row of GET /fapi/v2/positionRisk."""
    amt = dec(row.get("positionAmt"))
    side = row.get("positionSide", "BOTH")
    if side == "LONG" or (side == "BOTH" and amt > 0):
        direction = "LONG" if amt else "NEUTRAL"
    elif side == "SHORT" or amt < 0:
        direction = "SHORT" if amt else "NEUTRAL"
    else:
        direction = "NEUTRAL"
    leverage = int(dec(row.get("leverage", 1)))
    isolated = str(row.get("marginType", "cross")).lower() == "isolated"
    notional = abs(dec(row.get("notional")))
    if not notional:
        notional = abs(amt) * dec(row.get("markPrice"))
    margin = dec(row.get("isolatedMargin")) if isolated else (notional / leverage if leverage else ZERO)
    pnl = dec(row.get("unRealizedProfit"))
    roe = (pnl / margin * 100).quantize(Decimal("0.01")) if margin else ZERO
    return r.Position(
        symbol=row["symbol"],
        positionSide=side,
        direction=direction,
        marginType="ISOLATED" if isolated else "CROSS",
        leverage=leverage,
        quantity=abs(amt),
        entryPrice=dec(row.get("entryPrice")),
        markPrice=dec(row.get("markPrice")),
        liquidationPrice=dec(row.get("liquidationPrice")),
        marginUsed=margin.quantize(Decimal("0.00000001")) if margin else ZERO,
        unrealizedPnl=pnl,
        roe=roe,
    )


def kline_view(k: list[Any]) -> r.Kline:
    """One row of GET /fapi/v1/klines: [open time, open, high, low, close, volume, close time, quote volume, …]."""
    return r.Kline(
        time=int(k[0]),
        open=dec(k[1]),
        high=dec(k[2]),
        low=dec(k[3]),
        close=dec(k[4]),
        volume=dec(k[5]),
        closeTime=int(k[6]),
        quoteVolume=dec(k[7]),
    )


def leverage_view(body: Json, symbol: str, leverage: int) -> r.LeverageData:
    """POST /fapi/v1/leverage's answer."""
    return r.LeverageData(
        symbol=body.get("symbol", symbol),
        leverage=int(body.get("leverage", leverage)),
        maxQty=format(dec(body.get("maxNotionalValue")), "f"),
    )
