"""Rate limits (429 / 418 with Retry-After) and restart persistence, each on a server of its own."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from paper.embedded import EmbeddedPaper, PaperAdmin
from paper.settings import PaperSettings

from .conftest import Fapi

ORDER = "/fapi/v1/order"


def _away_from_window_edge(window_s: int) -> None:
    """Rate windows are fixed and wall-clock aligned: start a burst well inside one."""
    left = window_s - time.time() % window_s
    if left < 2:
        time.sleep(left + 0.05)


def test_weight_limit_429_then_418(tmp_path: Path) -> None:
    s = PaperSettings(port=0, db=tmp_path / "p.sqlite3", admin_token="t", weight_limit_1m=40, tick_interval_s=3600)
    with EmbeddedPaper(s) as paper, PaperAdmin(paper.url, "t") as admin:
        acct = admin.create_account()
        f = Fapi(paper.url, acct["apiKey"], acct["apiSecret"])
        _away_from_window_edge(60)
        try:
            r = f.raw("GET", "/fapi/v1/income")  # weight 30
            assert (r.status_code, r.headers["x-mbx-used-weight-1m"]) == (200, "30")
            r = f.raw("GET", "/fapi/v1/income")
            assert r.status_code == 429
            assert r.json()["code"] == -1003
            assert int(r.headers["retry-after"]) >= 1
            assert "x-mbx-used-weight-1m" in r.headers
            statuses = [f.raw("GET", "/fapi/v1/income").status_code for _ in range(8)]
            assert 418 in statuses
            r = f.raw("GET", "/fapi/v1/ping", signed=False)
            assert r.status_code == 418
            assert int(r.headers["retry-after"]) > 60
        finally:
            f.close()


def test_order_limit_10s(tmp_path: Path) -> None:
    s = PaperSettings(port=0, db=tmp_path / "p.sqlite3", admin_token="t", order_limit_10s=3, tick_interval_s=3600)
    with EmbeddedPaper(s) as paper, PaperAdmin(paper.url, "t") as admin:
        acct = admin.create_account()
        f = Fapi(paper.url, acct["apiKey"], acct["apiSecret"])
        _away_from_window_edge(10)
        try:
            codes = []
            for _ in range(4):
                r = f.raw("POST", ORDER, {"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"})
                codes.append((r.status_code, r.json().get("code")))
            assert [c[0] for c in codes] == [200, 200, 200, 429]
            assert codes[-1] == (429, -1015)
        finally:
            f.close()


def test_rate_limits_off_still_sends_headers(tmp_path: Path) -> None:
    s = PaperSettings(port=0, db=tmp_path / "p.sqlite3", admin_token="t", rate_limits=False, weight_limit_1m=5)
    with EmbeddedPaper(s) as paper, PaperAdmin(paper.url, "t") as admin:
        acct = admin.create_account()
        f = Fapi(paper.url, acct["apiKey"], acct["apiSecret"])
        try:
            for _ in range(3):
                r = f.raw("GET", "/fapi/v1/income")
                assert r.status_code == 200
            assert int(r.headers["x-mbx-used-weight-1m"]) >= 90
        finally:
            f.close()


def _snapshot(admin: PaperAdmin, keys: list[str]) -> dict[str, Any]:
    out = {}
    for k in keys:
        st = admin.state(k)
        for p in st["positions"]:  # marks move with the walk between the two runs
            for fld in ("markPrice", "unRealizedProfit", "liquidationPrice"):
                p.pop(fld)
        for b in st["balances"]:
            for fld in ("crossUnPnl", "availableBalance", "maxWithdrawAmount"):
                b.pop(fld)
        out[k] = st
    return out


@pytest.mark.parametrize("graceful", [True, False])
def test_restart_keeps_everything(tmp_path: Path, graceful: bool) -> None:
    db = tmp_path / "p.sqlite3"
    s = PaperSettings(
        port=0,
        db=db,
        admin_token="t",
        tick_interval_s=3600,
        accounts=[{"name": "main", "api_key": "K" * 64, "api_secret": "S" * 64}],
    )
    paper = EmbeddedPaper(s).start()
    admin = PaperAdmin(paper.url, "t")
    try:
        other = admin.create_account(balance="2500", name="other")
        keys = ["K" * 64, other["apiKey"]]
        f = Fapi(paper.url, "K" * 64, "S" * 64)
        f.call("POST", "/fapi/v1/leverage", symbol="ETHUSDT", leverage=5)
        f.call("POST", "/fapi/v1/marginType", symbol="SOLUSDT", marginType="ISOLATED")
        f.call("POST", ORDER, symbol="ETHUSDT", side="BUY", type="MARKET", quantity="0.5", newClientOrderId="m-1")
        f.call("POST", ORDER, symbol="SOLUSDT", side="SELL", type="MARKET", quantity="3")
        px = f.client.get("/fapi/v1/ticker/price", params={"symbol": "ETHUSDT"}).json()["price"]
        lim = round(float(px) * 0.97, 2)
        f.call(
            "POST",
            ORDER,
            symbol="ETHUSDT",
            side="BUY",
            type="LIMIT",
            quantity="0.1",
            price=f"{lim:.2f}",
            timeInForce="GTC",
            newClientOrderId="rest-1",
        )
        f.call(
            "POST",
            "/fapi/v1/algoOrder",
            algoType="CONDITIONAL",
            symbol="ETHUSDT",
            side="SELL",
            type="STOP_MARKET",
            triggerPrice=f"{float(px) * 0.9:.2f}",
            closePosition="true",
            clientAlgoId="sl-a",
        )
        f.close()
        admin.advance(3_600_000)
        before = _snapshot(admin, keys)
        if not graceful:
            # a crash after the write-behind window: the last acknowledged change is on disk
            time.sleep(0.05)
            assert paper.app is not None
            assert not paper.app.store.pending
            paper.app.store.db.close()  # no final flush
            paper.app._closed = True
    finally:
        admin.close()
        paper.stop()
    with EmbeddedPaper(s) as paper2, PaperAdmin(paper2.url, "t") as admin2:
        after = _snapshot(admin2, keys)
        clock = admin2.clock()
        assert 3_590_000 < clock["marketTime"] - clock["wallTime"] < 3_610_000
        for k in keys:
            for part in before[k]:
                assert after[k][part] == before[k][part], part
        f = Fapi(paper2.url, "K" * 64, "S" * 64)
        try:
            assert f.call("GET", ORDER, symbol="ETHUSDT", origClientOrderId="rest-1")["status"] == "NEW"
            assert len(f.call("GET", "/fapi/v1/openAlgoOrders")) == 1
            new = f.call("POST", ORDER, symbol="ETHUSDT", side="SELL", type="MARKET", quantity="0.5", reduceOnly="true")
            assert new["orderId"] > max(o["orderId"] for o in before["K" * 64]["orders"])
        finally:
            f.close()


def test_reset_wipes_trading_keeps_accounts(tmp_path: Path) -> None:
    s = PaperSettings(port=0, db=tmp_path / "p.sqlite3", admin_token="t", starting_balance=5000)
    with EmbeddedPaper(s) as paper, PaperAdmin(paper.url, "t") as admin:
        acct = admin.create_account()
        assert acct["balance"] == "5000.00000000"
        assert len(acct["apiKey"]) == 64
        assert acct["apiKey"].isalnum()
        f = Fapi(paper.url, acct["apiKey"], acct["apiSecret"])
        try:
            f.call("POST", ORDER, symbol="ETHUSDT", side="BUY", type="MARKET", quantity="0.1")
            admin.set_mark("ETHUSDT", "3000")
            admin.fault(kind="http_5xx", count=5)
            admin.reset()
            st = admin.state(acct["apiKey"])
            assert (st["orders"], st["positions"], st["income"]) == ([], [], [])
            assert st["balances"][0]["balance"] == "5000.00000000"
            assert admin.faults() == []
            assert f.raw("GET", "/fapi/v3/account").status_code == 200
            marks = admin._call("GET", "/_paper/mark")
            assert marks["ETHUSDT"]["pinned"] is False
        finally:
            f.close()
