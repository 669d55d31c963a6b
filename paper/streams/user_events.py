"""User-data events in Binance's JSON: ORDER_TRADE_UPDATE, TRADE_LITE, ALGO_UPDATE,
ACCOUNT_UPDATE, ACCOUNT_CONFIG_UPDATE, MARGIN_CALL and listenKeyExpired.

Field names and JSON types follow Binance exactly (the official SDK validates them strictly and
drops a frame whose types differ): prices, quantities and amounts are strings, times and ids
ints, flags bools. The same letter means different things in different events (``L`` is a
price here and a trade id in klines), so each event is spelled out in full.
"""

from __future__ import annotations

from decimal import Decimal

from ..engine.events import (
    AlgoChanged,
    BalanceChanged,
    EngineEvent,
    LeverageChanged,
    MarginCalled,
    OrderChanged,
)
from ..engine.fills import LIQUIDATION_PREFIX
from ..margin import maint_margin
from ..market import Market
from ..models import ZERO, Account, Position, fmt, fmt_avg
from ..symbols import SYMBOLS, TAKER_FEE

Payload = dict[str, object]
ONE = Decimal(1)


def render(event: EngineEvent, market: Market, now: int) -> list[Payload]:
    """The user-data payloads of one engine event (none for events that are not user data)."""
    if isinstance(event, OrderChanged):
        out = [order_trade_update(event, now)]
        if event.execution == "TRADE" and event.trade is not None:
            out.insert(0, trade_lite(event, now))
        return out
    if isinstance(event, AlgoChanged):
        return [algo_update(event, now)]
    if isinstance(event, BalanceChanged):
        return [account_update(event, market, now)]
    if isinstance(event, LeverageChanged):
        return [
            {"e": "ACCOUNT_CONFIG_UPDATE", "E": now, "T": event.time, "ac": {"s": event.symbol, "l": event.leverage}}
        ]
    if isinstance(event, MarginCalled):
        return [margin_call(event, market, now)]
    return []


def order_trade_update(event: OrderChanged, now: int) -> Payload:
    o = event.order
    spec = SYMBOLS[o.symbol]
    pp, qp = spec.price_precision, spec.qty_precision
    tr = event.trade
    liquidation = o.client_id.startswith(LIQUIDATION_PREFIX)
    body: Payload = {
        "s": o.symbol,
        "c": o.client_id,
        "S": o.side,
        "o": "LIQUIDATION" if liquidation else o.type,
        "f": o.tif,
        "q": fmt(o.orig_qty, qp),
        "p": fmt(o.price, pp),
        "ap": fmt_avg(o.avg_price, pp),
        "sp": fmt(o.stop_price, pp),
        "x": event.execution,
        "X": o.status,
        "i": o.order_id,
        "l": fmt(tr.qty if tr else ZERO, qp),
        "z": fmt(o.executed_qty, qp),
        "L": fmt(tr.price if tr else ZERO, pp),
        "T": tr.time if tr else event.time,
        "t": tr.trade_id if tr else 0,
        "b": "0",
        "a": "0",
        "m": tr.maker if tr else False,
        "R": o.reduce_only,
        "wt": o.working_type,
        "ot": "LIQUIDATION" if liquidation else o.type,
        "ps": o.position_side,
        "cp": o.close_position,
        "rp": fmt(tr.realized_pnl if tr else ZERO, 8),
        "pP": o.price_protect,
        "si": 0,
        "ss": 0,
        "V": o.stp,
        "pm": "NONE",
        "gtd": o.gtd,
        "er": "0",
    }
    if tr is not None and tr.commission:
        body["N"] = "USDT"
        body["n"] = fmt(tr.commission, 8)
    return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": event.time, "o": body}


def trade_lite(event: OrderChanged, now: int) -> Payload:
    o = event.order
    tr = event.trade
    assert tr is not None
    spec = SYMBOLS[o.symbol]
    return {
        "e": "TRADE_LITE",
        "E": now,
        "T": tr.time,
        "s": o.symbol,
        "q": fmt(o.orig_qty, spec.qty_precision),
        "p": fmt(o.price, spec.price_precision),
        "m": tr.maker,
        "c": o.client_id,
        "S": o.side,
        "L": fmt(tr.price, spec.price_precision),
        "l": fmt(tr.qty, spec.qty_precision),
        "t": tr.trade_id,
        "i": o.order_id,
    }


