"""worker.risk (pure checks) and the worker's guard before an opening order: no broker, no socket.

The integration tests (tests/test_guard.py) drive the same limits through the real bus and the paper
exchange; these pin the arithmetic, the messages and the fail-closed paths one by one."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from pydantic import ValidationError

from bus.halts import Halts, HaltUnknown
from bus.topology import Topology
from schemas import commands as cmd
from schemas import errors
from tests.unit.conftest import Rig
from tests.unit.fake_fapi import ok
from worker.commands.orders import open_market
from worker.context import AccountContext, Run
from worker.outcome import Refusal
from worker.risk import (
    DAY_MS,
    MINUTE_MS,
    OpeningOrder,
    RiskLimits,
    RiskRefused,
    Trade,
    check_leverage,
    check_opening,
    usdt,
)
from worker.settings import WorkerSettings

D = Decimal
NOW = 1_800_000_000_000
BTC = OpeningOrder(symbol="BTCUSDT", quantity=D("0.1"), direction=1, mark_price=D("95000"), leverage=5)


def refusal(limits: RiskLimits, order: OpeningOrder = BTC, trades: list[Trade] | None = None) -> RiskRefused:
    with pytest.raises(RiskRefused) as caught:
        check_opening(limits, order, trades or [], now_ms=NOW)
    return caught.value


def test_money_is_written_exactly_with_thousands_grouped() -> None:
    assert [usdt(D(x)) for x in ("12000", "12000.50", "950.000", "0.5", "1234567.891")] == [
        "12,000",
        "12,000.5",
        "950",
        "0.5",
        "1,234,567.891",
    ]


def test_no_limits_pass_anything() -> None:
    check_opening(RiskLimits(), BTC, now_ms=NOW)


def test_max_order_notional_names_the_limit_its_value_and_the_orders() -> None:
    exc = refusal(RiskLimits(maxOrderNotional=D("5000")))
    assert exc.limit == "maxOrderNotional" and exc.code == errors.BAD_REQUEST
    assert exc.msg == "order notional 9,500 USDT exceeds this account's limit of 5,000 (maxOrderNotional)"
    check_opening(RiskLimits(maxOrderNotional=D("9500")), BTC, now_ms=NOW)  # at the limit is allowed


def test_max_position_notional_counts_the_position_after_the_order() -> None:
    limits = RiskLimits(maxPositionNotional=D("10000"))
    long = OpeningOrder("BTCUSDT", D("0.1"), 1, D("95000"), position=D("0.01"))
    exc = refusal(limits, long)
    assert exc.msg == (
        "position notional after this order 10,450 USDT in BTCUSDT exceeds this account's limit of "
        "10,000 (maxPositionNotional)"
    )
    # Selling against a long shrinks it (one-way mode): allowed although the order alone is large.
    check_opening(limits, OpeningOrder("BTCUSDT", D("0.15"), -1, D("95000"), position=D("0.1")), now_ms=NOW)


def test_max_leverage_on_opening_and_on_setting() -> None:
    limits = RiskLimits(maxLeverage=10)
    exc = refusal(limits, OpeningOrder("BTCUSDT", D("0.001"), 1, D("95000"), leverage=20))
    assert exc.msg.startswith("BTCUSDT is set to leverage 20x, above this account's limit of 10x (maxLeverage)")
    with pytest.raises(RiskRefused, match=r"leverage 11x exceeds this account's limit of 10x \(maxLeverage\)"):
        check_leverage(limits, "BTCUSDT", 11)
    check_leverage(limits, "BTCUSDT", 10)
    check_leverage(limits, "BTCUSDT", 1)


def test_symbol_allowlist() -> None:
    exc = refusal(RiskLimits(symbols=frozenset({"ETHUSDT", "SOLUSDT"})))
    assert exc.msg == "symbol BTCUSDT is not in this account's allowlist (ETHUSDT, SOLUSDT) (symbols)"
    check_opening(RiskLimits(symbols=frozenset({"BTCUSDT"})), BTC, now_ms=NOW)


def test_reduce_only_account_refuses_every_opening_order() -> None:
    exc = refusal(RiskLimits(reduceOnly=True))
    assert exc.limit == "reduceOnly" and "may only close positions" in exc.msg


def test_orders_per_minute_counts_distinct_orders_in_the_last_60_seconds() -> None:
    limits = RiskLimits(maxOrdersPerMinute=3)
    recent = [
        Trade(NOW - 1000, 1, D("100")),
        Trade(NOW - 900, 1, D("100")),  # two fills of one order: one order
        Trade(NOW - 30_000, 2, D("100")),
        Trade(NOW - MINUTE_MS - 1, 3, D("100")),  # older than a minute
    ]
    check_opening(limits, BTC, recent, now_ms=NOW)
    exc = refusal(limits, trades=[*recent, Trade(NOW - 5, 4, D("1"))])
    assert exc.msg == "3 orders in the last minute; one more exceeds this account's limit of 3 (maxOrdersPerMinute)"


def test_daily_notional_is_rolling_24_hours() -> None:
    limits = RiskLimits(maxDailyNotional=D("20000"))
    trades = [Trade(NOW - DAY_MS + 1, 1, D("10000")), Trade(NOW - DAY_MS - 1, 2, D("99999"))]
    check_opening(limits, BTC, trades, now_ms=NOW)  # 10,000 + 9,500
    exc = refusal(limits, trades=[*trades, Trade(NOW - 10, 3, D("600.25"))])
    assert exc.msg == (
        "notional traded in the last 24 h would be 20,100.25 USDT (10,600.25 traded + 9,500 this order), "
        "exceeding this account's limit of 20,000 (maxDailyNotional)"
    )


def test_an_order_that_cannot_be_valued_is_refused() -> None:
    unvalued = OpeningOrder("BTCUSDT", D("0.1"), 1, None)
    assert "cannot be valued" in refusal(RiskLimits(maxOrderNotional=D("1")), unvalued).msg
    assert "cannot be valued" in refusal(RiskLimits(maxDailyNotional=D("1")), unvalued).msg


def test_aiqt_risk_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = {"main": {"maxOrderNotional": 5000, "maxDailyNotional": "100000.5", "symbols": ["BTCUSDT"]}}
    monkeypatch.setenv("AIQT_RISK", json.dumps(raw))
    limits = WorkerSettings().risk["main"]
    assert limits.maxOrderNotional == D("5000") and limits.maxDailyNotional == D("100000.5")
    assert limits.symbols == frozenset({"BTCUSDT"}) and not limits.reduceOnly
    with pytest.raises(ValidationError):
        RiskLimits.model_validate({"maxOrderNotionl": 5000})  # a misspelt limit is an error, never no limit
    with pytest.raises(ValidationError):
        RiskLimits.model_validate({"maxOrderNotional": -1})


# --- the guard in the open_market handler ----------------------------------------------------------

RUN = Run(command_id="cmd-risk", redelivered=False)


def _open(**extra: object) -> cmd.OpenMarket:
    return cmd.OpenMarket.model_validate({"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.1", **extra})


async def test_a_worker_that_cannot_read_the_halt_state_refuses_opening_orders(rig: Rig) -> None:
    halts = Halts(Topology("unit"))  # never bound to a connection: every read fails
    with pytest.raises(HaltUnknown):
        await halts.is_halted("acct")
    ctx = AccountContext(name="acct", exchange=rig.exchange, protection_policy="close", halts=halts)
    with pytest.raises(Refusal) as caught:
        await open_market(ctx, _open(), RUN)
    assert caught.value.outcome.code == errors.UNAVAILABLE
    assert "opening orders are refused until it can" in caught.value.outcome.msg
    assert rig.fake.calls("POST", "/fapi/v1/order") == []  # nothing sent
    # A reduce-only order is a close: it never asks.
    reduced = await open_market(ctx, _open(reduceOnly=True), RUN)
    assert reduced.code == errors.OK


async def test_limits_are_checked_before_anything_is_sent(rig: Rig) -> None:
    rig.fake.route(
        "GET",
        "/fapi/v2/positionRisk",
        ok([{"symbol": "BTCUSDT", "positionSide": "BOTH", "positionAmt": "0", "markPrice": "95000", "leverage": "5"}]),
    )
    limits = RiskLimits(maxOrderNotional=D("5000"))
    ctx = AccountContext(name="acct", exchange=rig.exchange, protection_policy="close", risk=limits)
    with pytest.raises(Refusal) as caught:
        await open_market(ctx, _open(), RUN)
    assert caught.value.outcome.msg.startswith("order notional 9,500 USDT exceeds")
    assert caught.value.outcome.data == {"limit": "maxOrderNotional"}
    assert rig.fake.calls("POST", "/fapi/v1/order") == []
    assert (await open_market(ctx, _open(quantity="0.05"), RUN)).code == errors.OK
