"""The fapi route table: (method, path) → handler, whether it is signed, its request weight,
and whether it counts against the order-rate limits.

Weights are Binance's (some depend on the parameters, e.g. klines on `limit`). Account handlers
are engine methods; market-data handlers live in :mod:`paper.market_data`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import market_data
from .engine import Engine
from .models import Account

if TYPE_CHECKING:
    from .app import PaperApp

Handler = Callable[["PaperApp", Account | None, dict[str, str]], object]
Weight = Callable[[dict[str, str]], int]


@dataclass(frozen=True, slots=True)
class Route:
    handler: Handler
    signed: bool
    weight: Weight
    order: bool = False
    api_key_only: bool = False  # USER_STREAM security: X-MBX-APIKEY, no signature


def fixed(n: int) -> Weight:
    return lambda p: n


def by_symbol(with_symbol: int, without: int) -> Weight:
    """Cheaper with a symbol than for every symbol."""
    return lambda p: with_symbol if p.get("symbol") else without


def klines_weight(p: dict[str, str]) -> int:
    limit_text = p.get("limit") or "500"
    limit = int(limit_text) if limit_text.isdigit() else 500
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


def depth_weight(p: dict[str, str]) -> int:
    limit = int(p["limit"]) if (p.get("limit") or "").isdigit() else 500
    return {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10}.get(limit, 20)


def account_handler(fn: Callable[[Engine, Account, dict[str, str]], object]) -> Handler:
    """A signed route's handler: the engine call with the authenticated account."""

    def handler(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
        assert acc is not None
        return fn(app.engine, acc, p)

    return handler


def signed(fn: Callable[[Engine, Account, dict[str, str]], object], weight: Weight, order: bool = False) -> Route:
    """A route that needs a signed request; its handler gets the authenticated account."""
    return Route(account_handler(fn), True, weight, order)


def user_stream(fn: Callable[[PaperApp, Account], object]) -> Route:
    """A listenKey route: API key only, weight 1."""

    def handler(app: PaperApp, acc: Account | None, p: dict[str, str]) -> object:
        assert acc is not None
        return fn(app, acc)

    return Route(handler, False, fixed(1), api_key_only=True)


def start_listen_key(app: PaperApp, acc: Account) -> object:
    return {"listenKey": app.streams.listen_keys.start(acc.api_key)}


def keep_listen_key_alive(app: PaperApp, acc: Account) -> object:
    return {"listenKey": app.streams.listen_keys.keepalive(acc.api_key)}


def close_listen_key(app: PaperApp, acc: Account) -> object:
    held = app.streams.listen_keys.close(acc.api_key)
    if held is not None:
        app.streams.key_closed(held)
    return {}


def public(handler: Handler, weight: Weight) -> Route:
    """A market-data route: no API key, no signature."""
    return Route(handler, False, weight)


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/fapi/v1/ping"): public(market_data.ping, fixed(1)),
    ("GET", "/fapi/v1/time"): public(market_data.server_time, fixed(1)),
    ("GET", "/fapi/v1/exchangeInfo"): public(market_data.exchange_info, fixed(1)),
    ("GET", "/fapi/v1/klines"): public(market_data.klines, klines_weight),
    ("GET", "/fapi/v1/premiumIndex"): public(market_data.premium_index, by_symbol(1, 10)),
    ("GET", "/fapi/v1/fundingRate"): public(market_data.funding_rate_history, fixed(1)),
    ("GET", "/fapi/v1/ticker/price"): public(market_data.ticker_price, by_symbol(1, 2)),
    ("GET", "/fapi/v2/ticker/price"): public(market_data.ticker_price, by_symbol(1, 2)),
    ("GET", "/fapi/v1/ticker/24hr"): public(market_data.ticker_24hr, by_symbol(1, 40)),
    ("GET", "/fapi/v1/ticker/bookTicker"): public(market_data.book_ticker, by_symbol(2, 5)),
    ("GET", "/fapi/v1/depth"): public(market_data.depth, depth_weight),
    ("GET", "/fapi/v1/fundingInfo"): public(market_data.funding_info, fixed(0)),
    ("GET", "/fapi/v2/account"): signed(lambda e, a, p: e.account(a, v3=False), fixed(5)),
    ("GET", "/fapi/v3/account"): signed(lambda e, a, p: e.account(a, v3=True), fixed(5)),
    ("GET", "/fapi/v2/balance"): signed(lambda e, a, p: e.balances(a), fixed(5)),
    ("GET", "/fapi/v3/balance"): signed(lambda e, a, p: e.balances(a), fixed(5)),
    ("GET", "/fapi/v2/positionRisk"): signed(lambda e, a, p: e.position_risk(a, p, v3=False), fixed(5)),
    ("GET", "/fapi/v3/positionRisk"): signed(lambda e, a, p: e.position_risk(a, p, v3=True), fixed(5)),
    ("GET", "/fapi/v1/openOrders"): signed(Engine.open_orders, by_symbol(1, 40)),
    ("GET", "/fapi/v1/openOrder"): signed(Engine.open_order, fixed(1)),
    ("POST", "/fapi/v1/order"): signed(Engine.new_order, fixed(0), order=True),
    ("POST", "/fapi/v1/order/test"): signed(lambda e, a, p: e.new_order(a, p, test=True), fixed(1)),
    ("GET", "/fapi/v1/order"): signed(Engine.query_order, fixed(1)),
    ("DELETE", "/fapi/v1/order"): signed(Engine.cancel_order, fixed(1)),
    ("PUT", "/fapi/v1/order"): signed(Engine.modify_order, fixed(1), order=True),
    ("DELETE", "/fapi/v1/allOpenOrders"): signed(Engine.cancel_all, fixed(1)),
    ("GET", "/fapi/v1/allOrders"): signed(Engine.all_orders, fixed(5)),
    ("GET", "/fapi/v1/userTrades"): signed(Engine.user_trades, fixed(5)),
    ("POST", "/fapi/v1/algoOrder"): signed(Engine.new_algo, fixed(0), order=True),
    ("GET", "/fapi/v1/algoOrder"): signed(Engine.query_algo, fixed(1)),
    ("DELETE", "/fapi/v1/algoOrder"): signed(Engine.cancel_algo, fixed(1)),
    ("GET", "/fapi/v1/openAlgoOrders"): signed(Engine.open_algos, by_symbol(1, 40)),
    ("GET", "/fapi/v1/allAlgoOrders"): signed(Engine.all_algos, fixed(5)),
    ("DELETE", "/fapi/v1/algoOpenOrders"): signed(Engine.cancel_all_algo, fixed(1)),
    ("POST", "/fapi/v1/leverage"): signed(Engine.set_leverage, fixed(1)),
    ("POST", "/fapi/v1/marginType"): signed(Engine.set_margin_type, fixed(1)),
    ("GET", "/fapi/v1/positionSide/dual"): signed(lambda e, a, p: {"dualSidePosition": a.dual}, fixed(30)),
    ("POST", "/fapi/v1/positionSide/dual"): signed(Engine.set_dual, fixed(1)),
    ("GET", "/fapi/v1/leverageBracket"): Route(market_data.leverage_bracket, True, fixed(1)),
    ("GET", "/fapi/v1/symbolConfig"): signed(Engine.symbol_config, fixed(5)),
    ("GET", "/fapi/v1/accountConfig"): signed(lambda e, a, p: e.account_config(a), fixed(5)),
    ("GET", "/fapi/v1/income"): signed(Engine.income, fixed(30)),
    ("GET", "/fapi/v1/commissionRate"): Route(market_data.commission, True, fixed(20)),
    ("POST", "/fapi/v1/listenKey"): user_stream(start_listen_key),
    ("PUT", "/fapi/v1/listenKey"): user_stream(keep_listen_key_alive),
    ("DELETE", "/fapi/v1/listenKey"): user_stream(close_listen_key),
}
