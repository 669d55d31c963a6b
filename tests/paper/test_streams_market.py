"""Market streams against real sockets: consistent with the REST views at the same moment, in
Binance's JSON types (checked with the official SDK's strict models), and the /_paper/ stream
controls (drop, stall)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from binance_sdk_derivatives_trading_usds_futures.websocket_streams.models import (
    AggregateTradeStreamsResponse,
    DiffBookDepthStreamsResponse,
    IndividualSymbolBookTickerStreamsResponse,
    IndividualSymbolMiniTickerStreamResponse,
    IndividualSymbolTickerStreamsResponse,
    KlineCandlestickStreamsResponse,
    MarkPriceStreamForAllMarketResponseInner,
    MarkPriceStreamResponse,
    PartialBookDepthStreamsResponse,
)

from paper.embedded import EmbeddedPaper, PaperAdmin

from .conftest import Fapi
from .ws_support import drain, listen_key, open_ws, recv, recv_until, until_closed


def rest(paper: EmbeddedPaper, path: str, **params: Any) -> Any:
    r = httpx.get(paper.url + path, params=params, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def strict(model: Any, payload: Any) -> Any:
    """Validate like the SDK does (from JSON, strict types); raises on any type mismatch."""
    return model.model_validate_json(orjson.dumps(payload))


async def test_closed_kline_equals_rest(paper: EmbeddedPaper, admin: PaperAdmin) -> None:
    async with open_ws(paper, "/market/ws/ethusdt@kline_1m") as ws:
        first = (await recv(ws))["k"]
        assert first["x"] is False
        admin.advance(60_000)
        frames = await recv_until(ws, lambda f: f["k"]["x"] is True)
        closed = frames[-1]
        following = await recv(ws)
    strict(KlineCandlestickStreamsResponse, closed)
    k = closed["k"]
    (row,) = rest(paper, "/fapi/v1/klines", symbol="ETHUSDT", interval="1m", startTime=k["t"], limit=1)
    assert [k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"], k["V"], k["Q"]] == row[:11]
    assert following["k"]["x"] is False and following["k"]["t"] == k["t"] + 60_000
    (now_row,) = rest(paper, "/fapi/v1/klines", symbol="ETHUSDT", interval="1m", startTime=k["t"] + 60_000, limit=1)
    assert following["k"]["o"] == now_row[1] and following["k"]["T"] == now_row[6]


async def test_mark_price_and_book_agree_with_rest(paper: EmbeddedPaper, admin: PaperAdmin, pinned: list[str]) -> None:
    admin.set_mark("XRPUSDT", "2.5")
    pinned.append("XRPUSDT")
    premium = rest(paper, "/fapi/v1/premiumIndex", symbol="XRPUSDT")
    top = rest(paper, "/fapi/v1/ticker/bookTicker", symbol="XRPUSDT")
    book = rest(paper, "/fapi/v1/depth", symbol="XRPUSDT", limit=5)
    names = ["xrpusdt@markPrice", "!markPrice@arr@1s", "xrpusdt@bookTicker", "xrpusdt@depth5@100ms"]
    async with (
        open_ws(paper, "/market/stream?streams=" + "/".join(names[:2])) as market,
        open_ws(paper, "/public/stream?streams=" + "/".join(names[2:])) as public,
    ):
        got = {f["stream"]: f["data"] for f in await drain(market, 3.2) + await drain(public, 0.5)}
    assert set(got) == set(names)
    mark = strict(MarkPriceStreamResponse, got["xrpusdt@markPrice"])
    assert (mark.p, mark.i, mark.P, mark.r, mark.T) == (
        premium["markPrice"],
        premium["indexPrice"],
        premium["estimatedSettlePrice"],
        premium["lastFundingRate"],
        premium["nextFundingTime"],
    )
    everyone = [strict(MarkPriceStreamForAllMarketResponseInner, m) for m in got["!markPrice@arr@1s"]]
    assert {m.s for m in everyone} == {"BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"}
    ticker = strict(IndividualSymbolBookTickerStreamsResponse, got["xrpusdt@bookTicker"])
    assert (ticker.b, ticker.a, ticker.B) == (top["bidPrice"], top["askPrice"], top["bidQty"])
    depth = strict(PartialBookDepthStreamsResponse, got["xrpusdt@depth5@100ms"])
    assert [b[0] for b in depth.b] == [b[0] for b in book["bids"]]
    assert [a[0] for a in depth.a] == [a[0] for a in book["asks"]]


async def test_diff_depth_chains_update_ids(paper: EmbeddedPaper) -> None:
    async with open_ws(paper, "/public/ws/btcusdt@depth@100ms") as ws:
        first, second, third = [await recv(ws) for _ in range(3)]
    for event in (first, second, third):
        strict(DiffBookDepthStreamsResponse, event)
    assert len(first["b"]) == 1000 and len(first["a"]) == 1000  # the whole book to begin with
    assert second["pu"] == first["u"] and second["U"] == first["u"] + 1 and second["u"] > first["u"]
    assert third["pu"] == second["u"]


async def test_tickers_and_own_fills_on_the_tape(
    paper: EmbeddedPaper, admin: PaperAdmin, fapi: Fapi, pinned: list[str]
) -> None:
    admin.set_mark("SOLUSDT", "150")
    pinned.append("SOLUSDT")
    async with open_ws(paper, "/market/ws/solusdt@ticker/solusdt@miniTicker/solusdt@aggTrade") as ws:
        fapi.market("SOLUSDT", "SELL", "7")
        frames = await drain(ws, 2.3)
    by_type: dict[str, list[Any]] = {}
    for f in frames:
        by_type.setdefault(f["e"], []).append(f)
    ticker = strict(IndividualSymbolTickerStreamsResponse, by_type["24hrTicker"][-1])
    mini = strict(IndividualSymbolMiniTickerStreamResponse, by_type["24hrMiniTicker"][-1])
    assert ticker.c == "150.0000" and mini.c == "150.0000" and ticker.s == "SOLUSDT"
    rolling = rest(paper, "/fapi/v1/ticker/24hr", symbol="SOLUSDT")
    assert ticker.o == rolling["openPrice"] or rolling["openTime"] != ticker.O
    trades = [strict(AggregateTradeStreamsResponse, t) for t in by_type["aggTrade"]]
    own = [t for t in trades if t.q == "7"]
    assert own and own[0].p == "150.0000" and own[0].m is True  # the account sold as taker: the buyer made
    assert len(trades) > 1  # and the synthetic market trades around it


async def test_drop_and_stall_controls(paper: EmbeddedPaper, admin: PaperAdmin, fapi: Fapi) -> None:
    key = listen_key(paper, fapi.api_key).json()["listenKey"]
    async with (
        open_ws(paper, f"/private/ws?listenKey={key}") as private,
        open_ws(paper, "/market/ws/bnbusdt@markPrice@1s") as market,
    ):
        listed = admin.connections()
        assert any(c["route"] == "private" and c["subscriptions"] == [key] for c in listed)
        assert admin.drop_connections(fapi.api_key) == {"dropped": 1}
        dropped = await until_closed(private)
        assert dropped.rcvd is not None and dropped.rcvd.code == 1001
        await recv(market)  # the other connection is untouched
        assert admin.stall(2.0, stream="bnbusdt@markPrice@1s") == {"stream": "bnbusdt@markPrice@1s", "seconds": 2.0}
        await drain(market, 0.05)
        assert await drain(market, 1.7) == []
        assert (await recv(market, 2.0))["e"] == "markPriceUpdate"
        assert admin.drop_connections()["dropped"] >= 1
        dropped = await until_closed(market)
        assert dropped.rcvd is not None and dropped.rcvd.code == 1001


async def test_kline_stream_for_every_interval(paper: EmbeddedPaper) -> None:
    intervals = ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"]
    names = [f"bnbusdt@kline_{i}" for i in intervals]
    async with open_ws(paper, "/market/stream?streams=" + "/".join(names)) as ws:
        frames = await drain(ws, 0.8)
    first: dict[str, Any] = {}
    for f in frames:
        first.setdefault(f["stream"], f["data"])
    assert set(first) == set(names)
    for interval, name in zip(intervals, names, strict=True):
        k = strict(KlineCandlestickStreamsResponse, first[name]).k
        (row,) = rest(paper, "/fapi/v1/klines", symbol="BNBUSDT", interval=interval, limit=1)
        assert (k.i, k.t, k.T, k.o, k.x) == (interval, row[0], row[6], row[1], False)
