"""Each /_paper/faults kind, over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from paper.embedded import PaperAdmin

from .conftest import Fapi

ORDER = "/fapi/v1/order"
BUY = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"}


@pytest.fixture(autouse=True)
def _clear(admin: PaperAdmin) -> object:
    admin.clear_faults()
    yield None
    admin.clear_faults()


def orders(admin: PaperAdmin, fapi: Fapi) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = admin.state(fapi.api_key)["orders"]
    return found


def test_admin_needs_token(fapi: Fapi) -> None:
    r = fapi.client.post("/_paper/faults", json={"kind": "http_5xx"})
    assert r.status_code == 401
    r = fapi.client.post("/_paper/faults", json={"kind": "http_5xx"}, headers={"X-Paper-Admin-Token": "wrong"})
    assert r.status_code == 401
    assert fapi.client.get("/_paper/health").json() == {"status": "ok"}


def test_http_5xx_not_executed(fapi: Fapi, admin: PaperAdmin) -> None:
    admin.fault(kind="http_5xx", count=2, method="POST", path=ORDER, apiKey=fapi.api_key)
    listed = admin.faults()
    assert [(f["kind"], f["remaining"]) for f in listed] == [("http_5xx", 2)]
    r = fapi.raw("POST", ORDER, BUY)
    assert r.status_code == 503
    assert r.json() == {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}
    assert "x-mbx-used-weight-1m" in r.headers
    assert fapi.raw("GET", "/fapi/v3/account").status_code == 200  # method/path filter
    assert fapi.raw("POST", ORDER, BUY).status_code == 503
    assert orders(admin, fapi) == []
    assert fapi.raw("POST", ORDER, BUY).status_code == 200
    assert admin.faults() == []


def test_http_5xx_custom_status_and_service_unavailable(fapi: Fapi, admin: PaperAdmin) -> None:
    admin.fault(kind="http_5xx", status=502, apiKey=fapi.api_key)
    assert fapi.raw("GET", "/fapi/v3/account").status_code == 502
    admin.fault(kind="service_unavailable", apiKey=fapi.api_key)
    r = fapi.raw("POST", ORDER, BUY)
    assert r.status_code == 503
    assert r.json()["msg"] == "Service Unavailable."
    assert orders(admin, fapi) == []


def test_rate_limit_and_ban_faults(fapi: Fapi, admin: PaperAdmin) -> None:
    admin.fault(kind="rate_limit_429", apiKey=fapi.api_key)
    r = fapi.raw("POST", ORDER, BUY)
    assert (r.status_code, r.json()["code"], r.headers["retry-after"]) == (429, -1003, "1")
    admin.fault(kind="ban_418", apiKey=fapi.api_key)
    r = fapi.raw("POST", ORDER, BUY)
    assert (r.status_code, r.json()["code"]) == (418, -1003)
    assert "retry-after" in r.headers
    admin.fault(kind="timestamp_1021", apiKey=fapi.api_key)
    r = fapi.raw("POST", ORDER, BUY)
    assert (r.status_code, r.json()["code"]) == (400, -1021)
    assert orders(admin, fapi) == []


def test_delay_within_and_past_recv_window(fapi: Fapi, admin: PaperAdmin) -> None:
    admin.fault(kind="delay", delayMs=300, apiKey=fapi.api_key)
    t0 = time.monotonic()
    r = fapi.raw("POST", ORDER, BUY)
    assert r.status_code == 200
    assert time.monotonic() - t0 >= 0.3
    admin.fault(kind="delay", delayMs=700, apiKey=fapi.api_key)
    r = fapi.raw("POST", ORDER, BUY, recv_window=500)
    assert r.status_code == 400
    assert r.json() == {"code": -5028, "msg": "Timestamp for this request is outside of the ME recvWindow."}
    assert len(orders(admin, fapi)) == 1


@pytest.mark.parametrize(
    ("lost_as", "status", "body"),
    [
        ("503", 503, {"code": -1000, "msg": "Unknown error, please check your request or try again later."}),
        (
            "-1007",
            408,
            {
                "code": -1007,
                "msg": "Timeout waiting for response from backend server. Send status "
                "unknown; execution status unknown.",
            },
        ),
    ],
)
def test_executed_response_lost(fapi: Fapi, admin: PaperAdmin, lost_as: str, status: int, body: dict[str, Any]) -> None:
    admin.fault(kind="executed_response_lost", lostAs=lost_as, apiKey=fapi.api_key, path=ORDER)
    r = fapi.raw("POST", ORDER, {**BUY, "newClientOrderId": f"lost-{lost_as}"})
    assert (r.status_code, r.json()) == (status, body)
    got = fapi.call("GET", ORDER, symbol="BTCUSDT", origClientOrderId=f"lost-{lost_as}")
    assert got["status"] == "FILLED"
    assert len(orders(admin, fapi)) == 1


def test_executed_then_timeout(fapi: Fapi, admin: PaperAdmin) -> None:
    admin.fault(kind="executed_response_lost", lostAs="timeout", delayMs=1500, apiKey=fapi.api_key)
    with pytest.raises(httpx.ReadTimeout):
        fapi.raw_with_timeout("POST", ORDER, {**BUY, "newClientOrderId": "lost-to"}, 0.3)
    got = fapi.call("GET", ORDER, symbol="BTCUSDT", origClientOrderId="lost-to")
    assert got["status"] == "FILLED"


def test_reset_clears(fapi: Fapi, admin: PaperAdmin) -> None:
    admin.fault(kind="http_5xx", count=3, apiKey="someone-else")
    assert len(admin.faults()) == 1
    admin.clear_faults()
    assert admin.faults() == []
