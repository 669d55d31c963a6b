"""User-data streams against real sockets: listenKey lifecycle, and the events of a market order,
a stop fired by /_paper/mark, leverage, margin type, funding, amend/cancel, liquidation."""

from __future__ import annotations

import httpx

from paper.embedded import EmbeddedPaper, PaperAdmin

from .conftest import Fapi
from .ws_support import Frame, drain, listen_key, open_ws, recv, recv_until, request, user_events


def _key(paper: EmbeddedPaper, fapi: Fapi) -> str:
    r = listen_key(paper, fapi.api_key)
    assert r.status_code == 200, r.text
    return str(r.json()["listenKey"])


def test_listen_key_lifecycle(paper: EmbeddedPaper, fapi: Fapi) -> None:
    first = listen_key(paper, fapi.api_key)
    assert first.status_code == 200 and len(first.json()["listenKey"]) == 64
    key = first.json()["listenKey"]
    assert listen_key(paper, fapi.api_key).json() == {"listenKey": key}  # one active key per account
    assert listen_key(paper, fapi.api_key, "PUT").json() == {"listenKey": key}
    assert int(first.headers["x-mbx-used-weight-1m"]) >= 1
    deleted = listen_key(paper, fapi.api_key, "DELETE")
    assert deleted.status_code == 200 and deleted.json() == {}
    gone = listen_key(paper, fapi.api_key, "PUT")
    assert gone.status_code == 400
    assert gone.json() == {
        "code": -1125,
        "msg": "This listenKey does not exist. Please use POST /fapi/v1/listenKey to recreate listenKey",
    }
    assert listen_key(paper, fapi.api_key, "DELETE").json()["code"] == -1125
    fresh = listen_key(paper, fapi.api_key).json()["listenKey"]
    assert fresh != key
    no_key = httpx.post(paper.url + "/fapi/v1/listenKey")
    assert no_key.status_code == 401 and no_key.json()["code"] == -2014
    bad_key = httpx.post(paper.url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": "nope"})
    assert bad_key.status_code == 401 and bad_key.json()["code"] == -2015


async def test_market_order_events(paper: EmbeddedPaper, admin: PaperAdmin, fapi: Fapi, pinned: list[str]) -> None:
    admin.set_mark("BNBUSDT", "600")
    pinned.append("BNBUSDT")
    key = _key(paper, fapi)
    async with open_ws(paper, f"/private/ws?listenKey={key}") as ws:
        order = fapi.market("BNBUSDT", "BUY", "1.00")
        frames = await recv_until(ws, lambda f: f["e"] == "ACCOUNT_UPDATE")
    assert [f["e"] for f in frames] == ["ORDER_TRADE_UPDATE", "TRADE_LITE", "ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"]
    new, lite, trade, account = frames
    assert new["o"]["x"] == "NEW" and new["o"]["X"] == "NEW" and new["o"]["i"] == order["orderId"]
    o = trade["o"]
    assert (o["x"], o["X"], o["s"], o["S"], o["o"]) == ("TRADE", "FILLED", "BNBUSDT", "BUY", "MARKET")
    assert o["L"] == "600.000" and o["l"] == "1.00" and o["z"] == "1.00" and o["ap"] == "600.000"
    assert o["N"] == "USDT" and o["n"] == "0.30000000" and o["rp"] == "0.00000000" and o["m"] is False
    assert isinstance(o["t"], int) and o["t"] > 0 and isinstance(o["T"], int) and o["R"] is False
    assert lite["L"] == "600.000" and lite["l"] == "1.00" and lite["t"] == o["t"] and lite["i"] == order["orderId"]
    assert account["a"]["m"] == "ORDER"
    assert account["a"]["B"] == [{"a": "USDT", "wb": "9999.70000000", "cw": "9999.70000000", "bc": "0.00000000"}]
    (position,) = account["a"]["P"]
    assert (position["s"], position["pa"], position["ep"], position["mt"], position["ps"]) == (
        "BNBUSDT",
        "1.00",
        "600.00000000",
        "cross",
        "BOTH",
    )
    times = [f["E"] for f in frames]
    assert times == sorted(times) and all(isinstance(t, int) for t in times)


async def test_stop_fired_by_admin_mark(paper: EmbeddedPaper, admin: PaperAdmin, fapi: Fapi, pinned: list[str]) -> None:
    """ALGO_UPDATE → ORDER_TRADE_UPDATE → ACCOUNT_UPDATE, in event-time order, on the socket
    by the time POST /_paper/mark returns; over /private/stream + SUBSCRIBE like the SDK."""
    admin.set_mark("SOLUSDT", "200")
    pinned.append("SOLUSDT")
    fapi.market("SOLUSDT", "BUY", "5")
    algo = fapi.call(
        "POST",
        "/fapi/v1/algoOrder",
        algoType="CONDITIONAL",
        symbol="SOLUSDT",
        side="SELL",
        type="STOP_MARKET",
        triggerPrice="190",
        closePosition="true",
    )
    key = _key(paper, fapi)
    async with open_ws(paper, "/private/stream") as ws:
        assert await request(ws, "SUBSCRIBE", [key], "sdk-like-uuid") == {"result": None, "id": "sdk-like-uuid"}
        fired = admin.set_mark("SOLUSDT", "185")
        assert fired["triggered"] == [algo["algoId"]]
        frames = await drain(ws, 0.3)  # already written before the admin call returned
    assert all(f["stream"] == key for f in frames)
    events = user_events(frames)
    summary = [(e["e"], e["a"]["m"] if e["e"] == "ACCOUNT_UPDATE" else e.get("o", {}).get("X")) for e in events]
    assert summary == [
        ("ALGO_UPDATE", "TRIGGERING"),
        ("ALGO_UPDATE", "TRIGGERED"),
        ("ORDER_TRADE_UPDATE", "NEW"),
        ("TRADE_LITE", None),
        ("ORDER_TRADE_UPDATE", "FILLED"),
        ("ACCOUNT_UPDATE", "ORDER"),
        ("ALGO_UPDATE", "FINISHED"),
    ], summary
    times = [e["E"] for e in events]
    assert times == sorted(times)
    triggered = events[1]["o"]
    assert triggered["aid"] == algo["algoId"] and triggered["ai"] == str(events[2]["o"]["i"])
    assert triggered["tp"] == "190.0000" and triggered["cp"] is True and isinstance(triggered["tt"], int)
    fill = events[4]["o"]
    assert fill["L"] == "185.0000" and fill["l"] == "5" and fill["S"] == "SELL" and fill["rp"] == "-75.00000000"
    assert events[5]["a"]["P"][0]["pa"] == "0"
    finished = events[6]["o"]
    assert finished["aq"] == "5" and finished["ap"] == "185.0000" and finished["act"] == "MARKET"


async def test_settings_and_funding_events(
    paper: EmbeddedPaper, admin: PaperAdmin, fapi: Fapi, pinned: list[str]
) -> None:
    key = _key(paper, fapi)
    async with open_ws(paper, f"/private/ws/{key}") as ws:
        fapi.call("POST", "/fapi/v1/leverage", symbol="XRPUSDT", leverage=7)
        config = (await recv_until(ws, lambda f: f["e"] == "ACCOUNT_CONFIG_UPDATE"))[-1]
        assert config["ac"] == {"s": "XRPUSDT", "l": 7} and isinstance(config["T"], int)
        fapi.call("POST", "/fapi/v1/marginType", symbol="XRPUSDT", marginType="ISOLATED")
        change = (await recv_until(ws, lambda f: f["e"] == "ACCOUNT_UPDATE"))[-1]
        assert change["a"]["m"] == "MARGIN_TYPE_CHANGE"
        assert [(p["s"], p["mt"], p["pa"]) for p in change["a"]["P"]] == [("XRPUSDT", "isolated", "0.0")]
        fapi.call("POST", "/fapi/v1/marginType", symbol="XRPUSDT", marginType="CROSSED")
        await recv_until(ws, lambda f: f["e"] == "ACCOUNT_UPDATE")
        admin.set_mark("XRPUSDT", "2.5")
        pinned.append("XRPUSDT")
        fapi.market("XRPUSDT", "BUY", "100")
        await recv_until(ws, lambda f: f["e"] == "ACCOUNT_UPDATE")
        admin.advance(8 * 3_600_000)
        frames = await drain(ws, 0.3)
    funding = [f for f in frames if f["e"] == "ACCOUNT_UPDATE" and f["a"]["m"] == "FUNDING_FEE"]
    assert funding, frames
    fee = funding[0]["a"]
    assert fee["S"] == "XRPUSDT" and fee["P"] == []  # a cross position: balances only
    assert fee["B"][0]["a"] == "USDT" and fee["B"][0]["bc"].startswith("-")


async def test_amend_cancel_and_events_filter(
    paper: EmbeddedPaper, admin: PaperAdmin, fapi: Fapi, pinned: list[str]
) -> None:
    admin.set_mark("ETHUSDT", "3000")
    pinned.append("ETHUSDT")
    key = _key(paper, fapi)
    async with open_ws(paper, f"/private/ws?listenKey={key}&events=ORDER_TRADE_UPDATE") as ws:
        fapi.call("POST", "/fapi/v1/leverage", symbol="ETHUSDT", leverage=3)  # filtered out
        placed = fapi.order(symbol="ETHUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.1", price="2900")
        fapi.call(
            "PUT",
            "/fapi/v1/order",
            symbol="ETHUSDT",
            orderId=placed["orderId"],
            side="BUY",
            quantity="0.2",
            price="2905",
        )
        fapi.call("DELETE", "/fapi/v1/order", symbol="ETHUSDT", orderId=placed["orderId"])
        frames = await recv_until(ws, lambda f: f["o"]["x"] == "CANCELED")
    assert [(f["e"], f["o"]["x"], f["o"]["q"], f["o"]["p"]) for f in frames] == [
        ("ORDER_TRADE_UPDATE", "NEW", "0.100", "2900.00"),
        ("ORDER_TRADE_UPDATE", "AMENDMENT", "0.200", "2905.00"),
        ("ORDER_TRADE_UPDATE", "CANCELED", "0.200", "2905.00"),
    ]


async def test_margin_call_then_liquidation(paper: EmbeddedPaper, admin: PaperAdmin, pinned: list[str]) -> None:
    acct = admin.create_account(balance="1000")
    fapi = Fapi(paper.url, acct["apiKey"], acct["apiSecret"])
    admin.set_mark("BTCUSDT", "60000")
    pinned.append("BTCUSDT")
    fapi.call("POST", "/fapi/v1/leverage", symbol="BTCUSDT", leverage=20)
    fapi.market("BTCUSDT", "BUY", "0.300")
    key = _key(paper, fapi)
    events: list[Frame] = []
    async with (
        open_ws(paper, f"/private/ws?listenKey={key}") as ws,
        open_ws(paper, "/market/ws/btcusdt@forceOrder") as liq,
    ):
        price = 60000.0
        while not any(e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "CALCULATED" for e in events):
            price -= 10
            assert price > 50000, events
            admin.set_mark("BTCUSDT", f"{price:.1f}")
            events += await drain(ws, 0.02)
        force = await recv(liq)
    kinds = [e["e"] for e in events]
    assert kinds.count("MARGIN_CALL") == 1 and kinds.index("MARGIN_CALL") < kinds.index("ORDER_TRADE_UPDATE")
    call = events[kinds.index("MARGIN_CALL")]
    assert call["p"][0]["s"] == "BTCUSDT" and call["p"][0]["mt"] == "CROSSED" and isinstance(call["cw"], str)
    liquidation = next(e["o"] for e in events if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "CALCULATED")
    assert (
        liquidation["o"] == "LIQUIDATION" and liquidation["X"] == "FILLED" and liquidation["c"].startswith("autoclose-")
    )
    assert force["e"] == "forceOrder" and force["o"]["s"] == "BTCUSDT" and force["o"]["S"] == "SELL"
    assert force["o"]["q"] == "0.300" and force["o"]["X"] == "FILLED"
    fapi.close()


async def test_algo_canceled_expired_and_rejected(paper: EmbeddedPaper, admin: PaperAdmin, pinned: list[str]) -> None:
    acct = admin.create_account(balance="300")
    fapi = Fapi(paper.url, acct["apiKey"], acct["apiSecret"])
    admin.set_mark("ETHUSDT", "3000")
    pinned.append("ETHUSDT")
    stop = {"algoType": "CONDITIONAL", "symbol": "ETHUSDT", "type": "STOP_MARKET"}
    key = _key(paper, fapi)
    async with open_ws(paper, f"/private/ws?listenKey={key}&events=ALGO_UPDATE") as ws:
        cancelled = fapi.call("POST", "/fapi/v1/algoOrder", side="BUY", triggerPrice="3100", quantity="0.010", **stop)
        fapi.call("DELETE", "/fapi/v1/algoOrder", algoId=cancelled["algoId"])
        # a buy stop that needs more margin than the account has when it fires
        too_big = fapi.call("POST", "/fapi/v1/algoOrder", side="BUY", triggerPrice="3100", quantity="3.000", **stop)
        # a closePosition stop whose position is gone when it fires
        fapi.market("ETHUSDT", "BUY", "0.010")
        orphan = fapi.call("POST", "/fapi/v1/algoOrder", side="SELL", triggerPrice="2900", closePosition="true", **stop)
        fapi.market("ETHUSDT", "SELL", "0.010")
        admin.set_mark("ETHUSDT", "3150")
        admin.set_mark("ETHUSDT", "2850")
        frames = await drain(ws, 0.3)
    fapi.close()
    seen = [(f["o"]["aid"], f["o"]["X"], f["o"]["rm"]) for f in frames]
    assert seen == [
        (cancelled["algoId"], "NEW", ""),
        (cancelled["algoId"], "CANCELED", ""),
        (too_big["algoId"], "NEW", ""),
        (orphan["algoId"], "NEW", ""),
        (too_big["algoId"], "TRIGGERING", ""),
        (too_big["algoId"], "REJECTED", "Margin is insufficient."),
        (orphan["algoId"], "TRIGGERING", ""),
        (orphan["algoId"], "EXPIRED", "Reduce only order is rejected"),
    ]
    assert all(f["o"]["ai"] == "" and f["o"]["at"] == "CONDITIONAL" for f in frames)
