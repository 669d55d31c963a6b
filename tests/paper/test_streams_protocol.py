"""The paper exchange's WebSocket protocol against real sockets: routes, framing, the JSON
methods with Binance's acks and error frames, ids echoed verbatim, the message-rate limit,
server pings and the connection cap."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from websockets.exceptions import InvalidStatus

from paper.embedded import EmbeddedPaper, PaperAdmin
from paper.settings import PaperSettings

from .ws_support import drain, listen_key, open_ws, recv, recv_until, request, until_closed, ws_base


async def test_raw_and_combined_routes(paper: EmbeddedPaper) -> None:
    async with open_ws(paper, "/market/ws/btcusdt@markPrice@1s") as ws:
        frame = await recv(ws)
        assert frame["e"] == "markPriceUpdate" and frame["s"] == "BTCUSDT"
        assert isinstance(frame["E"], int) and isinstance(frame["T"], int) and isinstance(frame["p"], str)
    async with open_ws(paper, "/market/stream?streams=ethusdt@markPrice@1s/ethusdt@kline_1m") as ws:
        frames = [await recv(ws) for _ in range(4)]
        assert {f["stream"] for f in frames} <= {"ethusdt@markPrice@1s", "ethusdt@kline_1m"}
        assert all(set(f) == {"stream", "data"} for f in frames)
        kline = next(f["data"] for f in frames if f["stream"] == "ethusdt@kline_1m")
        assert kline["e"] == "kline" and kline["k"]["i"] == "1m" and kline["k"]["x"] is False


async def test_streams_only_on_their_binance_route(paper: EmbeddedPaper) -> None:
    """markPrice lives on /market: on /public it is acknowledged and never delivered (as on
    Binance); the legacy unrouted /ws serves only the public class (bookTicker)."""
    async with open_ws(paper, "/public/ws") as ws:
        assert await request(ws, "SUBSCRIBE", ["btcusdt@markPrice@1s", "btcusdt@bookTicker"], 3) == {
            "result": None,
            "id": 3,
        }
        frames = await drain(ws, 1.3)
        assert frames and all(f["e"] == "bookTicker" for f in frames)
        assert await request(ws, "LIST_SUBSCRIPTIONS", request_id=4) == {
            "result": ["btcusdt@markPrice@1s", "btcusdt@bookTicker"],
            "id": 4,
        }
    async with open_ws(paper, "/ws/solusdt@bookTicker/solusdt@kline_1m") as ws:
        frames = await drain(ws, 1.0)
        assert frames and {f["e"] for f in frames} == {"bookTicker"}


async def test_unknown_path_is_refused(paper: EmbeddedPaper) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with open_ws(paper, "/nowhere/ws"):
            pass
    assert refused.value.response.status_code == 403


async def test_methods_acks_and_ids_verbatim(paper: EmbeddedPaper) -> None:
    async with open_ws(paper, "/market/ws/0") as ws:  # ccxt's counter path: not a stream, ignored
        assert await request(ws, "LIST_SUBSCRIPTIONS", request_id=1) == {"result": [], "id": 1}
        uuid = "5b0f3a8e-8d4e-4f0e-9a53-6c2c7b0e1f11"
        assert await request(ws, "SUBSCRIBE", ["bnbusdt@markPrice@1s"], uuid) == {"result": None, "id": uuid}
        assert (await recv_until(ws, lambda f: f.get("e") == "markPriceUpdate"))[-1]["s"] == "BNBUSDT"
        assert await request(ws, "GET_PROPERTY", ["combined"], 2) == {"result": False, "id": 2}
        assert await request(ws, "SET_PROPERTY", ["combined", True], 3) == {"result": None, "id": 3}
        wrapped = await recv_until(ws, lambda f: "stream" in f)
        assert wrapped[-1]["stream"] == "bnbusdt@markPrice@1s" and wrapped[-1]["data"]["s"] == "BNBUSDT"
        assert await request(ws, "GET_PROPERTY", ["combined"], 4) == {"result": True, "id": 4}
        assert await request(ws, "UNSUBSCRIBE", ["bnbusdt@markPrice@1s"], 5) == {"result": None, "id": 5}
        assert await request(ws, "LIST_SUBSCRIPTIONS", request_id=2**40) == {"result": [], "id": 2**40}
        await drain(ws, 0.2)
        assert await drain(ws, 1.2) == []


async def test_error_frames(paper: EmbeddedPaper) -> None:
    async with open_ws(paper, "/market/ws") as ws:
        assert await request(ws, "SET_PROPERTY", ["colour", True], 1) == {
            "error": {"code": 0, "msg": "Unknown property"},
            "id": 1,
        }
        assert await request(ws, "SET_PROPERTY", ["combined", "yes"], 2) == {
            "error": {"code": 1, "msg": "Invalid value type: expected Boolean"},
            "id": 2,
        }
        unknown = await request(ws, "PUBLISH", [], "x-1")
        assert unknown["id"] == "x-1" and unknown["error"]["code"] == 2
        assert unknown["error"]["msg"].startswith("Invalid request: unknown variant `PUBLISH`, expected one of")
        await ws.send(orjson.dumps({"params": [], "id": 9}).decode())
        assert await recv(ws) == {"error": {"code": 2, "msg": "Invalid request: missing field `method`"}, "id": 9}
        await ws.send(orjson.dumps({"method": "SUBSCRIBE", "params": [], "id": -1}).decode())
        assert await recv(ws) == {
            "error": {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"},
            "id": None,
        }
        await ws.send("{not json")
        bad = await recv(ws)
        assert bad["id"] is None and bad["error"]["code"] == 3 and bad["error"]["msg"].startswith("Invalid JSON")
        await ws.send(b"\xff\xfe")  # a binary frame that is not JSON either
        assert (await recv(ws))["error"]["code"] == 3
        # the connection is still good after all of that
        assert await request(ws, "LIST_SUBSCRIPTIONS", request_id=10) == {"result": [], "id": 10}


async def test_too_many_messages_closes_only_that_connection(paper: EmbeddedPaper) -> None:
    async with open_ws(paper, "/market/ws/xrpusdt@markPrice@1s") as bystander, open_ws(paper, "/market/ws") as noisy:
        for i in range(12):
            await noisy.send(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}).decode())
        closed = await until_closed(noisy)
        assert closed.rcvd is not None and closed.rcvd.code == 1008
        frames = await drain(bystander, 1.5)
        assert any(f.get("e") == "markPriceUpdate" for f in frames)


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPaper]:
    """A server with fast pings, a 3 s connection cap and 1 s listenKeys."""
    db: Path = tmp_path_factory.mktemp("paper-tight") / "p.sqlite3"
    settings = PaperSettings(
        port=0,
        db=db,
        admin_token=secrets.token_hex(8),
        rate_limits=False,
        tick_interval_s=3600.0,
        ws_ping_interval_s=0.3,
        ws_max_connection_s=3.0,
        listen_key_validity_s=1.0,
    )
    with EmbeddedPaper(settings) as server:
        yield server


async def test_server_pings_and_connection_cap(tight: EmbeddedPaper) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_base(tight) + "/market/ws", autoping=False) as ws,
    ):
        kinds: list[aiohttp.WSMsgType] = []
        while len(kinds) < 30:
            msg = await asyncio.wait_for(ws.receive(), 5)
            kinds.append(msg.type)
            if msg.type == aiohttp.WSMsgType.PING:
                await ws.pong(msg.data)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                break
        assert kinds.count(aiohttp.WSMsgType.PING) >= 2
        assert kinds[-1] == aiohttp.WSMsgType.CLOSE and ws.close_code == 1000


async def test_listen_key_lapses_by_itself(tight: EmbeddedPaper) -> None:
    admin = PaperAdmin(tight.url, tight.admin_token)
    acct = admin.create_account(balance="1000")
    key = listen_key(tight, acct["apiKey"]).json()["listenKey"]
    async with open_ws(tight, f"/private/ws?listenKey={key}") as ws:
        frame = (await recv_until(ws, lambda f: f.get("e") == "listenKeyExpired", timeout=5))[-1]
        assert frame["listenKey"] == key and isinstance(frame["E"], int)
    r = listen_key(tight, acct["apiKey"], "PUT")
    assert r.status_code == 400 and r.json()["code"] == -1125
    admin.close()
