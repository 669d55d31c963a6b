"""The market-data cache on a scripted exchange: closed candles are fetched once, the open candle
with the least weight, settled funding only when a new funding has settled, and each answer names
its source."""

from __future__ import annotations

from typing import Any

from tests.unit.conftest import Rig
from tests.unit.fake_fapi import ok
from worker.binance.endpoints import Json
from worker.marketdata import MarketData, Row

MIN = 60_000
T = 1_800_000_000_000


def candles(first_open: int, count: int, step: int = MIN) -> list[Row]:
    return [
        [first_open + i * step, "1", "2", "0.5", str(i), "10", first_open + (i + 1) * step - 1] for i in range(count)
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Live:
    def __init__(self) -> None:
        self.candle: Row | None = None
        self.premium_body: Json | None = None

    def open_candle(self, symbol: str, interval: str) -> Row | None:
        return self.candle

    def premium(self, symbol: str) -> Json | None:
        return self.premium_body


def _limits(rig: Rig, path: str) -> list[int]:
    return [int(p["limit"]) for _, _, p in rig.fake.calls("GET", path)]


async def test_closed_candles_are_fetched_once_and_the_open_one_with_weight_1(rig: Rig) -> None:
    clock = Clock()
    md = MarketData(max_age_ms=1000, monotonic=clock)
    rig.fake.script("GET", "/fapi/v1/klines", ok(candles(T, 500)))
    rows, source = await md.klines(rig.exchange, "BTCUSDT", "1m", 500)
    assert source == "exchange" and len(rows) == 500 and rows[-1][0] == T + 499 * MIN
    # Within max_age: nothing is asked.
    rows2, source2 = await md.klines(rig.exchange, "BTCUSDT", "1m", 500)
    assert (rows2, source2) == (rows, "cache")
    # Two minutes later: two candles closed, one opened; a tail of ≤ 99 rows (weight 1) covers them.
    clock.now += 120
    rig.fake.script("GET", "/fapi/v1/klines", ok(candles(T + 403 * MIN, 99)))
    rows3, source3 = await md.klines(rig.exchange, "BTCUSDT", "1m", 500)
    assert source3 == "exchange"
    assert [r[0] for r in rows3] == [T + (i + 2) * MIN for i in range(500)]
    assert _limits(rig, "/fapi/v1/klines") == [500, 99]
    assert md.fetches == 2


async def test_a_wrong_guess_of_the_open_candle_costs_one_more_request(rig: Rig) -> None:
    clock = Clock()
    md = MarketData(max_age_ms=0, monotonic=clock)
    rig.fake.script("GET", "/fapi/v1/klines", ok(candles(T, 300)))
    await md.klines(rig.exchange, "BTCUSDT", "1m", 300)
    clock.now += 1
    # The exchange's clock jumped 10 hours (the paper's /_paper/clock/advance): the tail does not reach.
    later = T + 600 * MIN
    rig.fake.script("GET", "/fapi/v1/klines", ok(candles(later + 299 * MIN - 98 * MIN, 99)))
    rig.fake.script("GET", "/fapi/v1/klines", ok(candles(later, 300)))
    rows, source = await md.klines(rig.exchange, "BTCUSDT", "1m", 300)
    assert source == "exchange" and [r[0] for r in rows] == [later + i * MIN for i in range(300)]
    assert _limits(rig, "/fapi/v1/klines") == [300, 99, 300]


async def test_a_live_open_candle_needs_no_request(rig: Rig) -> None:
    live = Live()
    md = MarketData(live=live, max_age_ms=0, monotonic=Clock())
    rig.fake.script("GET", "/fapi/v1/klines", ok(candles(T, 50)))
    first, _ = await md.klines(rig.exchange, "ETHUSDT", "1m", 50)
    # The stream says the open candle closed, and a new one opened.
    md.candle_closed("ETHUSDT", "1m", first[-1])
    live.candle = candles(T + 50 * MIN, 1)[0]
    rows, source = await md.klines(rig.exchange, "ETHUSDT", "1m", 50)
    assert source == "live" and rows[-1] == live.candle and rows[0][0] == T + MIN
    assert md.fetches == 1


async def test_monthly_candles_are_always_fetched(rig: Rig) -> None:
    md = MarketData(monotonic=Clock())
    rig.fake.script("GET", "/fapi/v1/klines", ok(candles(T, 3)))
    rows, source = await md.klines(rig.exchange, "BTCUSDT", "1M", 3)
    assert source == "exchange" and len(rows) == 3


def _premium(next_funding: int) -> Json:
    return {"symbol": "BTCUSDT", "lastFundingRate": "0.0001", "nextFundingTime": next_funding, "time": T}


def _funding(times: list[int]) -> list[dict[str, Any]]:
    return [{"symbol": "BTCUSDT", "fundingTime": t, "fundingRate": "0.0001"} for t in times]


async def test_settled_funding_is_fetched_again_only_after_a_new_settlement(rig: Rig) -> None:
    clock = Clock()
    md = MarketData(max_age_ms=1000, monotonic=clock)
    h = 8 * 3_600_000
    rig.fake.script("GET", "/fapi/v1/premiumIndex", ok(_premium(T)))
    _, source = await md.premium(rig.exchange, "BTCUSDT")
    assert source == "exchange"
    assert (await md.premium(rig.exchange, "BTCUSDT"))[1] == "cache"
    rig.fake.script("GET", "/fapi/v1/fundingRate", ok(_funding([T - 2 * h, T - h])))
    rows, source = await md.funding_history(rig.exchange, "BTCUSDT", 2, T)
    assert source == "exchange" and [r["fundingTime"] for r in rows] == [T - 2 * h, T - h]
    assert (await md.funding_history(rig.exchange, "BTCUSDT", 2, T)) == (rows, "cache")
    # Asking for more than the exchange has: known to be all of it, not asked again.
    rig.fake.script("GET", "/fapi/v1/fundingRate", ok(_funding([T - 2 * h, T - h])))
    assert (await md.funding_history(rig.exchange, "BTCUSDT", 5, T))[1] == "exchange"
    assert (await md.funding_history(rig.exchange, "BTCUSDT", 5, T))[1] == "cache"
    # A funding settled: the next funding time moved on.
    rig.fake.script("GET", "/fapi/v1/fundingRate", ok(_funding([T - h, T])))
    rows, source = await md.funding_history(rig.exchange, "BTCUSDT", 2, T + h)
    assert source == "exchange" and [r["fundingTime"] for r in rows] == [T - h, T]
    assert len(rig.fake.calls("GET", "/fapi/v1/fundingRate")) == 3


async def test_funding_fees_are_reused_until_the_next_settlement(rig: Rig) -> None:
    md = MarketData(monotonic=Clock())
    fees = [{"symbol": "BTCUSDT", "incomeType": "FUNDING_FEE", "income": "-0.1", "time": T - 5}]
    rig.fake.script("GET", "/fapi/v1/income", ok(fees))
    assert (await md.funding_fees(rig.exchange, "a", "BTCUSDT", T - 100, T)) == (fees, "exchange")
    assert (await md.funding_fees(rig.exchange, "a", "BTCUSDT", T - 50, T)) == (fees, "cache")
    rig.fake.script("GET", "/fapi/v1/income", ok([]))
    assert (await md.funding_fees(rig.exchange, "b", "BTCUSDT", T - 100, T))[1] == "exchange"  # per account
    assert len(rig.fake.calls("GET", "/fapi/v1/income")) == 2
