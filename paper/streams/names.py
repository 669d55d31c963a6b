"""Stream names: which streams exist, on which route Binance serves each, and how often.

Since the 2026 route split Binance serves high-frequency book data on ``/public``, the other
market data on ``/market`` and user data (listenKeys) on ``/private``. A stream subscribed on the
wrong route is acknowledged and never delivers, as on Binance; the unrouted legacy ``/ws`` and
``/stream`` paths deliver only the /public class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ..market import INTERVALS
from ..symbols import SYMBOLS

PUBLIC = "public"
MARKET = "market"
PRIVATE = "private"
LEGACY = ""  # the unrouted /ws and /stream paths
ROUTES = (PUBLIC, MARKET, PRIVATE)

PARTIAL_DEPTH_LEVELS = (5, 10, 20)
DEPTH_SPEEDS = {"": 250, "@100ms": 100, "@500ms": 500}

_SYMBOL_STREAM = re.compile(r"^([a-z0-9]+)@([A-Za-z]+)(?:_([0-9]+[mhdwM]))?([0-9]*)(@[0-9a-z]+)?$")


@dataclass(frozen=True, slots=True)
class Stream:
    """A parsed stream name. `symbol` is None for the all-market (``!…@arr``) streams."""

    name: str
    route: str
    kind: str
    symbol: str | None = None
    interval: str = ""
    levels: int = 0
    every_ms: int = 0  # 0: pushed as things happen


_ALL_MARKET = {
    "!markPrice@arr": Stream("!markPrice@arr", MARKET, "markPrice", every_ms=3000),
    "!markPrice@arr@1s": Stream("!markPrice@arr@1s", MARKET, "markPrice", every_ms=1000),
    "!miniTicker@arr": Stream("!miniTicker@arr", MARKET, "miniTicker", every_ms=1000),
    "!ticker@arr": Stream("!ticker@arr", MARKET, "ticker", every_ms=1000),
    "!forceOrder@arr": Stream("!forceOrder@arr", MARKET, "forceOrder"),
    "!bookTicker": Stream("!bookTicker", PUBLIC, "bookTicker", every_ms=5000),
}


@lru_cache(maxsize=4096)
def parse(name: str) -> Stream | None:
    """The stream called `name`, or None if no such market stream exists."""
    known = _ALL_MARKET.get(name)
    if known is not None:
        return known
    m = _SYMBOL_STREAM.match(name)
    if m is None:
        return None
    sym, kind, interval, digits, suffix = m.groups()
    symbol = sym.upper()
    if symbol not in SYMBOLS or sym != sym.lower():
        return None
    suffix = suffix or ""
    if kind == "kline":
        if interval not in INTERVALS or digits or suffix:
            return None
        return Stream(name, MARKET, "kline", symbol, interval=interval, every_ms=250)
    if interval:
        return None
    if kind == "depth":
        speed = DEPTH_SPEEDS.get(suffix)
        if speed is None:
            return None
        if not digits:
            return Stream(name, PUBLIC, "depth", symbol, every_ms=speed)
        if int(digits) not in PARTIAL_DEPTH_LEVELS:
            return None
        return Stream(name, PUBLIC, "partialDepth", symbol, levels=int(digits), every_ms=speed)
    if digits:
        return None
    return _simple(name, symbol, kind, suffix)


def _simple(name: str, symbol: str, kind: str, suffix: str) -> Stream | None:
    if kind == "markPrice" and suffix in ("", "@1s"):
        return Stream(name, MARKET, "markPrice", symbol, every_ms=1000 if suffix else 3000)
    if suffix:
        return None
    table = {
        "aggTrade": (MARKET, 0),
        "ticker": (MARKET, 2000),
        "miniTicker": (MARKET, 2000),
        "forceOrder": (MARKET, 0),
        "bookTicker": (PUBLIC, 100),
        "trade": (PUBLIC, 0),
    }
    found = table.get(kind)
    if found is None:
        return None
    return Stream(name, found[0], kind, symbol, every_ms=found[1])


def served_on(stream: Stream, route: str) -> bool:
    """Whether Binance delivers `stream` on a connection of `route`."""
    return stream.route == route or (route == LEGACY and stream.route == PUBLIC)
