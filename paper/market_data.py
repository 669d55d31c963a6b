"""Market-data endpoints (no auth): time, exchangeInfo, klines, premiumIndex, tickers, depth,
funding and leverage brackets.

Each view is built from the simulated market at one moment. The builders that take a
:class:`~paper.market.Market` (premium, 24 h ticker, book ticker, depth) are shared with the
market streams, so a stream frame and a REST answer at the same moment agree.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from . import params
from .errors import err
from .market import INTERVALS, Market, now_ms
from .models import Account, fmt
from .symbols import MAKER_FEE, SYMBOLS, TAKER_FEE, SymbolSpec, bracket_json, exchange_info_symbol

if TYPE_CHECKING:
    from .app import PaperApp

DAY_MS = 24 * 3_600_000
DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)


def ping(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    return {}


def server_time(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    return {"serverTime": now_ms()}


EXCHANGE_INFO_SYMBOLS = [exchange_info_symbol(s) for s in SYMBOLS.values()]


def exchange_info(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    s = app.settings
    return {
        "timezone": "UTC",
        "serverTime": now_ms(),
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": s.weight_limit_1m},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": s.order_limit_1m},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": s.order_limit_10s},
        ],
        "exchangeFilters": [],
        "assets": [
            {"asset": a, "marginAvailable": True, "autoAssetExchange": "0" if a == "USDT" else "-100"}
            for a in ("USDT", "USDC", "FDUSD", "BNB", "ETH", "BTC")
        ],
        "symbols": EXCHANGE_INFO_SYMBOLS,
    }


def klines(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    spec = params.symbol(p)
    assert spec is not None
    interval = params.req(p, "interval")
    if interval not in INTERVALS:
        raise err(-1120, "Invalid interval.")
    lim = params.limit(p, 500, 1500)
    start = params.integer(p, "startTime")
    end = params.integer(p, "endTime")
    if start is not None and end is not None and start > end:
        raise err(-1023, "Start time is greater than end time.")
    return app.market.klines(spec, interval, start, end, lim)


def premium(market: Market, sym: str, t: int) -> dict[str, object]:
    """premiumIndex of one symbol at market time t (the markPrice stream shows the same)."""
    mark = market.price(sym, t)
    nft = market.next_funding_time(t)
    return {
        "symbol": sym,
        "markPrice": fmt(mark, 8),
        "indexPrice": fmt(mark * Decimal("0.99985"), 8),
        "estimatedSettlePrice": fmt(mark * Decimal("0.99990"), 8),
        "lastFundingRate": fmt(market.funding_rate(sym, nft), 8),
        "interestRate": "0.00010000",
        "nextFundingTime": nft,
        "time": t,
    }


def premium_index(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    spec = params.symbol(p, required=False)
    t = app.market.now()
    if spec is not None:
        return premium(app.market, spec.symbol, t)
    return [premium(app.market, s, t) for s in SYMBOLS]


def ticker_price(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    spec = params.symbol(p, required=False)
    t = app.market.now()

    def one(sym: str) -> dict[str, object]:
        return {"symbol": sym, "price": fmt(app.market.price(sym, t), SYMBOLS[sym].price_precision), "time": t}

    return one(spec.symbol) if spec is not None else [one(s) for s in SYMBOLS]


def rolling_24h(market: Market, s: SymbolSpec, now: int) -> dict[str, object]:
    """The 24 h rolling ticker of one symbol at market time `now` (ticker/24hr, @ticker)."""
    rows = market.klines(s, "1h", now - DAY_MS + 1, None, 25)
    last = market.price(s.symbol, now)
    opn = market.walk_price(s.symbol, now - DAY_MS)
    hi = max([Decimal(str(r[2])) for r in rows] + [opn, last])
    lo = min([Decimal(str(r[3])) for r in rows] + [opn, last])
    vol = sum((Decimal(str(r[5])) for r in rows), Decimal(0))
    qvol = sum((Decimal(str(r[7])) for r in rows), Decimal(0))
    pp = s.price_precision
    change = last - opn
    return {
        "symbol": s.symbol,
        "priceChange": fmt(change, pp),
        "priceChangePercent": fmt(change / opn * 100, 3),
        "weightedAvgPrice": fmt(qvol / vol if vol else last, pp),
        "lastPrice": fmt(last, pp),
        "lastQty": fmt(s.min_qty, s.qty_precision),
        "openPrice": fmt(opn, pp),
        "highPrice": fmt(hi, pp),
        "lowPrice": fmt(lo, pp),
        "volume": fmt(vol, s.qty_precision),
        "quoteVolume": fmt(qvol, 2),
        "openTime": now - DAY_MS,
        "closeTime": now,
        "firstId": 1,
        "lastId": int(vol / s.min_qty) or 1,
        "count": int(vol / s.min_qty) or 1,
    }


def ticker_24hr(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    spec = params.symbol(p, required=False)
    now = app.market.now()
    if spec is not None:
        return rolling_24h(app.market, spec, now)
    return [rolling_24h(app.market, x, now) for x in SYMBOLS.values()]


def best_bid_ask(market: Market, s: SymbolSpec, t: int) -> dict[str, object]:
    """The synthetic top of book: best bid = the price, best ask one tick above."""
    px = market.price(s.symbol, t)
    q = fmt(s.min_qty * 40, s.qty_precision)
    return {
        "symbol": s.symbol,
        "bidPrice": fmt(px, s.price_precision),
        "bidQty": q,
        "askPrice": fmt(px + s.tick, s.price_precision),
        "askQty": q,
        "time": t,
    }


def book_ticker(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    spec = params.symbol(p, required=False)
    t = app.market.now()
    if spec is not None:
        return best_bid_ask(app.market, spec, t)
    return [best_bid_ask(app.market, x, t) for x in SYMBOLS.values()]


def book_levels(market: Market, spec: SymbolSpec, levels: int, t: int) -> tuple[list[list[str]], list[list[str]]]:
    """(bids, asks) of a synthetic book around the price at t, `levels` deep on each side."""
    px = market.price(spec.symbol, t)
    qp = spec.qty_precision
    base = spec.min_qty * 20

    def qty(i: int, side: int) -> str:
        return fmt(base * (1 + (i * 7 + side * 3 + t // 1000) % 13), qp)

    bids = [[fmt(px - i * spec.tick, spec.price_precision), qty(i, 0)] for i in range(levels)]
    asks = [[fmt(px + (i + 1) * spec.tick, spec.price_precision), qty(i, 1)] for i in range(levels)]
    return bids, asks


def depth(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    """A synthetic book around the current price: best bid = the price, best ask one tick above."""
    spec = params.symbol(p)
    assert spec is not None
    n = params.integer(p, "limit", default=500) or 500
    if n not in DEPTH_LIMITS:
        raise err(-1130, "Data sent for parameter 'limit' is not valid.")
    t = app.market.now()
    bids, asks = book_levels(app.market, spec, n, t)
    return {"lastUpdateId": t, "E": t, "T": t, "bids": bids, "asks": asks}


def leverage_bracket(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    spec = params.symbol(p, required=False)
    if spec is not None:
        return bracket_json(spec)
    return [bracket_json(s) for s in SYMBOLS.values()]


def commission(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    spec = params.symbol(p)
    assert spec is not None
    return {
        "symbol": spec.symbol,
        "makerCommissionRate": str(MAKER_FEE),
        "takerCommissionRate": str(TAKER_FEE),
        "rpiCommissionRate": "0",
    }


def funding_rate_history(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    return app.engine.funding_history(p)


def funding_info(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
    """Symbols with adjusted funding caps or intervals: none on the paper exchange."""
    return []
