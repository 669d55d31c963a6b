"""What changed while nobody listened: a REST snapshot turned into AIQT events.

After any reconnect, listenKey expiry or takeover, the streamer publishes — before resuming live
events — every order and SL/TP order that changed since the last event it published (less a margin),
the positions of every symbol it touched or holds, and the balances. A fired stop or a fill that
happened in the gap therefore always reaches consumers; so may a change they already saw (delivery is
at least once: an order's id and status let a consumer drop the repeat).

Binance's `allOrders` filters by creation time, not update time, so an old resting order that filled
in the gap would be missed by a time filter: each symbol's most recent orders are read and filtered
by `updateTime` here instead.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from schemas import events as ev
from streamer.translate import CommandLookup, Draft, fired_protection, make_position
from worker.binance.endpoints import Exchange

Json = dict[str, Any]


def _dec(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def order_from_rest(row: Json) -> ev.OrderEvent:
    return ev.OrderEvent(
        orderId=int(row["orderId"]),
        clientOrderId=str(row.get("clientOrderId", "")),
        symbol=row["symbol"],
        side=row["side"],
        type=row.get("origType") or row["type"],
        status=row["status"],
        price=_dec(row.get("price")),
        avgPrice=_dec(row.get("avgPrice")),
        origQty=_dec(row.get("origQty")),
        executedQty=_dec(row.get("executedQty")),
        stopPrice=_dec(row.get("stopPrice")),
        positionSide=row.get("positionSide", "BOTH"),
        reduceOnly=bool(row.get("reduceOnly", False)),
        updateTime=int(row.get("updateTime") or 0),
        execution="RESYNC",
    )


def algo_from_rest(row: Json) -> ev.OrderEvent:
    return ev.OrderEvent(
        orderId=int(row["algoId"]),
        clientOrderId=str(row.get("clientAlgoId", "")),
        symbol=row["symbol"],
        side=row["side"],
        type=row["orderType"],
        status=row["algoStatus"],
        price=_dec(row.get("price")),
        avgPrice=_dec(row.get("actualPrice")),
        origQty=_dec(row.get("quantity")),
        executedQty=_dec(row.get("actualQty")),
        stopPrice=_dec(row.get("triggerPrice")),
        positionSide=row.get("positionSide", "BOTH"),
        reduceOnly=bool(row.get("reduceOnly", False)),
        updateTime=int(row.get("updateTime") or 0),
        algo=True,
        execution="RESYNC",
    )


def position_from_rest(row: Json) -> ev.PositionEvent:
    """A row of GET /fapi/v2/positionRisk."""
    amount = _dec(row.get("positionAmt"))
    side = row.get("positionSide", "BOTH")
    return make_position(
        row["symbol"], side, amount, row.get("entryPrice"), row.get("unRealizedProfit"), row.get("marginType")
    )


async def snapshot(
    exchange: Exchange, *, since_ms: int, now_ms: int, known_symbols: set[str], lookup: CommandLookup
) -> tuple[list[Draft], set[str]]:
    """The events that bring a consumer up to date, and every symbol they concern."""
    positions = await exchange.position_risk()
    open_orders = await exchange.open_orders()
    open_algos = await exchange.open_algo_orders()
    income = await exchange.income(start_time=since_ms) if since_ms else []
    held = {p["symbol"] for p in positions if _dec(p.get("positionAmt"))}
    symbols = set(known_symbols) | held | {o["symbol"] for o in open_orders} | {a["symbol"] for a in open_algos}
    symbols |= {i["symbol"] for i in income if i.get("symbol")}

    drafts: list[Draft] = []
    for symbol in sorted(symbols):
        for row in await exchange.recent_orders(symbol):
            if int(row.get("updateTime") or 0) >= since_ms:
                drafts.append((ev.EventType.ORDER, order_from_rest(row), now_ms))
        for row in await exchange.recent_algo_orders(symbol):
            if int(row.get("updateTime") or 0) < since_ms:
                continue
            drafts.append((ev.EventType.ORDER, algo_from_rest(row), now_ms))
            fired = fired_protection(
                str(row.get("clientAlgoId", "")),
                "FINISHED" if row["algoStatus"] in ("FINISHED", "TRIGGERED") else row["algoStatus"],
                row.get("actualOrderId"),
                row.get("actualPrice"),
                row.get("actualQty"),
                symbol,
                lookup,
            )
            if fired is not None:
                drafts.append((ev.EventType.PROTECTION, fired, now_ms))
    for row in positions:
        if row["symbol"] in symbols:
            drafts.append((ev.EventType.POSITION, position_from_rest(row), now_ms))
    reported = {row["symbol"] for row in positions}
    for symbol in sorted(symbols - reported):  # not listed at all: flat
        flat = {"symbol": symbol, "positionAmt": "0", "positionSide": "BOTH"}
        drafts.append((ev.EventType.POSITION, position_from_rest(flat), now_ms))
    account = await exchange.account()
    for asset in account.get("assets", []):
        if _dec(asset.get("walletBalance")):
            balance = ev.BalanceEvent(
                currency=asset["asset"], balance=_dec(asset.get("walletBalance")), change=Decimal(0), reason="RESYNC"
            )
            drafts.append((ev.EventType.BALANCE, balance, now_ms))
    return drafts, symbols
