"""Protected entry (issue item 8): the entry filled but its stop loss / take profit could not be
placed. The configured policy runs (AIQT_PROTECTION_POLICY close|keep) and the reply says which."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from aiqt.client import AiqtClient, Reply
from gateway.app import create_app
from harness.holdings import algos_of, orders_of, position
from harness.servers import ThreadedUvicorn
from harness.stack import Account, Stack, StackFactory
from tests.reliability.helpers import fault
from worker import ids

pytestmark = pytest.mark.integration

D = Decimal


@pytest.fixture(scope="module")
def keep_stack(make_module_stack: StackFactory) -> Stack:
    return make_module_stack(
        accounts=2,
        workers=1,
        gateway_up=True,
        worker={"protection_policy": "keep", "recv_window": 3000, "exchange_timeout": 1.5},
    )


def _open_with_bad_stop(stack: Stack, account: Account) -> tuple[Reply, str, dict[str, Any]]:
    """BUY with a stop loss above the mark: the exchange refuses it (-2021), the take profit is placed."""
    stack.admin.set_mark("SOLUSDT", "180")
    try:
        with stack.client(account) as c:
            reply = c.open_market("SOLUSDT", "BUY", "2", stop_loss="190", take_profit="220")
        return reply, reply.headers["x-command-id"], stack.state(account)
    finally:
        stack.admin.unpin("SOLUSDT")


def test_policy_close_unwinds_the_entry(rstack: Stack, racct: Account) -> None:
    reply, cid, state = _open_with_bad_stop(rstack, racct)
    assert (reply.status, reply.code) == (400, -2021), reply.msg
    data = reply.data
    protection = data["protection"]
    assert (protection["policy"], protection["status"], protection["failedLegs"]) == ("close", "FAILED", ["stopLoss"])
    assert "position was closed (policy=close)" in reply.msg
    assert data["market"]["status"] == "FILLED" and protection["closeOrder"]["status"] == "FILLED"
    # at the exchange: one entry, one unwind, no position, the lone take profit cancelled
    assert len(orders_of(state, racct, cid)) == 1
    unwind = orders_of(state, racct, cid, ids.UNWIND)
    assert len(unwind) == 1 and unwind[0]["orderId"] == protection["closeOrder"]["orderId"]
    assert position(state, "SOLUSDT") == 0
    assert algos_of(state, racct, cid, ids.STOP_LOSS) == []
    assert [a["algoStatus"] for a in algos_of(state, racct, cid, ids.TAKE_PROFIT)] == ["CANCELED"]


def test_policy_close_when_the_exchange_stays_unavailable(rstack: Stack, racct: Account) -> None:
    fault(rstack, racct, "service_unavailable", count=3, method="POST", path="/fapi/v1/algoOrder")
    with rstack.client(racct) as c:
        reply = c.open_market("BTCUSDT", "SELL", "0.003", stop_loss="150000")
    assert reply.code != 200 and reply.data["protection"]["policy"] == "close", reply.msg
    cid = reply.headers["x-command-id"]
    state = rstack.state(racct)
    assert len(orders_of(state, racct, cid)) == 1 and len(orders_of(state, racct, cid, ids.UNWIND)) == 1
    assert position(state, "BTCUSDT") == 0 and state["algoOrders"] == []


def test_policy_close_that_fails_too_is_flagged_as_unprotected(rstack: Stack, racct: Account) -> None:
    # The entry takes the harmless first fault; the unwind's three sends take the next three.
    fault(rstack, racct, "delay", count=1, method="POST", path="/fapi/v1/order", delayMs=0)
    fault(rstack, racct, "service_unavailable", count=3, method="POST", path="/fapi/v1/order")
    reply, cid, state = _open_with_bad_stop(rstack, racct)
    protection = reply.data["protection"]
    assert protection["policy"] == "keep" and protection["closeOrder"] is None
    assert "FAILED too" in reply.msg and "UNPROTECTED" in reply.msg
    assert position(state, "SOLUSDT") == D("2")  # exactly what the reply says: open, unprotected
    assert orders_of(state, racct, cid, ids.UNWIND) == []


def test_policy_keep_keeps_the_position_and_says_so(keep_stack: Stack) -> None:
    account = keep_stack.take_account()
    reply, cid, state = _open_with_bad_stop(keep_stack, account)
    assert (reply.status, reply.code) == (400, -2021)
    protection = reply.data["protection"]
    assert (protection["policy"], protection["failedLegs"], protection["closeOrder"]) == ("keep", ["stopLoss"], None)
    assert "UNPROTECTED (policy=keep)" in reply.msg
    assert position(state, "SOLUSDT") == D("2")
    assert [a["algoStatus"] for a in algos_of(state, account, cid, ids.TAKE_PROFIT)] == ["NEW"]
    assert orders_of(state, account, cid, ids.UNWIND) == []


def test_rerun_after_a_failed_unwind_never_reports_a_cancelled_leg_as_protection(rstack: Stack, racct: Account) -> None:
    """First run: one leg is refused (418), the unwind fails too, so the position is kept and flagged.
    A rerun of the same command (the same Idempotency-Key through another gateway, whose cache is
    empty) must not answer "Success" while a leg at the exchange is cancelled: either both legs are
    live, or the reply says what is missing."""
    other = ThreadedUvicorn(create_app(rstack.gateway_settings())).start()
    rstack.admin.set_mark("SOLUSDT", "180")
    try:
        fault(rstack, racct, "delay", count=1, method="POST", path="/fapi/v1/order", delayMs=0)  # the entry
        fault(rstack, racct, "service_unavailable", count=3, method="POST", path="/fapi/v1/order")  # the unwind
        fault(rstack, racct, "ban_418", count=1, method="POST", path="/fapi/v1/algoOrder")  # one leg
        key = uuid.uuid4().hex
        with rstack.client(racct) as c:
            first = c.open_market("SOLUSDT", "BUY", "2", stop_loss="170", take_profit="200", idempotency_key=key)
        assert first.data["protection"]["policy"] == "keep", first.msg
        assert position(rstack.state(racct), "SOLUSDT") == D("2")
        with AiqtClient(other.url, racct.api_key, racct.api_secret) as c:
            again = c.open_market("SOLUSDT", "BUY", "2", stop_loss="170", take_profit="200", idempotency_key=key)
        cid = again.headers["x-command-id"]
        state = rstack.state(racct)
        live = {
            leg: [a["algoStatus"] for a in algos_of(state, racct, cid, leg)] for leg in (ids.STOP_LOSS, ids.TAKE_PROFIT)
        }
        assert len(orders_of(state, racct, cid)) == 1
        if again.code == 200:
            assert live == {ids.STOP_LOSS: ["NEW"], ids.TAKE_PROFIT: ["NEW"]}, (again.msg, live)
        else:
            assert again.data["protection"], again.msg
    finally:
        other.stop()
        rstack.admin.unpin("SOLUSDT")
