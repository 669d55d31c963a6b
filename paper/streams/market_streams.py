"""Market streams from the simulated market: mark price, klines, tickers, book, trades and
liquidations, each on Binance's cadence and consistent with the REST views at the same moment.

A tick every 50 ms looks at which streams have subscribers and which cadences are due (wall-clock
boundaries: 100 ms, 250 ms, 500 ms, 1 s, 2 s, 3 s, 5 s); only subscribed streams are computed,
each once per tick whatever the number of subscribers. Trades (the accounts' own fills and a
synthetic market trade per symbol every 250 ms) and liquidations are pushed as they happen.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from ..market import Market
from ..market_data import best_bid_ask, book_levels, premium, rolling_24h
from ..models import Order, Trade, fmt
from ..symbols import SYMBOLS, SymbolSpec
from .hub import Hub
from .names import Stream, parse

Payload = dict[str, object]
DIFF_DEPTH_LEVELS = 1000  # as deep as the REST snapshot a client syncs from


class MarketStreams:
    """Renders and publishes the market streams that have subscribers."""

    def __init__(self, market: Market, hub: Hub):
        self.market = market
        self.hub = hub
        self._last_tick_ms = 0
        self._kline_open: dict[str, int] = {}  # stream -> open time of the candle last sent
        self._books: dict[str, tuple[int, dict[str, str], dict[str, str]]] = {}  # stream -> (u, bids, asks)
        self._tops: dict[str, tuple[str, str]] = {}  # bookTicker stream -> last (bid, ask)
        self._update_ids = itertools.count(1)
        self._agg_ids = itertools.count(1_000_000_001)
        self._trade_ids = itertools.count(5_000_000_001)

    # ------------------------------------------------------------------ the tick -------------
    def tick(self, wall_ms: int) -> int:
        """Publish every subscribed stream whose cadence is due; returns frames published."""
        last = self._last_tick_ms
        self._last_tick_ms = wall_ms
        now = self.market.now()
        cache: dict[tuple[str, str], object] = {}
        sent = 0
        active = self.hub.active_streams()
        self._forget_unsubscribed(set(active))
        for name in active:
            stream = parse(name)
            if stream is None or not stream.every_ms:
                continue
            if last and wall_ms // stream.every_ms == last // stream.every_ms:
                continue
            sent += self._publish(stream, now, cache)
        return sent

    def _forget_unsubscribed(self, active: set[str]) -> None:
        """Drop the state of streams nobody follows any more (a later subscriber starts afresh)."""
        for state in (self._kline_open, self._books, self._tops):
            for name in [n for n in state if n not in active]:
                del state[name]

    def _publish(self, stream: Stream, now: int, cache: dict[tuple[str, str], object]) -> int:
        kind = stream.kind
        if kind == "markPrice":
            return self._mark_price(stream, now, cache)
        if kind == "kline":
            return self._kline(stream, now)
        if kind in ("ticker", "miniTicker"):
            return self._ticker(stream, now, cache)
        if kind == "bookTicker":
            return self._book_ticker(stream, now)
        if kind == "depth":
            return self._diff_depth(stream, now)
        if kind == "partialDepth":
            return self._partial_depth(stream, now)
        return 0

    # ------------------------------------------------------------------ mark price -----------
    def _mark_payload(self, symbol: str, now: int, cache: dict[tuple[str, str], object]) -> Payload:
        hit = cache.get(("mark", symbol))
        if hit is None:
            view = premium(self.market, symbol, now)
            hit = {
                "e": "markPriceUpdate",
                "E": now,
                "s": symbol,
                "p": view["markPrice"],
                "ap": view["markPrice"],
                "i": view["indexPrice"],
                "P": view["estimatedSettlePrice"],
                "r": view["lastFundingRate"],
                "T": view["nextFundingTime"],
            }
            cache[("mark", symbol)] = hit
        assert isinstance(hit, dict)
        return hit

    def _mark_price(self, stream: Stream, now: int, cache: dict[tuple[str, str], object]) -> int:
        if stream.symbol is not None:
            return self.hub.publish(stream.name, self._mark_payload(stream.symbol, now, cache))
        return self.hub.publish(stream.name, [self._mark_payload(s, now, cache) for s in SYMBOLS])

    # ------------------------------------------------------------------ klines ---------------
    def _kline(self, stream: Stream, now: int) -> int:
        """The open candle (x: false); when a new one opened, first the one that closed (x: true),
        both exactly as /fapi/v1/klines returns them."""
        assert stream.symbol is not None
        spec = SYMBOLS[stream.symbol]
        current = self.market.klines(spec, stream.interval, None, None, 1)[0]
        open_time = int(str(current[0]))
        previous = self._kline_open.get(stream.name)
        self._kline_open[stream.name] = open_time
        sent = 0
        if previous is not None and previous != open_time:
            closed = self.market.klines(spec, stream.interval, previous, previous, 1)
            if closed:
                sent += self.hub.publish(stream.name, kline_payload(spec, stream.interval, closed[0], True, now))
        return sent + self.hub.publish(stream.name, kline_payload(spec, stream.interval, current, False, now))

    # ------------------------------------------------------------------ tickers --------------
    def _ticker(self, stream: Stream, now: int, cache: dict[tuple[str, str], object]) -> int:
        symbols = [stream.symbol] if stream.symbol is not None else list(SYMBOLS)
        rows = []
        for symbol in symbols:
            rolling = cache.get(("24h", symbol))
            if rolling is None:
                rolling = cache[("24h", symbol)] = rolling_24h(self.market, SYMBOLS[symbol], now)
            assert isinstance(rolling, dict)
            rows.append(ticker_payload(rolling, now) if stream.kind == "ticker" else mini_ticker_payload(rolling, now))
        return self.hub.publish(stream.name, rows[0] if stream.symbol is not None else rows)

    # ------------------------------------------------------------------ book -----------------
    def _book_ticker(self, stream: Stream, now: int) -> int:
        symbols = [stream.symbol] if stream.symbol is not None else list(SYMBOLS)
        sent = 0
        for symbol in symbols:
            top = best_bid_ask(self.market, SYMBOLS[symbol], now)
            key = (str(top["bidPrice"]), str(top["askPrice"]))
            if stream.symbol is not None and self._tops.get(stream.name) == key:
                continue  # real-time stream: only changes
            self._tops[stream.name] = key
            payload = {
                "e": "bookTicker",
                "u": next(self._update_ids),
                "E": now,
                "T": now,
                "s": symbol,
                "b": top["bidPrice"],
                "B": top["bidQty"],
                "a": top["askPrice"],
                "A": top["askQty"],
            }
            sent += self.hub.publish(stream.name, payload)
        return sent

    def _diff_depth(self, stream: Stream, now: int) -> int:
        """depthUpdate with the levels that changed since the last one (qty "0": level removed).
        Update ids are the market time in ms, so a REST snapshot's lastUpdateId falls inside
        the [U, u] of the event that covers it and ``pu`` chains to the previous ``u``."""
        assert stream.symbol is not None
        spec = SYMBOLS[stream.symbol]
        bids_rows, asks_rows = book_levels(self.market, spec, DIFF_DEPTH_LEVELS, now)
        bids = {price: qty for price, qty in bids_rows}
        asks = {price: qty for price, qty in asks_rows}
        previous = self._books.get(stream.name)
        prev_u = previous[0] if previous else now - 1
        u = max(now, prev_u + 1)
        self._books[stream.name] = (u, bids, asks)
        old_bids, old_asks = (previous[1], previous[2]) if previous else ({}, {})
        payload = {
            "e": "depthUpdate",
            "E": now,
            "T": now,
            "s": spec.symbol,
            "U": prev_u + 1,
            "u": u,
            "pu": prev_u,
            "b": _changes(old_bids, bids),
            "a": _changes(old_asks, asks),
        }
        return self.hub.publish(stream.name, payload)

    def _partial_depth(self, stream: Stream, now: int) -> int:
        assert stream.symbol is not None
        spec = SYMBOLS[stream.symbol]
        bids, asks = book_levels(self.market, spec, stream.levels, now)
        previous = self._books.get(stream.name)
        prev_u = previous[0] if previous else now - 1
        u = max(now, prev_u + 1)
        self._books[stream.name] = (u, {}, {})
        payload = {
            "e": "depthUpdate",
            "E": now,
            "T": now,
            "s": spec.symbol,
            "U": prev_u + 1,
            "u": u,
            "pu": prev_u,
            "b": bids,
            "a": asks,
        }
        return self.hub.publish(stream.name, payload)

    # ------------------------------------------------------------------ trades ---------------
    def synthetic_trades(self) -> int:
        """One market trade per subscribed symbol at the current price (the tape is not empty
        between the accounts' own fills)."""
        sent = 0
        now = self.market.now()
        for name in self.hub.active_streams():
            stream = parse(name)
            if stream is None or stream.kind not in ("aggTrade", "trade") or stream.symbol is None:
                continue
            spec = SYMBOLS[stream.symbol]
            price = self.market.price(spec.symbol, now)
            qty = spec.min_qty * (1 + now // 250 % 7)
            sent += self._trade(stream, spec, price, qty, now // 250 % 2 == 0, now)
        return sent

    def fill(self, trade: Trade) -> int:
        """An account's fill on the public tape (aggTrade and trade of its symbol)."""
        spec = SYMBOLS[trade.symbol]
        buyer_maker = (trade.side == "BUY") == trade.maker
        sent = 0
        for kind in ("aggTrade", "trade"):
            stream = parse(f"{spec.symbol.lower()}@{kind}")
            if stream is not None and self.hub.has_subscribers(stream.name):
                sent += self._trade(stream, spec, trade.price, trade.qty, buyer_maker, trade.time)
        return sent

    def _trade(self, stream: Stream, spec: SymbolSpec, price: Decimal, qty: Decimal, buyer_maker: bool, t: int) -> int:
        p = fmt(price, spec.price_precision)
        q = fmt(qty, spec.qty_precision)
        now = self.market.now()
        if stream.kind == "trade":
            payload: Payload = {"e": "trade", "E": now, "T": t, "s": spec.symbol, "t": next(self._trade_ids),
                                "p": p, "q": q, "X": "MARKET", "m": buyer_maker}  # fmt: skip
        else:
            trade_id = next(self._trade_ids)
            payload = {"e": "aggTrade", "E": now, "s": spec.symbol, "a": next(self._agg_ids), "p": p, "q": q,
                       "nq": q, "f": trade_id, "l": trade_id, "T": t, "m": buyer_maker}  # fmt: skip
        return self.hub.publish(stream.name, payload)

    def liquidation(self, order: Order, price: Decimal, t: int) -> int:
        """forceOrder of one symbol and the all-market stream."""
        spec = SYMBOLS[order.symbol]
        qty = fmt(order.executed_qty, spec.qty_precision)
        px = fmt(price, spec.price_precision)
        payload = {
            "e": "forceOrder",
            "E": self.market.now(),
            "o": {"s": order.symbol, "S": order.side, "o": "LIMIT", "f": "IOC", "q": qty, "p": px, "ap": px,
                  "X": "FILLED", "l": qty, "z": qty, "T": t},
        }  # fmt: skip
        return self.hub.publish(f"{order.symbol.lower()}@forceOrder", payload) + self.hub.publish(
            "!forceOrder@arr", payload
        )


def _changes(old: dict[str, str], new: dict[str, str]) -> list[list[str]]:
    out = [[price, qty] for price, qty in new.items() if old.get(price) != qty]
    out.extend([price, "0"] for price in old if price not in new)
    return out


def kline_payload(spec: SymbolSpec, interval: str, row: list[object], closed: bool, now: int) -> Payload:
    """A kline event from a /fapi/v1/klines row (same open, close, high, low, volumes, count)."""
    open_time = int(str(row[0]))
    trades = int(str(row[8]))
    first = open_time // 1000
    return {
        "e": "kline",
        "E": now,
        "s": spec.symbol,
        "k": {
            "t": open_time,
            "T": int(str(row[6])),
            "s": spec.symbol,
            "i": interval,
            "f": first,
            "L": first + max(trades, 1) - 1,
            "o": row[1],
            "c": row[4],
            "h": row[2],
            "l": row[3],
            "v": row[5],
            "n": trades,
            "x": closed,
            "q": row[7],
            "V": row[9],
            "Q": row[10],
            "B": "0",
        },
    }


def ticker_payload(rolling: dict[str, object], now: int) -> Payload:
    return {
        "e": "24hrTicker",
        "E": now,
        "s": rolling["symbol"],
        "p": rolling["priceChange"],
        "P": rolling["priceChangePercent"],
        "w": rolling["weightedAvgPrice"],
        "c": rolling["lastPrice"],
        "Q": rolling["lastQty"],
        "o": rolling["openPrice"],
        "h": rolling["highPrice"],
        "l": rolling["lowPrice"],
        "v": rolling["volume"],
        "q": rolling["quoteVolume"],
        "O": rolling["openTime"],
        "C": rolling["closeTime"],
        "F": rolling["firstId"],
        "L": rolling["lastId"],
        "n": rolling["count"],
    }


def mini_ticker_payload(rolling: dict[str, object], now: int) -> Payload:
    return {
        "e": "24hrMiniTicker",
        "E": now,
        "s": rolling["symbol"],
        "c": rolling["lastPrice"],
        "o": rolling["openPrice"],
        "h": rolling["highPrice"],
        "l": rolling["lowPrice"],
        "v": rolling["volume"],
        "q": rolling["quoteVolume"],
    }
