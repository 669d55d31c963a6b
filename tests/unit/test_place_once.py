"""`place_once`, branch by branch, through `place_order` / `place_algo_order` and a MockTransport.

What matters is what the exchange saw: how many POSTs (never a blind second one after an unknown
outcome), which lookups, and how long the worker waited (on a fake clock).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.unit.conftest import Rig
from tests.unit.fake_fapi import error, lost
from worker.binance.endpoints import ClosePositionOrder, MarketOrder
from worker.binance.errors import (
    ClockSkew,
    ExchangeRateLimited,
    ExchangeRejected,
    ExchangeUnavailable,
    OrderStatusUnknown,
)
from worker.orders import CLOCK_MARGIN_MS, MAX_SENDS, place_algo_order, place_order, started_by_earlier_run

ORDER = "/fapi/v1/order"
ALGO = "/fapi/v1/algoOrder"
ENTRY = MarketOrder(symbol="BTCUSDT", side="BUY", quantity=Decimal("0.002"), client_id="aq-test-M")
#: recvWindow (5000 ms) + CLOCK_MARGIN_MS, in seconds: how long an unconfirmed request may still be accepted.
WINDOW_S = (5000 + CLOCK_MARGIN_MS) / 1000


def _posts(rig: Rig, path: str = ORDER) -> list[dict[str, str]]:
    return [params for _, _, params in rig.fake.calls("POST", path)]


async def test_sends_once_when_nothing_was_placed(rig: Rig) -> None:
    order, existed = await place_order(rig.exchange, ENTRY, redelivered=False)

    assert (existed, order["clientOrderId"], order["status"]) == (False, "aq-test-M", "FILLED")
    assert rig.fake.routes() == ["GET /fapi/v1/order", "POST /fapi/v1/order"]
    post = _posts(rig)[0]
    assert {k: post[k] for k in ("symbol", "side", "type", "quantity", "newClientOrderId", "newOrderRespType")} == {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "MARKET",
        "quantity": "0.002",
        "newClientOrderId": "aq-test-M",
        "newOrderRespType": "RESULT",
    }
    assert "reduceOnly" not in post and "positionSide" not in post
    assert rig.sleep.waits == []


async def test_found_before_send_is_reported_not_placed_again(rig: Rig) -> None:
    first, _ = await place_order(rig.exchange, ENTRY, redelivered=False)
    rig.fake.requests.clear()

    again, existed = await place_order(rig.exchange, ENTRY, redelivered=False)

    assert existed is True and again == first
    assert rig.fake.routes() == ["GET /fapi/v1/order"]


async def test_looked_up_skips_the_first_lookup(rig: Rig) -> None:
    _, existed = await place_order(rig.exchange, ENTRY, redelivered=False, looked_up=True)

    assert existed is False
    assert rig.fake.routes() == ["POST /fapi/v1/order"]


async def test_unknown_outcome_then_found_is_not_resent(rig: Rig) -> None:
    rig.fake.script("POST", ORDER, lost(504))

    order, existed = await place_order(rig.exchange, ENTRY, redelivered=False)

    assert existed is False and order["clientOrderId"] == "aq-test-M"
    assert rig.fake.routes() == ["GET /fapi/v1/order", "POST /fapi/v1/order", "GET /fapi/v1/order"]
    assert rig.sleep.waits == []


async def test_unknown_outcome_found_only_after_the_recv_window(rig: Rig) -> None:
    # The exchange accepts the order late: the lookups before the wait miss it, the one after sees it.
    rig.fake.script("POST", ORDER, error(503, None, "Unknown error, please check your request or try again later."))
    rig.fake.script(
        "GET", ORDER, error(400, -2013, "Order does not exist."), error(400, -2013, "Order does not exist.")
    )
    # After the two scripted "not found"s the default lookup answers; make the order exist by then.
    rig.fake.orders["aq-test-M"] = {**_filled(), "clientOrderId": "aq-test-M"}

    order, existed = await place_order(rig.exchange, ENTRY, redelivered=False)

    assert existed is False and order["orderId"] == 7
    assert len(_posts(rig)) == 1
    assert rig.sleep.waits == [pytest.approx(WINDOW_S, abs=0.05)]


async def test_unknown_then_not_executed_is_resent_once_after_the_recv_window(rig: Rig) -> None:
    rig.fake.script("POST", ORDER, error(504, None, "Gateway Time-out"))  # not executed

    order, existed = await place_order(rig.exchange, ENTRY, redelivered=False)

    assert existed is False and order["clientOrderId"] == "aq-test-M"
    assert rig.fake.routes() == [
        "GET /fapi/v1/order",  # before sending
        "POST /fapi/v1/order",  # unknown outcome
        "GET /fapi/v1/order",  # not there yet
        "GET /fapi/v1/order",  # after the recvWindow: still not there, so it was not executed
        "POST /fapi/v1/order",  # sent again, once
    ]
    assert rig.sleep.waits == [pytest.approx(WINDOW_S, abs=0.05)]
    first, second = _posts(rig)
    assert first["newClientOrderId"] == second["newClientOrderId"]
    # The second POST is signed after the first one's recvWindow has passed on the exchange's clock.
    assert int(second["timestamp"]) >= int(first["timestamp"]) + 5000 + CLOCK_MARGIN_MS - 50
    assert first["signature"] != second["signature"]


async def test_unknown_every_time_gives_up_after_max_sends(rig: Rig) -> None:
    rig.fake.script("POST", ORDER, *[error(500, None, "")] * MAX_SENDS)

    with pytest.raises(OrderStatusUnknown):
        await place_order(rig.exchange, ENTRY, redelivered=False)

    assert len(_posts(rig)) == MAX_SENDS
    assert len(rig.sleep.waits) == MAX_SENDS


async def test_rate_limited_waits_retry_after(rig: Rig) -> None:
    rig.fake.script("POST", ORDER, error(429, -1003, "Too many requests.", {"Retry-After": "2"}))

    order, existed = await place_order(rig.exchange, ENTRY, redelivered=False)

    assert existed is False and order["status"] == "FILLED"
    assert len(_posts(rig)) == 2
    assert rig.sleep.waits == [2.0]


async def test_rate_limited_without_retry_after_waits_a_little(rig: Rig) -> None:
    rig.fake.script("POST", ORDER, error(400, -1015, "Too many new orders."))

    await place_order(rig.exchange, ENTRY, redelivered=False)

    assert len(_posts(rig)) == 2
    assert rig.sleep.waits == [0.5]


@pytest.mark.parametrize(
    ("status", "retry_after"), [(418, "120"), (429, "60")], ids=["418-ban", "429-longer-than-we-wait"]
)
async def test_ban_or_long_retry_after_goes_back_to_the_caller(rig: Rig, status: int, retry_after: str) -> None:
    rig.fake.script("POST", ORDER, error(status, -1003, "Way too many requests.", {"Retry-After": retry_after}))

    with pytest.raises(ExchangeRateLimited) as caught:
        await place_order(rig.exchange, ENTRY, redelivered=False)

    assert caught.value.retry_after == float(retry_after)
    assert len(_posts(rig)) == 1
    assert rig.sleep.waits == []


async def test_clock_skew_resyncs_then_resends(rig: Rig) -> None:
    rig.fake.server_offset_ms = 30_000
    rig.fake.script("POST", ORDER, error(400, -1021, "Timestamp for this request is outside of the recvWindow."))

    await place_order(rig.exchange, ENTRY, redelivered=False)

    assert rig.fake.routes() == [
        "GET /fapi/v1/order",
        "POST /fapi/v1/order",
        "GET /fapi/v1/time",
        "POST /fapi/v1/order",
    ]
    first, second = _posts(rig)
    assert int(second["timestamp"]) - int(first["timestamp"]) >= 29_000  # signed on the exchange's clock now


async def test_clock_skew_every_time_gives_up(rig: Rig) -> None:
    rig.fake.script("POST", ORDER, *[error(400, -1021, "outside of the recvWindow")] * MAX_SENDS)

    with pytest.raises(ClockSkew):
        await place_order(rig.exchange, ENTRY, redelivered=False)
    assert len(_posts(rig)) == MAX_SENDS


async def test_unavailable_is_resent_after_a_growing_pause(rig: Rig) -> None:
    rig.fake.script("POST", ORDER, *[error(503, None, "Service Unavailable.")] * MAX_SENDS)

    with pytest.raises(ExchangeUnavailable):
        await place_order(rig.exchange, ENTRY, redelivered=False)

    assert len(_posts(rig)) == MAX_SENDS
    assert rig.sleep.waits == [pytest.approx(0.2), pytest.approx(0.4)]


async def test_rejected_is_not_resent(rig: Rig) -> None:
    rig.fake.script("POST", ORDER, error(400, -2019, "Margin is insufficient."))

    with pytest.raises(ExchangeRejected) as caught:
        await place_order(rig.exchange, ENTRY, redelivered=False)

    assert caught.value.code == -2019
    assert len(_posts(rig)) == 1


async def test_redelivered_waits_out_the_recv_window_then_finds(rig: Rig) -> None:
    # A crashed earlier run's POST lands while this run waits.
    rig.fake.script("GET", ORDER, error(400, -2013, "Order does not exist."))
    rig.fake.orders["aq-test-M"] = {**_filled(), "clientOrderId": "aq-test-M"}

    order, existed = await place_order(rig.exchange, ENTRY, redelivered=True)

    assert existed is True and order["orderId"] == 7
    assert rig.fake.routes() == ["GET /fapi/v1/order", "GET /fapi/v1/order"]
    assert rig.sleep.waits == [pytest.approx(WINDOW_S, abs=0.05)]


async def test_redelivered_and_never_sent_is_sent_after_the_wait(rig: Rig) -> None:
    _, existed = await place_order(rig.exchange, ENTRY, redelivered=True)

    assert existed is False
    assert rig.fake.routes() == ["GET /fapi/v1/order", "GET /fapi/v1/order", "POST /fapi/v1/order"]
    assert rig.sleep.waits == [pytest.approx(WINDOW_S, abs=0.05)]


async def test_algo_order_is_looked_up_by_client_algo_id(rig: Rig) -> None:
    stop = ClosePositionOrder(
        symbol="BTCUSDT",
        side="SELL",
        position_side="BOTH",
        kind="STOP_MARKET",
        trigger=Decimal("90000"),
        client_id="aq-test-SL",
    )
    rig.fake.script("POST", ALGO, lost(503, "Unknown error"))

    algo, existed = await place_algo_order(rig.exchange, stop, redelivered=False)

    assert existed is False and algo["clientAlgoId"] == "aq-test-SL"
    lookups = [params for _, _, params in rig.fake.calls("GET", ALGO)]
    assert [p["clientAlgoId"] for p in lookups] == ["aq-test-SL", "aq-test-SL"]
    post = _posts(rig, ALGO)[0]
    assert {k: post[k] for k in ("algoType", "type", "triggerPrice", "workingType", "closePosition")} == {
        "algoType": "CONDITIONAL",
        "type": "STOP_MARKET",
        "triggerPrice": "90000",
        "workingType": "MARK_PRICE",
        "closePosition": "true",
    }
    assert len(_posts(rig, ALGO)) == 1


async def test_started_by_earlier_run_waits_before_trusting_no(rig: Rig) -> None:
    found = await started_by_earlier_run(rig.exchange.client, lambda: rig.exchange.find_order("BTCUSDT", "aq-test-M"))

    assert found is None
    assert rig.fake.routes() == ["GET /fapi/v1/order", "GET /fapi/v1/order"]
    assert rig.sleep.waits == [pytest.approx(WINDOW_S, abs=0.05)]


def _filled() -> dict[str, object]:
    return {
        "orderId": 7,
        "symbol": "BTCUSDT",
        "status": "FILLED",
        "clientOrderId": "",
        "avgPrice": "95000.0",
        "origQty": "0.002",
        "executedQty": "0.002",
        "type": "MARKET",
        "side": "BUY",
    }
