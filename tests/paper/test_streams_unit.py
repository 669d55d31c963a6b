"""Units of the stream layer without sockets: the stream grammar, and the fan-out policy (a client
that stops reading is dropped without holding up anyone else)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from paper.streams.hub import Connection, Hub
from paper.streams.names import LEGACY, MARKET, PRIVATE, PUBLIC, parse, served_on


@pytest.mark.parametrize(
    ("name", "route", "kind", "every_ms"),
    [
        ("btcusdt@markPrice", MARKET, "markPrice", 3000),
        ("btcusdt@markPrice@1s", MARKET, "markPrice", 1000),
        ("!markPrice@arr@1s", MARKET, "markPrice", 1000),
        ("ethusdt@kline_1M", MARKET, "kline", 250),
        ("solusdt@aggTrade", MARKET, "aggTrade", 0),
        ("xrpusdt@forceOrder", MARKET, "forceOrder", 0),
        ("!miniTicker@arr", MARKET, "miniTicker", 1000),
        ("bnbusdt@bookTicker", PUBLIC, "bookTicker", 100),
        ("bnbusdt@depth", PUBLIC, "depth", 250),
        ("bnbusdt@depth@100ms", PUBLIC, "depth", 100),
        ("bnbusdt@depth10@500ms", PUBLIC, "partialDepth", 500),
        ("bnbusdt@trade", PUBLIC, "trade", 0),
    ],
)
def test_stream_names(name: str, route: str, kind: str, every_ms: int) -> None:
    stream = parse(name)
    assert stream is not None and (stream.route, stream.kind, stream.every_ms) == (route, kind, every_ms)


@pytest.mark.parametrize(
    "name", ["0", "BTCUSDT@kline_1m", "btcusdt@kline_1s", "btcusdt@depth7", "dogeusdt@markPrice", "btcusdt@ticker@1s"]
)
def test_not_streams(name: str) -> None:
    assert parse(name) is None


def test_routes_serve_their_own_class() -> None:
    mark, book = parse("btcusdt@markPrice"), parse("btcusdt@bookTicker")
    assert mark is not None and book is not None
    assert served_on(mark, MARKET) and not served_on(mark, PUBLIC) and not served_on(mark, LEGACY)
    assert served_on(book, PUBLIC) and served_on(book, LEGACY) and not served_on(book, MARKET)
    assert not served_on(mark, PRIVATE)


async def test_a_stuck_client_is_dropped_and_the_others_keep_receiving() -> None:
    hub = Hub()
    stuck_sent: list[Any] = []
    fine_sent: list[Any] = []
    release = asyncio.Event()

    async def stuck_send(message: dict[str, Any]) -> None:
        stuck_sent.append(message)
        await release.wait()  # a socket whose buffer never drains

    async def fine_send(message: dict[str, Any]) -> None:
        fine_sent.append(message)

    stuck, fine = Connection(MARKET, False, max_frames=10), Connection(MARKET, True, max_frames=10)
    for conn in (stuck, fine):
        hub.add(conn)
        hub.subscribe(conn, "btcusdt@markPrice", deliverable=True)
    writers = [asyncio.create_task(stuck.write_loop(stuck_send)), asyncio.create_task(fine.write_loop(fine_send))]
    for i in range(15):
        assert hub.publish("btcusdt@markPrice", {"e": "markPriceUpdate", "E": i}) >= 1
        await asyncio.sleep(0)
    assert stuck.close_code == 1013 and stuck.pending == 0
    assert len(fine_sent) == 15 and fine.close_code is None
    assert orjson.loads(fine_sent[-1]["text"]) == {
        "stream": "btcusdt@markPrice",
        "data": {"e": "markPriceUpdate", "E": 14},
    }
    release.set()
    await asyncio.wait_for(writers[0], 1)
    assert stuck_sent[-1] == {"type": "websocket.close", "code": 1013, "reason": "Too slow: outbox full"}
    await hub.drain(0.5)
    writers[1].cancel()


async def test_stall_withholds_one_stream() -> None:
    hub = Hub()
    conn = Connection(MARKET, False, max_frames=100)
    hub.add(conn)
    hub.subscribe(conn, "a@x", deliverable=True)
    hub.subscribe(conn, "b@x", deliverable=True)
    hub.stall("a@x", 60)
    assert hub.publish("a@x", {"n": 1}) == 0 and hub.publish("b@x", {"n": 2}) == 1
    hub.stall("a@x", 0)
    assert hub.publish("a@x", {"n": 3}) == 1
    hub.remove(conn)
    assert hub.subscribers == {} and hub.publish("b@x", {"n": 4}) == 0
