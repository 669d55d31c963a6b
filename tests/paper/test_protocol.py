"""Binance's protocol over real HTTP: auth, both parameter styles, error bodies, headers."""

from __future__ import annotations

import time

from paper.embedded import EmbeddedPaper

from .conftest import Fapi


def test_public_endpoints(fapi: Fapi) -> None:
    assert fapi.call("GET", "/fapi/v1/ping") == {}
    t = fapi.call("GET", "/fapi/v1/time")["serverTime"]
    assert abs(t - time.time() * 1000) < 5000
    info = fapi.client.get("/fapi/v1/exchangeInfo").json()
    syms = {s["symbol"]: s for s in info["symbols"]}
    assert set(syms) == {"BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"}
    btc = syms["BTCUSDT"]
    assert "STOP_MARKET" in btc["orderTypes"]
    assert "TAKE_PROFIT_MARKET" in btc["orderTypes"]
    kinds = [f["filterType"] for f in btc["filters"]]
    assert kinds == ["PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "MAX_NUM_ORDERS", "MIN_NOTIONAL", "PERCENT_PRICE"]
    assert btc["deliveryDate"] == 4133404800000
    pi = fapi.client.get("/fapi/v1/premiumIndex", params={"symbol": "ETHUSDT"}).json()
    assert isinstance(pi["nextFundingTime"], int)
    assert pi["nextFundingTime"] % (8 * 3600 * 1000) == 0
    assert isinstance(pi["markPrice"], str)
    assert len(fapi.client.get("/fapi/v1/premiumIndex").json()) == 5
    tp = fapi.client.get("/fapi/v1/ticker/price", params={"symbol": "BTCUSDT"}).json()
    assert tp["symbol"] == "BTCUSDT"


def test_signed_query_style_and_form_style(fapi: Fapi) -> None:
    r = fapi.raw("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 7}, style="query")
    assert r.status_code == 200, r.text
    assert r.json() == {"leverage": 7, "maxNotionalValue": "230000000", "symbol": "BTCUSDT"}
    r = fapi.raw("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 8}, style="form")
    assert r.status_code == 200, r.text
    assert r.json()["leverage"] == 8


def test_query_value_wins_on_duplicates(paper: EmbeddedPaper, fapi: Fapi) -> None:
    import hashlib
    import hmac

    q = f"symbol=BTCUSDT&leverage=9&timestamp={int(time.time() * 1000)}"
    body = "leverage=3"
    sig = hmac.new(fapi.secret, (q + body).encode(), hashlib.sha256).hexdigest()
    r = fapi.client.post(
        f"/fapi/v1/leverage?{q}",
        content=f"{body}&signature={sig}",
        headers={"X-MBX-APIKEY": fapi.api_key, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["leverage"] == 9


def test_auth_errors(fapi: Fapi) -> None:
    r = fapi.raw("GET", "/fapi/v3/account", api_key="")
    assert (r.status_code, r.json()["code"]) == (401, -2014)
    assert r.json()["msg"] == "API-key format invalid."
    r = fapi.raw("GET", "/fapi/v3/account", api_key="A" * 64)
    assert (r.status_code, r.json()) == (401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})
    r = fapi.client.get(
        "/fapi/v3/account",
        params={"timestamp": int(time.time() * 1000), "signature": "ab" * 32},
        headers={"X-MBX-APIKEY": fapi.api_key},
    )
    assert r.status_code == 400
    assert r.json() == {"code": -1022, "msg": "Signature for this request is not valid."}
    assert r.headers["content-type"] == "application/json"
    r = fapi.client.get(
        "/fapi/v3/account", params={"timestamp": int(time.time() * 1000)}, headers={"X-MBX-APIKEY": fapi.api_key}
    )
    assert r.json()["code"] == -1102
    assert "'signature'" in r.json()["msg"]


def test_timestamp_outside_recv_window(fapi: Fapi) -> None:
    r = fapi.raw("GET", "/fapi/v3/account", timestamp=int(time.time() * 1000) - 6000)
    assert r.status_code == 400
    assert r.json() == {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}
    r = fapi.raw("GET", "/fapi/v3/account", timestamp=int(time.time() * 1000) - 6000, recv_window=10000)
    assert r.status_code == 200
    r = fapi.raw("GET", "/fapi/v3/account", timestamp=int(time.time() * 1000) + 5000)
    assert r.json() == {"code": -1021, "msg": "Timestamp for this request was 1000ms ahead of the server's time."}


def test_rate_limit_headers(fapi: Fapi) -> None:
    r = fapi.raw("GET", "/fapi/v1/ping", signed=False)
    assert int(r.headers["x-mbx-used-weight-1m"]) >= 1
    before = int(fapi.raw("GET", "/fapi/v1/ping", signed=False).headers["x-mbx-used-weight-1m"])
    r = fapi.raw("GET", "/fapi/v1/income")
    assert int(r.headers["x-mbx-used-weight-1m"]) >= before + 30
    assert "x-mbx-order-count-10s" not in r.headers
    r = fapi.raw("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"})
    assert r.headers["x-mbx-order-count-10s"] == "1"
    assert r.headers["x-mbx-order-count-1m"] == "1"
    err = fapi.raw("GET", "/fapi/v3/account", timestamp=1)
    assert "x-mbx-used-weight-1m" in err.headers


def test_unknown_path_and_bad_input_never_500(fapi: Fapi) -> None:
    r = fapi.client.get("/fapi/v1/nope")
    assert r.status_code == 404
    assert "code" in r.json()
    for params in (
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "abc"},
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "1e-3"},
        {"symbol": "BTCUSDT", "side": "UP", "type": "MARKET", "quantity": "0.001"},
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001", "newOrderRespType": "FULL"},
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001", "reduceOnly": "maybe"},
        {"symbol": "BTCUSDT", "side": "BUY", "type": "WHAT", "quantity": "0.001"},
    ):
        r = fapi.raw("POST", "/fapi/v1/order", params)
        assert r.status_code == 400, r.text
        assert r.json()["code"] in (-1100, -1130, -1117, -1136, -1116)
    r = fapi.raw("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": "x1"})
    assert r.json()["code"] == -1100
    r = fapi.raw("GET", "/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1h", "limit": "-5"}, signed=False)
    assert r.status_code == 400
