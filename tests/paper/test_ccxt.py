"""Smoke test: ccxt's binanceusdm, unchanged apart from its URLs, against the paper exchange."""

from __future__ import annotations

import ccxt
import pytest

from paper.embedded import EmbeddedPaper, PaperAdmin


@pytest.fixture
def exchange(paper: EmbeddedPaper, admin: PaperAdmin) -> ccxt.binanceusdm:
    acct = admin.create_account(balance="10000")
    ex = ccxt.binanceusdm({"apiKey": acct["apiKey"], "secret": acct["apiSecret"], "enableRateLimit": False})
    ex.options["fetchCurrencies"] = False
    for name in ("fapiPublic", "fapiPrivate", "fapiData"):
        ex.urls["api"][name] = f"{paper.url}/fapi/v1"
    for v in ("V2", "V3"):
        ex.urls["api"][f"fapiPublic{v}"] = f"{paper.url}/fapi/{v.lower()}"
        ex.urls["api"][f"fapiPrivate{v}"] = f"{paper.url}/fapi/{v.lower()}"
    return ex


def test_ccxt_binanceusdm_smoke(exchange: ccxt.binanceusdm, admin: PaperAdmin, pinned: list[str]) -> None:
    admin.set_mark("SOLUSDT", "190")
    pinned.append("SOLUSDT")
    markets = exchange.load_markets()
    sol = markets["SOL/USDT:USDT"]
    assert sol["precision"]["amount"] == 1.0
    assert sol["limits"]["cost"]["min"] == 5.0
    assert exchange.fetch_time() > 0
    bal = exchange.fetch_balance()
    assert bal["USDT"]["total"] == 10000.0
    exchange.set_leverage(5, "SOL/USDT:USDT")
    exchange.set_margin_mode("isolated", "SOL/USDT:USDT")
    o = exchange.create_order("SOL/USDT:USDT", "market", "buy", 2)
    assert o["status"] == "closed"
    assert o["filled"] == 2.0
    got = exchange.fetch_order(o["id"], "SOL/USDT:USDT")
    assert got["average"] == 190.0
    sl = exchange.create_order("SOL/USDT:USDT", "market", "sell", 2, params={"stopLossPrice": 180, "reduceOnly": True})
    assert sl["id"]
    opens = exchange.fetch_open_orders("SOL/USDT:USDT", params={"trigger": True})
    assert [x["id"] for x in opens] == [sl["id"]]
    pos = exchange.fetch_positions(["SOL/USDT:USDT"])
    assert pos[0]["contracts"] == 2.0
    assert pos[0]["side"] == "long"
    assert admin.set_mark("SOLUSDT", "179")["triggered"] == [int(sl["id"])]
    ohlcv = exchange.fetch_ohlcv("SOL/USDT:USDT", "1h", limit=10)
    assert len(ohlcv) == 10
    fr = exchange.fetch_funding_rate("SOL/USDT:USDT")
    assert fr["markPrice"] == 179.0
    lim = exchange.create_order("SOL/USDT:USDT", "limit", "buy", 1, 170)
    edited = exchange.edit_order(lim["id"], "SOL/USDT:USDT", "limit", "buy", 2, 171)
    assert edited["amount"] == 2.0
    exchange.cancel_order(lim["id"], "SOL/USDT:USDT")
    with pytest.raises(ccxt.OrderNotFound):
        exchange.cancel_order(lim["id"], "SOL/USDT:USDT")
