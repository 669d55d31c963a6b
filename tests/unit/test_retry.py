"""The one tenacity policy for reads and cancels (`FapiClient.call`): what is retried, how long it
waits (Retry-After first), re-signing each attempt, and the clock resync on -1021."""

from __future__ import annotations

from typing import Any

import pytest
from tenacity import RetryCallState

from tests.unit.conftest import Rig
from tests.unit.fake_fapi import error, ok
from worker.binance.errors import ClockSkew, ExchangeNotFound, ExchangeRateLimited, OrderStatusUnknown
from worker.binance.retry import MAX_WAIT, RetryAfterWait, waits_out

RISK = "/fapi/v2/positionRisk"


def _gets(rig: Rig) -> list[dict[str, str]]:
    return [params for _, _, params in rig.fake.calls("GET", RISK)]


def _risk_ok(rig: Rig) -> None:
    rig.fake.script("GET", RISK, ok([{"symbol": "BTCUSDT"}]))


async def test_retry_after_is_honoured_and_each_attempt_is_signed_afresh(rig: Rig) -> None:
    rig.fake.script("GET", RISK, error(429, -1003, "Too many requests.", {"Retry-After": "2"}))
    _risk_ok(rig)

    rows = await rig.exchange.position_risk("BTCUSDT")

    assert rows == [{"symbol": "BTCUSDT"}]
    assert rig.sleep.waits == [2.0]
    first, second = _gets(rig)
    assert int(second["timestamp"]) - int(first["timestamp"]) >= 1990
    assert first["signature"] != second["signature"]


async def test_retry_after_longer_than_we_wait_goes_back_at_once(rig: Rig) -> None:
    rig.fake.script("GET", RISK, error(429, -1003, "Too many requests.", {"Retry-After": "30"}))

    with pytest.raises(ExchangeRateLimited) as caught:
        await rig.exchange.position_risk("BTCUSDT")

    assert caught.value.retry_after == 30.0
    assert len(_gets(rig)) == 1 and rig.sleep.waits == []


async def test_ip_ban_is_not_retried(rig: Rig) -> None:
    rig.fake.script("GET", RISK, error(418, -1003, "Way too many requests; IP banned.", {"Retry-After": "2"}))

    with pytest.raises(ExchangeRateLimited):
        await rig.exchange.position_risk("BTCUSDT")

    assert len(_gets(rig)) == 1 and rig.sleep.waits == []


async def test_clock_skew_resyncs_the_clock_then_retries(rig: Rig) -> None:
    rig.fake.server_offset_ms = 20_000
    rig.fake.script("GET", RISK, error(400, -1021, "Timestamp for this request is outside of the recvWindow."))
    _risk_ok(rig)

    await rig.exchange.position_risk("BTCUSDT")

    assert rig.fake.routes() == ["GET /fapi/v2/positionRisk", "GET /fapi/v1/time", "GET /fapi/v2/positionRisk"]
    assert rig.exchange.client.clock.offset_ms > 19_000
    first, second = _gets(rig)
    assert int(second["timestamp"]) - int(first["timestamp"]) >= 19_000


async def test_unknown_outcomes_are_retried_up_to_the_attempts_then_raised(rig: Rig) -> None:
    rig.fake.script("GET", RISK, *[error(502, None, "Bad Gateway")] * 10)

    with pytest.raises(OrderStatusUnknown):
        await rig.exchange.position_risk("BTCUSDT")

    assert len(_gets(rig)) == 4  # retry_attempts
    assert len(rig.sleep.waits) == 3
    assert all(0.1 <= w <= MAX_WAIT for w in rig.sleep.waits)


async def test_definitive_answers_are_not_retried(rig: Rig) -> None:
    with pytest.raises(ExchangeNotFound):
        await rig.exchange.query_order("BTCUSDT", 42)

    assert rig.fake.routes() == ["GET /fapi/v1/order"] and rig.sleep.waits == []


async def test_unsigned_market_data_carries_no_signature(rig: Rig) -> None:
    rig.fake.script(
        "GET",
        "/fapi/v1/klines",
        error(503, None, "Service Unavailable."),
        ok([]),
    )

    assert await rig.exchange.klines("BTCUSDT", "1h", 2) == []

    calls = rig.fake.calls("GET", "/fapi/v1/klines")
    assert [params for _, _, params in calls] == [{"symbol": "BTCUSDT", "interval": "1h", "limit": "2"}] * 2
    assert len(rig.sleep.waits) == 1


class _Outcome:
    def __init__(self, exc: BaseException) -> None:
        self._exc = exc

    def exception(self) -> BaseException:
        return self._exc


def _state(exc: BaseException, attempt: int = 1) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    outcome: Any = _Outcome(exc)
    state.outcome = outcome
    return state


@pytest.mark.parametrize(("retry_after", "wait"), [(1.5, 1.5), (3.0, 3.0), (30.0, MAX_WAIT)])
def test_retry_after_wait_is_capped(retry_after: float, wait: float) -> None:
    exc = ExchangeRateLimited("slow down", status=429, code=-1003, retry_after=retry_after)
    assert RetryAfterWait()(_state(exc)) == wait


def test_without_retry_after_the_wait_grows_and_is_capped() -> None:
    exc = OrderStatusUnknown("timeout")
    waits = [RetryAfterWait()(_state(exc, attempt)) for attempt in (1, 2, 3, 10)]
    assert 0.1 <= waits[0] <= 0.2 and waits[1] >= 0.2 and waits[2] >= 0.4
    assert waits[3] <= MAX_WAIT


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (OrderStatusUnknown("timeout"), True),
        (ClockSkew("skew", status=400, code=-1021), True),
        (ExchangeRateLimited("429", status=429, code=-1003, retry_after=None), True),
        (ExchangeRateLimited("429", status=429, code=-1003, retry_after=MAX_WAIT), True),
        (ExchangeRateLimited("429", status=429, code=-1003, retry_after=MAX_WAIT + 1), False),
        (ExchangeRateLimited("418", status=418, code=-1003, retry_after=1), False),
    ],
)
def test_waits_out(exc: BaseException, expected: bool) -> None:
    assert waits_out(exc) is expected