def algo_update(event: AlgoChanged, now: int) -> Payload:
    a = event.algo
    spec = SYMBOLS[a.symbol]
    pp, qp = spec.price_precision, spec.qty_precision
    placed = a.actual_order_id is not None
    body: Payload = {
        "caid": a.client_algo_id,
        "aid": a.algo_id,
        "at": "CONDITIONAL",
        "o": a.order_type,
        "s": a.symbol,
        "S": a.side,
        "ps": a.position_side,
        "f": a.tif,
        "q": fmt(a.quantity, qp),
        "X": a.status,
        "ai": str(a.actual_order_id) if placed else "",
        "ap": fmt_avg(a.actual_price, pp) if placed else fmt(ZERO, pp),
        "aq": fmt(a.actual_qty, qp),
        "act": ("LIMIT" if a.order_type in ("STOP", "TAKE_PROFIT") else "MARKET") if placed else "0",
        "tp": fmt(a.trigger_price, pp),
        "p": fmt(a.price, pp),
        "V": a.stp,
        "wt": a.working_type,
        "pm": "NONE",
        "cp": a.close_position,
        "pP": a.price_protect,
        "R": a.reduce_only,
        "tt": a.trigger_time,
        "gtd": a.gtd,
        "rm": event.reason,
    }
    if a.order_type == "TRAILING_STOP_MARKET":
        body["ia"] = a.activated
    return {"e": "ALGO_UPDATE", "T": event.time, "E": now, "o": body}


def account_update(event: BalanceChanged, market: Market, now: int) -> Payload:
    acc = event.account
    body: Payload = {
        "m": event.reason,
        "B": [
            {
                "a": "USDT",
                "wb": fmt(acc.balance, 8),
                "cw": fmt(cross_wallet(acc), 8),
                "bc": fmt(event.balance_change, 8),
            }
        ],
        "P": [position(acc, pos, market) for pos in event.positions],
    }
    if event.reason == "FUNDING_FEE":
        body["S"] = event.symbol
    return {"e": "ACCOUNT_UPDATE", "E": now, "T": event.time, "a": body}


def cross_wallet(acc: Account) -> Decimal:
    iso = sum((p.isolated_wallet for p in acc.positions.values() if acc.margin.get(p.symbol) == "ISOLATED"), ZERO)
    return acc.balance - iso


def position(acc: Account, pos: Position, market: Market) -> Payload:
    spec = SYMBOLS[pos.symbol]
    mark = market.price(pos.symbol)
    isolated = acc.margin.get(pos.symbol) == "ISOLATED"
    breakeven = pos.entry * (ONE + TAKER_FEE) if pos.amt > 0 else pos.entry * (ONE - TAKER_FEE)
    return {
        "s": pos.symbol,
        "pa": fmt(pos.amt, spec.qty_precision),
        "ep": fmt(pos.entry, 8),
        "bep": fmt(breakeven if pos.amt else ZERO, 8),
        "cr": "0",
        "up": fmt(pos.amt * (mark - pos.entry) if pos.amt else ZERO, 8),
        "mt": "isolated" if isolated else "cross",
        "iw": fmt(pos.isolated_wallet if isolated else ZERO, 8),
        "ps": pos.side,
    }


def margin_call(event: MarginCalled, market: Market, now: int) -> Payload:
    rows = []
    for pos in event.positions:
        spec = SYMBOLS[pos.symbol]
        mark = market.price(pos.symbol)
        rows.append(
            {
                "s": pos.symbol,
                "ps": pos.side,
                "pa": fmt(pos.amt, spec.qty_precision),
                "mt": "CROSSED",
                "iw": "0",
                "mp": fmt(mark, 8),
                "up": fmt(pos.amt * (mark - pos.entry), 8),
                "mm": fmt(maint_margin(spec, abs(pos.amt) * mark), 8),
            }
        )
    return {"e": "MARGIN_CALL", "E": now, "cw": fmt(event.cross_wallet, 8), "p": rows}


def listen_key_expired(key: str, now: int) -> Payload:
    return {"e": "listenKeyExpired", "E": now, "listenKey": key}
