"""The governor's arithmetic on a fake clock: shares, the exchange's headers as truth, priority
headroom, freezes on 429/418, and the endpoint weight table."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest

from paper.app import ROUTES
from tests.unit.conftest import Rig
from tests.unit.fake_fapi import error, ok
from worker.binance.errors import ExchangeRateLimited
from worker.binance.weights import TABLE, Cost, cost, klines_weight
from worker.limits import AccountGate, Freeze, Governor, GovernorRefused, Limits, Policy, Priority
from worker.limits.governor import classify, parse_rate_limits

T0 = 1_800_000_000_000  # a minute boundary (divisible by 60 000)


class FakeClock:
    def __init__(self, now: int = T0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += int(seconds * 1000) + 1


def governor(clock: FakeClock, **policy: Any) -> Governor:
    # No band for light reads unless a test asks: the arithmetic of shares and reserves alone.
    settings = dataclasses.replace(Policy(light_reserve=0.0), **policy)
    return Governor(limits=Limits(100, 10, 20), policy=settings, now_ms=clock, sleep=clock.sleep)


READ = Cost(10)


def test_reads_stop_at_their_share_and_the_next_window_resets_it() -> None:
    clock = FakeClock()
    gov = governor(clock, safety=1.0, reserve=0.2)
    admitted = 0
    while gov.try_admit("a", READ, Priority.READ)[0] is not None:
        admitted += 1
    assert admitted == 8  # 80 of 100: the reserve is not for reads
    ticket, retry_after, why = gov.try_admit("a", READ, Priority.READ)
    assert ticket is None and "request weight" in why
    assert retry_after == pytest.approx(60.0)
    clock.now += 60_000
    assert gov.try_admit("a", READ, Priority.READ)[0] is not None


def test_the_share_is_the_budget_divided_by_live_workers() -> None:
    clock = FakeClock()
    gov = governor(clock, safety=1.0, reserve=0.2)
    gov.set_workers(4)
    admitted = 0
    while gov.try_admit("a", READ, Priority.READ)[0] is not None:
        admitted += 1
    assert admitted == 2  # 80 / 4 = 20 weight each
    gov.set_workers(0)
    assert gov.workers == 1


def test_critical_requests_get_the_reserve_that_reads_and_writes_leave() -> None:
    clock = FakeClock()
    gov = governor(clock, safety=1.0, reserve=0.2)
    while gov.try_admit("a", READ, Priority.READ)[0] is not None:
        pass
    assert gov.weight.own == 80
    assert gov.try_admit("a", READ, Priority.WRITE)[0] is not None  # writes: up to 90
    assert gov.try_admit("a", READ, Priority.WRITE)[0] is None
    assert gov.try_admit("a", READ, Priority.CRITICAL)[0] is not None  # the stop still goes out
    assert gov.weight.own == 100
    assert gov.try_admit("a", Cost(1), Priority.CRITICAL)[0] is None


def test_classify_puts_cancels_closes_and_reduce_only_first() -> None:
    assert classify("DELETE", "/fapi/v1/order", {"orderId": 1}) is Priority.CRITICAL
    assert classify("POST", "/fapi/v1/order", {"reduceOnly": True}) is Priority.CRITICAL
    assert classify("POST", "/fapi/v1/algoOrder", {"closePosition": "true"}) is Priority.CRITICAL
    assert classify("POST", "/fapi/v1/order", {"side": "BUY"}) is Priority.WRITE
    assert classify("POST", "/fapi/v1/leverage", {}) is Priority.WRITE
    assert classify("GET", "/fapi/v2/account", None) is Priority.READ


def test_the_exchange_header_is_the_truth_even_for_traffic_we_did_not_send() -> None:
    clock = FakeClock()
    gov = governor(clock, safety=1.0, reserve=0.0)
    ticket, _, _ = gov.try_admit("a", READ, Priority.READ)
    assert ticket is not None
    # Someone else on the IP used 85 this minute: the exchange says so.
    gov.settle(ticket, 200, {"x-mbx-used-weight-1m": "95"})
    assert gov.weight.seen == 95 and gov.weight.in_flight == 0
    assert gov.try_admit("a", READ, Priority.READ)[0] is None
    assert gov.try_admit("a", Cost(5), Priority.READ)[0] is not None
    # A lower header later in the same window does not undo what the exchange already counted.
    gov.settle(None, 200, {"x-mbx-used-weight-1m": "20"})
    assert gov.weight.seen == 95


def test_order_counts_are_per_account_and_corrected_by_headers() -> None:
    clock = FakeClock()
    gov = governor(clock, safety=1.0, reserve=0.0)
    order = cost("POST", "/fapi/v1/order", {"symbol": "BTCUSDT"})
    assert order == Cost(0, 1, 1)
    for _ in range(10):
        assert gov.try_admit("a", order, Priority.WRITE)[0] is not None
    ticket, retry_after, why = gov.try_admit("a", order, Priority.WRITE)
    assert ticket is None and "order rate" in why and retry_after == pytest.approx(10.0)
    assert gov.try_admit("b", order, Priority.WRITE)[0] is not None  # another account's pool
    t, _, _ = gov.try_admit("c", order, Priority.WRITE)
    gov.settle(t, 200, {"x-mbx-order-count-10s": "10", "x-mbx-order-count-1m": "15"})
    assert gov.try_admit("c", order, Priority.WRITE)[0] is None


def test_per_account_order_limits_override_exchange_info() -> None:
    clock = FakeClock()
    gov = governor(clock, safety=1.0, reserve=0.0)
    gov.configure_account("vip", Limits(100, 2, 20))
    order = Cost(0, 1, 1)
    assert [gov.try_admit("vip", order, Priority.WRITE)[0] is not None for _ in range(3)] == [True, True, False]


async def test_a_429_freezes_everything_until_retry_after_and_is_broadcast() -> None:
    clock = FakeClock()
    sent: list[Freeze] = []
    gov = Governor(now_ms=clock, sleep=clock.sleep, on_freeze=sent.append, origin="w1")
    ticket = await gov.admit("a", "GET", "/fapi/v2/account", None)
    gov.settle(
        ticket, 429, {"retry-after": "7", "x-mbx-used-weight-1m": "600"}, '{"code":-1003,"msg":"Too many"}', code=-1003
    )
    assert [f.scope for f in sent] == ["ip"] and sent[0].until_ms == T0 + 7000 and sent[0].origin == "w1"
    # Not one more request, not even a stop loss: the limit is per IP.
    with pytest.raises(GovernorRefused) as refused:
        await gov.admit("a", "GET", "/fapi/v1/klines", {"limit": 5})
    assert refused.value.retry_after == 7.0 and refused.value.status == 429
    assert refused.value.not_sent
    # A critical request waits it out (within its wait), then goes.
    gov.policy = Policy(wait_critical=10.0)
    ticket = await gov.admit("a", "DELETE", "/fapi/v1/order", {"orderId": 1})
    assert clock.now >= T0 + 7000 and ticket.priority is Priority.CRITICAL


def test_a_418_freezes_until_the_ban_named_in_the_message() -> None:
    clock = FakeClock()
    gov = governor(clock)
    until = T0 + 120_000
    gov.settle(
        None, 418, {}, f'{{"code":-1003,"msg":"Way too many requests; IP(1.2.3.4) banned until {until}."}}', code=-1003
    )
    assert gov.frozen_until("a", orders=False)[0] == until
    clock.now = until
    assert gov.frozen_until("a", orders=False) == (0, None)


def test_a_429_without_retry_after_freezes_until_the_window_ends() -> None:
    clock = FakeClock(T0 + 15_000)
    gov = governor(clock)
    gov.settle(None, 429, {}, "Too many requests")
    assert gov.frozen_until("a", orders=False)[0] == T0 + 60_000


def test_an_order_count_429_freezes_only_that_accounts_orders() -> None:
    clock = FakeClock(T0 + 3_000)
    gov = governor(clock)
    t, _, _ = gov.try_admit("a", Cost(0, 1, 1), Priority.WRITE)
    gov.settle(t, 429, {}, "Too many new orders; current limit is 10 orders per 10 SECOND.", code=-1015)
    assert gov.frozen_until("a", orders=True)[0] == T0 + 10_000
    assert gov.frozen_until("a", orders=False) == (0, None)  # reads go on
    assert gov.frozen_until("b", orders=True) == (0, None)  # other accounts' orders too


def test_a_freeze_from_the_fleet_is_kept_and_not_echoed() -> None:
    clock = FakeClock()
    sent: list[Freeze] = []
    gov = Governor(now_ms=clock, on_freeze=sent.append)
    freeze = Freeze.from_json({"scope": "ip", "until_ms": T0 + 5000, "status": 418, "reason": "ban", "origin": "w2"})
    gov.freeze(freeze, broadcast=False)
    gov.freeze(Freeze("ip", T0 + 1000, 429, "shorter"))  # does not shorten it
    assert sent == [] and gov.frozen_until(None, orders=False)[0] == T0 + 5000
    assert Freeze.from_json(freeze.to_json()) == freeze


async def test_reads_are_refused_at_once_writes_wait_for_the_next_window() -> None:
    clock = FakeClock(T0 + 59_500)
    gov = governor(clock, safety=1.0, reserve=0.0)
    gov.weight.roll(clock.now)
    gov.weight.observe(100)
    with pytest.raises(GovernorRefused) as refused:
        await gov.admit("a", "GET", "/fapi/v2/account", None)
    assert refused.value.retry_after == 1.0  # rounded up, never 0
    assert clock.slept == []
    ticket = await gov.admit("a", "POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 5})
    assert ticket.priority is Priority.WRITE and clock.now >= T0 + 60_000


def test_limits_are_read_from_exchange_info_and_rate_limit_order() -> None:
    info = [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
    ]
    limits = parse_rate_limits(info)
    assert (limits.weight_1m, limits.orders_10s, limits.orders_1m) == (2400, 300, 1200)
    account = [
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 10000},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 20000},
    ]
    raised = parse_rate_limits(account, limits)
    assert (raised.weight_1m, raised.orders_10s, raised.orders_1m) == (2400, 10000, 20000)


def test_weights_follow_the_documented_table() -> None:
    assert [klines_weight(n) for n in (1, 99, 100, 499, 500, 1000, 1001)] == [1, 1, 2, 2, 5, 5, 10]
    assert cost("GET", "/fapi/v1/klines", {}).weight == 5  # default limit 500
    assert cost("GET", "/fapi/v1/openOrders", {}).weight == 40
    assert cost("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"}).weight == 1
    assert cost("GET", "/fapi/v1/premiumIndex", {}).weight == 10
    assert cost("DELETE", "/fapi/v1/order", {}) == Cost(1)
    assert cost("POST", "/fapi/v1/batchOrders", {}) == Cost(5, 5, 1)
    assert cost("GET", "/fapi/v9/unknown", {}).weight == 5


def test_every_route_of_the_paper_exchange_has_a_price_no_lower_than_its_charge() -> None:
    for (method, path), route in ROUTES.items():
        params = {"symbol": "BTCUSDT", "limit": "500"}
        if (method, path) not in TABLE:
            continue
        ours = cost(method, path, params)
        assert ours.weight >= route.weight(params) or ours.is_order, (method, path)


async def test_the_client_asks_the_gate_first_and_settles_with_the_headers(rig: Rig) -> None:
    clock = FakeClock()
    gov = Governor(now_ms=clock, sleep=clock.sleep)
    rig.exchange.client.gate = AccountGate(gov, "main")
    rig.fake.script("GET", "/fapi/v2/account", ok({"assets": []}))
    await rig.exchange.account()
    assert gov.weight.own == 5 and gov.weight.in_flight == 0
    rig.fake.script(
        "GET", "/fapi/v2/account", error(418, -1003, f"Way too many requests; IP banned until {T0 + 90_000}.")
    )
    with pytest.raises(ExchangeRateLimited):
        await rig.exchange.account()
    calls = len(rig.fake.requests)
    with pytest.raises(GovernorRefused) as refused:
        await rig.exchange.account()  # not sent: the ban holds
    assert len(rig.fake.requests) == calls
    assert refused.value.retry_after == 90.0


def test_headers_are_read_case_insensitively_from_httpx() -> None:
    clock = FakeClock()
    gov = governor(clock)
    gov.settle(None, 200, httpx.Headers({"X-MBX-USED-WEIGHT-1M": "42"}))
    assert gov.weight.seen == 42


def test_heavy_reads_leave_a_band_for_light_ones() -> None:
    clock = FakeClock()
    gov = governor(clock, safety=1.0, reserve=0.2, light_reserve=0.3)
    heavy = Cost(10)
    admitted = 0
    while gov.try_admit("a", heavy, Priority.READ)[0] is not None:
        admitted += 1
    assert admitted == 5  # 80 - 30 = 50 of 100 for reads of weight ≥ 10
    light = 0
    while gov.try_admit("a", Cost(1), Priority.READ)[0] is not None:
        light += 1
    assert light == 30  # the band up to the read cap stays for cheap reads


def test_preflight_refuses_a_whole_multi_request_read_without_spending() -> None:
    clock = FakeClock()
    gov = governor(clock, safety=1.0, reserve=0.2, light_reserve=0.0, composite_reserve=0.0)
    summary = [("GET", "/fapi/v2/account", None), ("GET", "/fapi/v1/openOrders", None)]  # 5 + 40
    gov.preflight("a", summary)
    assert gov.weight.own == 0  # nothing debited
    assert gov.try_admit("a", Cost(40), Priority.READ)[0] is not None
    with pytest.raises(GovernorRefused):
        gov.preflight("a", summary)  # 40 + 45 > 80
    assert gov.weight.own == 40


def test_composite_reads_stop_before_single_heavy_ones() -> None:
    clock = FakeClock()
    gov = governor(clock, safety=1.0, reserve=0.2, light_reserve=0.0, composite_reserve=0.3)
    summary = [("GET", "/fapi/v2/account", None), ("GET", "/fapi/v1/openOrders", None)]  # 5 + 40
    gov.preflight("a", summary)
    assert gov.try_admit("a", Cost(45), Priority.READ)[0] is not None
    with pytest.raises(GovernorRefused):
        gov.preflight("a", summary)  # 45 + 45 > 80 - 30
    assert gov.try_admit("a", Cost(30), Priority.READ)[0] is not None  # the fees still fit: 75 ≤ 80
