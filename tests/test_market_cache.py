"""Klines and funding rates from the worker's cache, checked against the paper exchange's own REST
answers before and after its clock moves on; every reply names its source in X-AIQT-Source."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from harness.stack import Stack, StackFactory

#: How old the open candle and the current rate may be (the worker's live_max_age_ms).
MAX_AGE_MS = 1000


def _after_max_age() -> None:
    time.sleep(MAX_AGE_MS / 1000 + 0.05)


@pytest.fixture(scope="module")
def cached(make_module_stack: StackFactory) -> Stack:
    return make_module_stack(accounts=1, workers=1, gateway_up=True, worker={"live_max_age_ms": MAX_AGE_MS})


def _direct(stack: Stack, **params: Any) -> list[list[Any]]:
    rows: list[list[Any]] = httpx.get(f"{stack.paper_url}/fapi/v1/klines", params=params, timeout=10).json()
    return rows


def _as_rows(klines: list[dict[str, Any]]) -> list[tuple[int, str, str, str, str, int]]:
    return [(k["time"], str(k["open"]), str(k["high"]), str(k["low"]), str(k["close"]), k["closeTime"]) for k in klines]


def _closed(rows: list[list[Any]]) -> list[tuple[int, str, str, str, str, int]]:
    return [(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), int(r[6])) for r in rows[:-1]]


def test_cached_klines_match_the_exchange_as_time_advances(cached: Stack) -> None:
    with cached.client(cached.accounts[0]) as c:
        first = c.klines("SOLUSDT", "5m", 200)
        again = c.klines("SOLUSDT", "5m", 200)
        assert first.headers["x-aiqt-source"] == "exchange"
        assert again.headers["x-aiqt-source"] == "cache"
        assert again.data["klines"] == first.data["klines"]
        direct = _direct(cached, symbol="SOLUSDT", interval="5m", limit=200)
        # Closed candles are identical; the open one is the same candle (its price moves on).
        assert _as_rows(first.data["klines"])[:-1] == _closed(direct)
        assert first.data["klines"][-1]["time"] == int(direct[-1][0])

        for advance_ms in (7 * 60_000, 5 * 3_600_000):
            cached.admin.advance(advance_ms)
            _after_max_age()
            after = c.klines("SOLUSDT", "5m", 200)
            assert after.code == 200 and after.headers["x-aiqt-source"] == "exchange"
            direct = _direct(cached, symbol="SOLUSDT", interval="5m", limit=200)
            assert after.data["klines"][-1]["time"] == int(direct[-1][0])
            assert _as_rows(after.data["klines"])[:-1] == _closed(direct)
            assert len(after.data["klines"]) == 200


def test_funding_history_is_served_from_cache_until_the_next_settlement(cached: Stack) -> None:
    account = cached.accounts[0]
    with cached.client(account) as c:
        first = c.funding_rate("XRPUSDT", 5)
        again = c.funding_rate("XRPUSDT", 5)
        assert first.code == 200 and first.headers["x-aiqt-source"] == "exchange"
        assert again.headers["x-aiqt-source"] == "cache"
        assert again.data == first.data
        cached.admin.advance(9 * 3_600_000)  # at least one funding settles
        _after_max_age()
        later = c.funding_rate("XRPUSDT", 5)
    assert later.headers["x-aiqt-source"] == "exchange"
    direct = httpx.get(f"{cached.paper_url}/fapi/v1/fundingRate", params={"symbol": "XRPUSDT", "limit": 5}).json()
    assert [h["time"] for h in later.data["historyRates"]] == [int(r["fundingTime"]) for r in direct]
    assert [str(h["rate"]) for h in later.data["historyRates"]] == [str(r["fundingRate"]) for r in direct]
    assert later.data["historyRates"][-1]["time"] > first.data["historyRates"][-1]["time"]


def test_other_reads_say_they_came_from_the_exchange(cached: Stack) -> None:
    with cached.client(cached.accounts[0]) as c:
        summary = c.account_summary()
        ping = c.ping()
    assert summary.code == 200 and summary.headers["x-aiqt-source"] == "exchange"
    assert "x-aiqt-source" not in ping.headers
