"""Real clients on the paper exchange's streams, unchanged apart from their URLs:

- Binance's official SDK (``ConfigurationWebSocketStreams(stream_url=…)``) receives mark price,
  klines and user data (a market order, a stop firing, a leverage change, listenKeyExpired)
  into its strict pydantic models; it silently drops what it cannot validate, so the test
  asserts that the callbacks fired with models, never raw fallbacks.
- ccxt pro's binanceusdm watches orders, positions, balance, mark price and candles through a
  session in which a stop loss fires.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import ccxt.pro as ccxtpro
import pytest
from binance_common.configuration import ConfigurationWebSocketStreams
from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import (
    DerivativesTradingUsdsFutures,
)
from binance_sdk_derivatives_trading_usds_futures.websocket_streams.models import (
    AccountConfigUpdate,
    AccountUpdate,
    AlgoUpdate,
    KlineCandlestickStreamsIntervalEnum,
    KlineCandlestickStreamsResponse,
    ListenKeyExpired,
    MarkPriceStreamResponse,
    MarkPriceStreamUpdateSpeedEnum,
    OrderTradeUpdate,
    TradeLite,
)

from paper.embedded import EmbeddedPaper, PaperAdmin

from .conftest import Fapi
from .ws_support import listen_key, ws_base


async def wait_for(check: Callable[[], bool], timeout: float = 8.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _events(received: list[Any], model: type) -> list[Any]:
    return [r.actual_instance for r in received if isinstance(r.actual_instance, model)]


async def test_official_sdk_streams(
    paper: EmbeddedPaper, admin: PaperAdmin, pinned: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    acct = admin.create_account(balance="10000")
    fapi = Fapi(paper.url, acct["apiKey"], acct["apiSecret"])
    admin.set_mark("BNBUSDT", "600")
    pinned.append("BNBUSDT")
    client = DerivativesTradingUsdsFutures(config_ws_streams=ConfigurationWebSocketStreams(stream_url=ws_base(paper)))
    conn = await client.websocket_streams.create_connection()
    marks: list[Any] = []
    klines: list[Any] = []
    user: list[Any] = []
    try:
        mark_stream = await conn.mark_price_stream(
            symbol="BNBUSDT", update_speed=MarkPriceStreamUpdateSpeedEnum.UPDATE_SPEED_1s.value
        )
        mark_stream.on("message", marks.append)
        kline_stream = await conn.kline_candlestick_streams(
            symbol="bnbusdt", interval=KlineCandlestickStreamsIntervalEnum.INTERVAL_1m.value
        )
        kline_stream.on("message", klines.append)
        key = listen_key(paper, acct["apiKey"]).json()["listenKey"]
        user_stream = await conn.user_data(key)
        user_stream.on("message", user.append)
        await wait_for(lambda: bool(marks) and bool(klines), what="mark price and kline callbacks")

        fapi.call("POST", "/fapi/v1/leverage", symbol="BNBUSDT", leverage=4)
        fapi.market("BNBUSDT", "BUY", "2.00")
        fapi.call(
            "POST",
            "/fapi/v1/algoOrder",
            algoType="CONDITIONAL",
            symbol="BNBUSDT",
            side="SELL",
            type="STOP_MARKET",
            triggerPrice="590",
            closePosition="true",
        )
        admin.set_mark("BNBUSDT", "580")
        await wait_for(lambda: any(a.o.X == "FINISHED" for a in _events(user, AlgoUpdate)), what="stop finished")
        await wait_for(lambda: marks[-1].p == "580.00000000", what="the new mark on the stream")
        admin.expire_listen_key(acct["apiKey"])
        await wait_for(lambda: bool(_events(user, ListenKeyExpired)), what="listenKeyExpired")
    finally:
        await conn.close_connection(close_session=True)
        fapi.close()

    assert all(isinstance(m, MarkPriceStreamResponse) for m in marks)
    assert marks[-1].s == "BNBUSDT" and marks[-1].p == "580.00000000" and isinstance(marks[-1].T, int)
    assert all(isinstance(k, KlineCandlestickStreamsResponse) for k in klines)
    assert klines[-1].k.i == "1m" and klines[-1].k.s == "BNBUSDT" and klines[-1].k.x is False
    raw = [r.actual_instance for r in user if isinstance(r.actual_instance, dict)]
    assert raw == [], f"the SDK could not validate: {raw}"
    orders = _events(user, OrderTradeUpdate)
    market_fill = next(o for o in orders if o.o.x == "TRADE" and o.o.S == "BUY")
    assert (market_fill.o.L, market_fill.o.l, market_fill.o.X, market_fill.o.n) == (
        "600.000",
        "2.00",
        "FILLED",
        "0.60000000",
    )
    stop_fill = next(o for o in orders if o.o.x == "TRADE" and o.o.S == "SELL")
    assert stop_fill.o.L == "580.000" and stop_fill.o.rp == "-40.00000000"
    assert [a.o.X for a in _events(user, AlgoUpdate)] == ["NEW", "TRIGGERING", "TRIGGERED", "FINISHED"]
    assert [u.a.m for u in _events(user, AccountUpdate)] == ["ORDER", "ORDER"]
    assert len(_events(user, TradeLite)) == 2
    (config,) = _events(user, AccountConfigUpdate)
    assert config.ac.s == "BNBUSDT" and config.ac.l == 4
    assert _events(user, ListenKeyExpired)[0].listen_key == key
    assert not [
        r for r in caplog.records if "Failed to parse" in r.getMessage() or "Error in callback" in r.getMessage()
    ]


class Watcher:
    """Calls one ccxt pro watch method over and over, keeping every result."""

    def __init__(self, name: str, call: Callable[[], Any]):
        self.name = name
        self.results: list[Any] = []
        self.task = asyncio.get_running_loop().create_task(self._run(call))

    async def _run(self, call: Callable[[], Any]) -> None:
        while True:
            self.results.append(await call())


@pytest.fixture
def ccxt_pro(paper: EmbeddedPaper, admin: PaperAdmin) -> Any:
    acct = admin.create_account(balance="10000")
    ex = ccxtpro.binanceusdm({"apiKey": acct["apiKey"], "secret": acct["apiSecret"], "enableRateLimit": False})
    ex.options["fetchCurrencies"] = False
    for name in ("fapiPublic", "fapiPrivate", "fapiData"):
        ex.urls["api"][name] = f"{paper.url}/fapi/v1"
    for v in ("V2", "V3"):
        ex.urls["api"][f"fapiPublic{v}"] = f"{paper.url}/fapi/{v.lower()}"
        ex.urls["api"][f"fapiPrivate{v}"] = f"{paper.url}/fapi/{v.lower()}"
    ex.urls["api"]["ws"]["linear"] = ws_base(paper) + "/ws"  # ccxt routes it to /market/ws, /private/ws
    return ex


async def test_ccxt_pro_session_with_stop_loss(ccxt_pro: Any, admin: PaperAdmin, pinned: list[str]) -> None:
    ex = ccxt_pro
    sym = "SOL/USDT:USDT"
    admin.set_mark("SOLUSDT", "200")
    pinned.append("SOLUSDT")
    watchers: list[Watcher] = []
    try:
        await ex.load_markets()
        mark = Watcher("mark", lambda: ex.watch_mark_price(sym))
        candles = Watcher("ohlcv", lambda: ex.watch_ohlcv(sym, "1m"))
        orders = Watcher("orders", lambda: ex.watch_orders(sym))
        positions = Watcher("positions", lambda: ex.watch_positions([sym]))
        balance = Watcher("balance", lambda: ex.watch_balance())
        watchers = [mark, candles, orders, positions, balance]
        await wait_for(lambda: bool(mark.results and candles.results), what="mark price and candles")
        await asyncio.sleep(1.0)  # the private socket is up once the listenKey was fetched

        bought = await ex.create_order(sym, "market", "buy", 5)
        assert bought["status"] == "closed"
        await wait_for(lambda: _position(positions) == 5.0, what="the long position")
        stop = await ex.create_order(sym, "market", "sell", 5, None, {"stopLossPrice": 190, "reduceOnly": True})
        assert stop["status"] == "open" and stop["triggerPrice"] == 190.0
        await wait_for(lambda: _order(orders, stop["id"]) is not None, what="the stop on the stream")
        admin.set_mark("SOLUSDT", "185")
        await wait_for(lambda: (_order(orders, stop["id"]) or {}).get("status") == "closed", what="the stop firing")
        await wait_for(lambda: _position(positions) == 0.0, what="the flat position")
        await wait_for(lambda: abs((_total(balance) or 0) - 9924.0375) < 1e-6, what="the balance after the stop")
        await wait_for(lambda: mark.results[-1]["markPrice"] == 185.0, what="the new mark price")
        await wait_for(lambda: candles.results[-1][-1][4] == 185.0, what="the candle closing at the new price")
    finally:
        for w in watchers:
            w.task.cancel()
        await ex.close()

    assert mark.results[-1]["symbol"] == sym and mark.results[-1]["markPrice"] == 185.0
    last = candles.results[-1][-1]
    assert last[0] % 60_000 == 0 and last[4] == 185.0
    fired = _order(orders, stop["id"])
    assert fired is not None and fired["filled"] == 5.0 and fired["triggerPrice"] == 190.0
    market_orders = [o for batch in orders.results for o in batch if o["id"] == bought["id"]]
    assert market_orders[-1]["status"] == "closed" and market_orders[-1]["average"] == 200.0
    assert 5.0 in [_position_of(batch) for batch in positions.results]


def _order(watcher: Watcher, order_id: str) -> dict[str, Any] | None:
    found = [o for batch in watcher.results for o in batch if o["id"] == order_id]
    return found[-1] if found else None


def _position_of(batch: list[dict[str, Any]]) -> float | None:
    sol = [p for p in batch if p["symbol"] == "SOL/USDT:USDT"]
    return float(sol[-1]["contracts"] or 0) if sol else None


def _position(watcher: Watcher) -> float | None:
    for batch in reversed(watcher.results):
        amount = _position_of(batch)
        if amount is not None:
            return amount
    return None


def _total(watcher: Watcher) -> float | None:
    return float(watcher.results[-1]["USDT"]["total"]) if watcher.results else None
