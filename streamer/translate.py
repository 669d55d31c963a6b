"""Binance user-data events → AIQT events (pure functions: no I/O, unit-tested on Binance's JSON).

One Binance event may become several AIQT events: an ACCOUNT_UPDATE carries balances and positions;
the fill of a liquidation order is an `order` and a `liquidation`; an SL/TP algo order that finished
filled is an `order` and a `protection` naming the AIQT command that placed it. Binance writes money
as strings; so do these events where the REST replies do (orders), and numbers where the API
document shows numbers (positions, balances) — exact decimals either way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from schemas import events as ev

Json = dict[str, Any]
#: (type, data, event time) of one AIQT account event, before it gets its seq.
Draft = tuple[ev.EventType, ev.EventData, int]
#: The command id that placed the order with this client id, if AIQT placed it.
CommandLookup = Callable[[str], str | None]

#: AIQT's client ids: `aq-<token>-<leg>` (worker/ids.py); SL and TP are the protection legs.
_AIQT_LEG = re.compile(r"^aq-[A-Za-z0-9_-]{22}-(SL|TP)$")
_LIQUIDATION = ("autoclose-", "adl_autoclose", "settlement_autoclose-")


def _dec(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def _text(value: Any) -> str:
    return format(_dec(value), "f")


def protection_leg(client_id: str) -> str | None:
    """`SL` or `TP` for the client id of an AIQT stop loss / take profit, else None."""
    match = _AIQT_LEG.match(client_id)
    return match.group(1) if match else None


def translate(event: Json, lookup: CommandLookup) -> list[Draft]:
    """The AIQT events of one Binance user-data event (none for events AIQT does not publish)."""
    kind = event.get("e")
    if kind == "ORDER_TRADE_UPDATE":
        return order_trade_update(event)
    if kind == "ALGO_UPDATE":
        return algo_update(event, lookup)
    if kind == "ACCOUNT_UPDATE":
        return account_update(event)
    if kind == "MARGIN_CALL":
        return margin_call(event)
    return []


def order_trade_update(event: Json) -> list[Draft]:
    o = event["o"]
    time = int(event["E"])
    trade = o.get("x") == "TRADE"
    data = ev.OrderEvent(
        orderId=int(o["i"]),
        clientOrderId=str(o.get("c", "")),
        symbol=o["s"],
        side=o["S"],
        type=o.get("ot") or o["o"],
        status=o["X"],
        price=_dec(o.get("p")),
        avgPrice=_dec(o.get("ap")),
        origQty=_dec(o.get("q")),
        executedQty=_dec(o.get("z")),
        stopPrice=_dec(o.get("sp")),
        positionSide=o.get("ps", "BOTH"),
        reduceOnly=bool(o.get("R", False)),
        updateTime=int(o.get("T") or event.get("T") or time),
        execution=o.get("x", ""),
        lastFilledQty=_dec(o.get("l")) if trade else None,
        lastFilledPrice=_dec(o.get("L")) if trade else None,
        commission=_dec(o.get("n")) if trade else None,
        commissionAsset=o.get("N") if trade else None,
        realizedPnl=_dec(o.get("rp")) if trade else None,
    )
    drafts: list[Draft] = [(ev.EventType.ORDER, data, time)]
    liquidation = o.get("o") == "LIQUIDATION" or str(o.get("c", "")).startswith(_LIQUIDATION)
    if liquidation and (trade or o.get("x") == "CALCULATED"):
        drafts.append((ev.EventType.LIQUIDATION, _liquidation(o), time))
    return drafts


def _liquidation(o: Json) -> ev.LiquidationEvent:
    return ev.LiquidationEvent(
        symbol=o["s"],
        side=o["S"],
        orderId=int(o["i"]),
        quantity=_dec(o.get("z") or o.get("q")),
        price=_dec(o.get("ap") or o.get("L") or o.get("p")),
        status=o["X"],
    )


def algo_update(event: Json, lookup: CommandLookup) -> list[Draft]:
    o = event["o"]
    time = int(event["E"])
    client_id = str(o.get("caid", ""))
    data = ev.OrderEvent(
        orderId=int(o["aid"]),
        clientOrderId=client_id,
        symbol=o["s"],
        side=o["S"],
        type=o["o"],
        status=o["X"],
        price=_dec(o.get("p")),
        avgPrice=_dec(o.get("ap")),
        origQty=_dec(o.get("q")),
        executedQty=_dec(o.get("aq")),
        stopPrice=_dec(o.get("tp")),
        positionSide=o.get("ps", "BOTH"),
        reduceOnly=bool(o.get("R", False)),
        updateTime=int(event.get("T") or time),
        algo=True,
        execution=o["X"],
    )
    drafts: list[Draft] = [(ev.EventType.ORDER, data, time)]
    fired = fired_protection(client_id, o["X"], o.get("ai"), o.get("ap"), o.get("aq"), o["s"], lookup)
    if fired is not None:
        drafts.append((ev.EventType.PROTECTION, fired, time))
    return drafts


def fired_protection(
    client_id: str, status: str, order_id: Any, price: Any, qty: Any, symbol: str, lookup: CommandLookup
) -> ev.ProtectionEvent | None:
    """The protection event of an AIQT SL/TP leg whose triggered order filled, else None."""
    leg = protection_leg(client_id)
    if leg is None or status != "FINISHED" or _dec(qty) <= 0 or not str(order_id or "").isdigit():
        return None
    return ev.ProtectionEvent(
        commandId=lookup(client_id),
        leg=leg,
        orderId=int(order_id),
        clientOrderId=client_id,
        symbol=symbol,
        fillPrice=_dec(price),
        quantity=_dec(qty),
    )


def account_update(event: Json) -> list[Draft]:
    time = int(event["E"])
    update = event["a"]
    reason = str(update.get("m", ""))
    drafts: list[Draft] = []
    for balance in update.get("B", []):
        data = ev.BalanceEvent(
            currency=balance["a"], balance=_dec(balance.get("wb")), change=_dec(balance.get("bc")), reason=reason
        )
        drafts.append((ev.EventType.BALANCE, data, time))
    for position in update.get("P", []):
        drafts.append((ev.EventType.POSITION, position_event(position), time))
    return drafts


def position_event(p: Json) -> ev.PositionEvent:
    """A position of an ACCOUNT_UPDATE (`pa` signed amount, `ps` side), as the account summary shows it."""
    return make_position(p["s"], p.get("ps", "BOTH"), _dec(p.get("pa")), p.get("ep"), p.get("up"), p.get("mt"))


def make_position(symbol: str, side: str, amount: Decimal, entry: Any, pnl: Any, margin_type: Any) -> ev.PositionEvent:
    """A position event from a signed amount and its side (BOTH, LONG, SHORT), from a stream or REST."""
    if not amount:
        direction = "NEUTRAL"
    elif side == "LONG" or (side == "BOTH" and amount > 0):
        direction = "LONG"
    else:
        direction = "SHORT"
    isolated = str(margin_type or "cross").lower() == "isolated"
    return ev.PositionEvent(
        symbol=symbol,
        positionSide=side,
        direction=direction,
        quantity=abs(amount),
        entryPrice=_dec(entry),
        unrealizedPnl=_dec(pnl),
        marginType="ISOLATED" if isolated else "CROSS",
    )


def margin_call(event: Json) -> list[Draft]:
    time = int(event["E"])
    drafts: list[Draft] = []
    for p in event.get("p", []):
        isolated = str(p.get("mt", "")).upper() == "ISOLATED"
        data = ev.MarginCallEvent(
            symbol=p["s"],
            positionSide=p.get("ps", "BOTH"),
            quantity=abs(_dec(p.get("pa"))),
            markPrice=_dec(p.get("mp")),
            unrealizedPnl=_dec(p.get("up")),
            maintenanceMargin=_dec(p.get("mm")),
            marginType="ISOLATED" if isolated else "CROSS",
        )
        drafts.append((ev.EventType.MARGIN_CALL, data, time))
    return drafts


def market_event(payload: Json) -> tuple[str, str, Json] | None:
    """(symbol, stream, data) of a Binance market payload AIQT republishes: markPrice and klines."""
    kind = payload.get("e")
    if kind == "markPriceUpdate":
        data = {
            "symbol": payload["s"],
            "markPrice": _text(payload.get("p")),
            "indexPrice": _text(payload.get("i")),
            "fundingRate": _text(payload.get("r")),
            "nextFundingTime": int(payload.get("T") or 0),
            "time": int(payload["E"]),
        }
        return payload["s"], "markPrice", data
    if kind == "kline":
        k = payload["k"]
        data = {
            "symbol": payload["s"],
            "interval": k["i"],
            "openTime": int(k["t"]),
            "closeTime": int(k["T"]),
            "open": _text(k["o"]),
            "high": _text(k["h"]),
            "low": _text(k["l"]),
            "close": _text(k["c"]),
            "volume": _text(k["v"]),
            "closed": bool(k["x"]),
            "time": int(payload["E"]),
        }
        return payload["s"], f"kline_{k['i']}", data
    return None
