"""Binance's cost of each fapi request: IP weight and order counts, in one table.

Why a table of our own: the governor must debit a request *before* it is sent (the
`X-MBX-USED-WEIGHT-1M` header only reports usage afterwards), so it needs the price up front.
The figures are the official endpoint pages as collected in /work/shared/binance-limits.md §1.2-1.3
(scrape of 2026-05-28). Peers' tables have drifted from them (hummingbot charges exchangeInfo 40,
ccxt charges account 1); where the docs conflict (v2 account/positionRisk 5 vs the announced 10)
the higher figure is used, because over-charging only costs headroom while under-charging costs
a 429. The headers correct any error after every response, so a wrong entry here cannot
accumulate; `tests/unit/test_governor.py` checks the table against the paper exchange's routes.

Order counts: a new or modified order costs 1 on ORDERS-10S and 1 on ORDERS-1M and no IP weight;
batchOrders cost 5/1 and weight 5; cancels cost IP weight only. Whether algo (conditional) orders
consume order counts is UNCONFIRMED at Binance: they are charged as orders here (the safe side).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Params = Mapping[str, Any]


@dataclass(frozen=True)
class Cost:
    """What one request consumes: IP weight (per minute) and the account's order counts."""

    weight: int
    orders_10s: int = 0
    orders_1m: int = 0

    @property
    def is_order(self) -> bool:
        return self.orders_10s > 0 or self.orders_1m > 0


Pricer = Callable[[Params], Cost]

#: Unknown endpoints are charged this much: enough to be noticed, and corrected by the header.
DEFAULT_WEIGHT = 5


def _w(weight: int) -> Pricer:
    cost = Cost(weight)
    return lambda params: cost


def _by_symbol(with_symbol: int, without: int) -> Pricer:
    return lambda params: Cost(with_symbol if params.get("symbol") else without)


def klines_weight(limit: int) -> int:
    """GET /fapi/v1/klines: 1 below 100 rows, 2 below 500, 5 up to 1000, 10 above; default 500."""
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


def _klines(params: Params) -> Cost:
    return Cost(klines_weight(int(params.get("limit") or 500)))


def _depth(params: Params) -> Cost:
    limit = int(params.get("limit") or 500)
    return Cost(2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20)


_ORDER = Cost(0, 1, 1)
_BATCH = Cost(5, 5, 1)

TABLE: dict[tuple[str, str], Pricer] = {
    ("GET", "/fapi/v1/ping"): _w(1),
    ("GET", "/fapi/v1/time"): _w(1),
    ("GET", "/fapi/v1/exchangeInfo"): _w(1),
    ("GET", "/fapi/v1/rateLimit/order"): _w(1),
    ("GET", "/fapi/v1/klines"): _klines,
    ("GET", "/fapi/v1/premiumIndex"): _by_symbol(1, 10),
    # Own pool (500 requests / 5 min / IP, shared with fundingInfo); IP weight not stated: 1.
    ("GET", "/fapi/v1/fundingRate"): _w(1),
    ("GET", "/fapi/v1/fundingInfo"): _w(1),
    ("GET", "/fapi/v1/depth"): _depth,
    ("GET", "/fapi/v1/ticker/price"): _by_symbol(1, 2),
    ("GET", "/fapi/v2/ticker/price"): _by_symbol(1, 2),
    ("GET", "/fapi/v1/ticker/24hr"): _by_symbol(1, 40),
    ("GET", "/fapi/v1/ticker/bookTicker"): _by_symbol(2, 5),
    ("GET", "/fapi/v2/account"): _w(5),
    ("GET", "/fapi/v3/account"): _w(5),
    ("GET", "/fapi/v2/balance"): _w(5),
    ("GET", "/fapi/v3/balance"): _w(5),
    ("GET", "/fapi/v2/positionRisk"): _w(5),
    ("GET", "/fapi/v3/positionRisk"): _w(5),
    ("GET", "/fapi/v1/openOrders"): _by_symbol(1, 40),
    ("GET", "/fapi/v1/openOrder"): _w(1),
    ("GET", "/fapi/v1/openAlgoOrders"): _by_symbol(1, 40),
    ("GET", "/fapi/v1/order"): _w(1),
    ("POST", "/fapi/v1/order"): lambda params: _ORDER,
    ("PUT", "/fapi/v1/order"): lambda params: _ORDER,
    ("DELETE", "/fapi/v1/order"): _w(1),
    ("POST", "/fapi/v1/order/test"): _w(1),
    ("POST", "/fapi/v1/batchOrders"): lambda params: _BATCH,
    ("PUT", "/fapi/v1/batchOrders"): lambda params: _BATCH,
    ("DELETE", "/fapi/v1/batchOrders"): _w(1),
    ("DELETE", "/fapi/v1/allOpenOrders"): _w(1),
    ("GET", "/fapi/v1/allOrders"): _w(5),
    ("GET", "/fapi/v1/userTrades"): _w(5),
    ("POST", "/fapi/v1/algoOrder"): lambda params: _ORDER,
    ("GET", "/fapi/v1/algoOrder"): _w(1),
    ("DELETE", "/fapi/v1/algoOrder"): _w(1),
    ("GET", "/fapi/v1/allAlgoOrders"): _w(5),
    ("DELETE", "/fapi/v1/algoOpenOrders"): _w(1),
    ("POST", "/fapi/v1/leverage"): _w(1),
    ("POST", "/fapi/v1/marginType"): _w(1),
    ("GET", "/fapi/v1/positionSide/dual"): _w(30),
    ("POST", "/fapi/v1/positionSide/dual"): _w(1),
    ("GET", "/fapi/v1/leverageBracket"): _w(1),
    ("GET", "/fapi/v1/accountConfig"): _w(5),
    ("GET", "/fapi/v1/symbolConfig"): _w(5),
    ("GET", "/fapi/v1/income"): _w(30),
    ("GET", "/fapi/v1/commissionRate"): _w(20),
    ("GET", "/fapi/v1/apiTradingStatus"): _by_symbol(1, 10),
    ("GET", "/fapi/v1/multiAssetsMargin"): _w(30),
    ("POST", "/fapi/v1/countdownCancelAll"): _w(10),
    ("POST", "/fapi/v1/listenKey"): _w(1),
    ("PUT", "/fapi/v1/listenKey"): _w(1),
    ("DELETE", "/fapi/v1/listenKey"): _w(1),
}


def cost(method: str, path: str, params: Params | None = None) -> Cost:
    """Binance's price of one request, before it is sent."""
    pricer = TABLE.get((method.upper(), path))
    if pricer is None:
        return Cost(DEFAULT_WEIGHT)
    return pricer(params or {})
