"""Exchange faults (issue items 2 and 3): responses lost after execution, 5xx, timeouts, 429/418 and
-1021. Every assertion is on what the paper exchange holds, not on what AIQT says."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest

from aiqt.client import Reply
from harness.holdings import algos_of, orders_of, position
from harness.stack import Account, Stack, StackFactory
from tests.reliability.conftest import EXCHANGE_TIMEOUT, RECV_WINDOW
from tests.reliability.helpers import armed, fault
from worker import ids

pytestmark = pytest.mark.integration

D = Decimal
LOST_MS = int(EXCHANGE_TIMEOUT * 1000) + 500  # a withheld response outlives the worker's timeout


@pytest.fixture(scope="module")
def quick_stack(make_module_stack: StackFactory) -> Stack:
    """The shortest recvWindow Binance allows (1 s) and a 0.8 s exchange timeout: an unknown outcome
    is settled about 2 s after the send."""
    return make_module_stack(
        accounts=2,
        workers=1,
        gateway_up=True,
        worker={"recv_window": 1000, "exchange_timeout": 0.8},
        gateway={"request_timeout": 20.0},
    )


def _cid(reply: Reply) -> str:
    return reply.headers["x-command-id"]


# --- 2. executed, response lost ------------------------------------------------------------------


@pytest.mark.parametrize("lost_as", ["503", "-1007", "timeout"])
def test_entry_executed_but_response_lost(rstack: Stack, racct: Account, lost_as: str) -> None:
    fault(
        rstack, racct, "executed_response_lost", method="POST", path="/fapi/v1/order", lostAs=lost_as, delayMs=LOST_MS
    )
    with rstack.client(racct) as c:
        reply = c.open_market("BTCUSDT", "BUY", "0.004")
    assert (reply.status, reply.code) == (200, 200), reply.msg
    state = rstack.state(racct)
    entries = orders_of(state, racct, _cid(reply))
    assert len(entries) == 1 and len(state["orders"]) == 1, state["orders"]
    assert reply.data["market"]["orderId"] == entries[0]["orderId"]
    assert position(state, "BTCUSDT") == D("0.004")
    assert armed(rstack, racct) == []


@pytest.mark.parametrize("lost_as", ["503", "-1007", "timeout"])
def test_stop_loss_and_take_profit_executed_but_responses_lost(rstack: Stack, racct: Account, lost_as: str) -> None:
    rstack.admin.set_mark("ETHUSDT", "3400")
    fault(
        rstack,
        racct,
        "executed_response_lost",
        count=2,
        method="POST",
        path="/fapi/v1/algoOrder",
        lostAs=lost_as,
        delayMs=LOST_MS,
    )
    with rstack.client(racct) as c:
        reply = c.open_market("ETHUSDT", "BUY", "0.5", stop_loss="3000", take_profit="3900")
    assert (reply.status, reply.code) == (200, 200), reply.msg
    assert reply.data.get("protection") is None
    cid = _cid(reply)
    state = rstack.state(racct)
    assert len(orders_of(state, racct, cid)) == 1 and len(state["orders"]) == 1
    sl, tp = algos_of(state, racct, cid, ids.STOP_LOSS), algos_of(state, racct, cid, ids.TAKE_PROFIT)
    assert len(sl) == 1 and len(tp) == 1 and len(state["algoOrders"]) == 2, state["algoOrders"]
    assert reply.data["stopLoss"]["orderId"] == sl[0]["algoId"]
    assert reply.data["takeProfit"]["orderId"] == tp[0]["algoId"]
    assert position(state, "ETHUSDT") == D("0.5")
    assert armed(rstack, racct) == []


# --- 3. placements: the unknown-outcome rule -----------------------------------------------------


def test_order_executed_late_after_timeout_is_found_not_resent(rstack: Stack, racct: Account) -> None:
    """The exchange sits on the order past the worker's timeout, then executes it (inside recvWindow)."""
    late = int(EXCHANGE_TIMEOUT * 1000) + 500
    assert late < RECV_WINDOW
    fault(rstack, racct, "delay", method="POST", path="/fapi/v1/order", delayMs=late)
    with rstack.client(racct) as c:
        reply = c.open_market("BTCUSDT", "SELL", "0.003")
    assert reply.code == 200, reply.msg
    state = rstack.state(racct)
    assert len(orders_of(state, racct, _cid(reply))) == 1 and len(state["orders"]) == 1
    assert position(state, "BTCUSDT") == D("-0.003")


def test_order_that_expired_at_the_exchange_is_sent_again_once(quick_stack: Stack) -> None:
    """Delayed past its recvWindow, the first request is refused by the exchange (-5028); only after
    that window has certainly passed does the worker send again."""
    account = quick_stack.take_account()
    fault(quick_stack, account, "delay", method="POST", path="/fapi/v1/order", delayMs=1300)
    started = time.monotonic()
    with quick_stack.client(account) as c:
        reply = c.open_market("BNBUSDT", "BUY", "1")
    assert reply.code == 200, reply.msg
    assert time.monotonic() - started >= 1.0  # waited the window out before resending
    time.sleep(0.5)  # let the delayed first request finish (and be refused) at the exchange
    state = quick_stack.state(account)
    assert len(orders_of(state, account, _cid(reply))) == 1 and len(state["orders"]) == 1
    assert position(state, "BNBUSDT") == D("1")


@pytest.mark.parametrize("kind", ["http_5xx", "service_unavailable", "timestamp_1021", "rate_limit_429"])
def test_placement_not_executed_is_retried(rstack: Stack, racct: Account, kind: str) -> None:
    fault(rstack, racct, kind, count=2, method="POST", path="/fapi/v1/order")
    with rstack.client(racct) as c:
        reply = c.open_market("BTCUSDT", "BUY", "0.002")
    assert reply.code == 200, reply.msg
    state = rstack.state(racct)
    assert len(state["orders"]) == 1 and len(orders_of(state, racct, _cid(reply))) == 1
    assert armed(rstack, racct) == []


def test_placement_gives_up_with_a_clear_envelope(rstack: Stack, racct: Account) -> None:
    fault(rstack, racct, "service_unavailable", count=3, method="POST", path="/fapi/v1/order")
    started = time.monotonic()
    with rstack.client(racct) as c:
        reply = c.open_market("BTCUSDT", "BUY", "0.002")
    assert time.monotonic() - started < 10
    assert (reply.status, reply.code, reply.data) == (503, 503, None)
    assert reply.msg.startswith("Exchange unavailable")
    assert rstack.state(racct)["orders"] == []
    assert armed(rstack, racct) == []


def test_placement_outcome_never_confirmed_gives_504_and_nothing_placed(quick_stack: Stack) -> None:
    """Every send times out and dies at the exchange: after MAX_SENDS the client is told the outcome is
    unknown (504, with how to learn it), and the exchange indeed holds nothing."""
    account = quick_stack.take_account()
    fault(quick_stack, account, "delay", count=3, method="POST", path="/fapi/v1/order", delayMs=1200)
    started = time.monotonic()
    with quick_stack.client(account) as c:
        reply = c.open_market("BTCUSDT", "BUY", "0.002")
    assert (reply.status, reply.code) == (504, 504), reply.msg
    assert "Idempotency-Key" in reply.msg and _cid(reply) in reply.msg
    assert time.monotonic() - started < 15
    time.sleep(0.5)
    assert quick_stack.state(account)["orders"] == []


# --- 3. reads and cancels retry --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["http_5xx", "service_unavailable", "delay", "timestamp_1021"])
def test_reads_retry_with_backoff(rstack: Stack, racct: Account, kind: str) -> None:
    extra = {"delayMs": LOST_MS} if kind == "delay" else {}
    fault(rstack, racct, kind, count=1 if kind == "delay" else 2, method="GET", path="/fapi/v2/account", **extra)
    with rstack.client(racct) as c:
        reply = c.account_summary()
    assert reply.code == 200, reply.msg
    assert armed(rstack, racct) == []


def test_read_honours_retry_after(rstack: Stack, racct: Account) -> None:
    fault(rstack, racct, "rate_limit_429", count=2, method="GET", path="/fapi/v2/account")  # Retry-After: 1
    started = time.monotonic()
    with rstack.client(racct) as c:
        reply = c.account_summary()
    assert reply.code == 200, reply.msg
    assert time.monotonic() - started >= 2.0  # two waits of Retry-After: 1
    assert armed(rstack, racct) == []


def test_clock_offset_is_resynced_on_1021(rstack: Stack, racct: Account) -> None:
    """A worker whose clock estimate drifted 20 s behind gets -1021, resyncs and succeeds."""
    clocks = {id(ctx.client.clock): ctx.client.clock for w in rstack.workers for ctx in w.accounts.values()}
    for clock in clocks.values():
        clock.offset_ms -= 20_000
    with rstack.client(racct) as c:
        summary = c.account_summary()
        opened = c.open_market("BTCUSDT", "BUY", "0.002")
    assert summary.code == 200 and opened.code == 200, (summary.msg, opened.msg)
    # The worker(s) that ran the two commands resynced; with two workers and a read lane, both
    # commands may have gone to one of them, leaving the other's clock as it was set.
    assert any(abs(clock.offset_ms) < 5_000 for clock in clocks.values())
    assert len(rstack.state(racct)["orders"]) == 1


def test_reads_give_up_after_the_budget_with_an_envelope(rstack: Stack, racct: Account) -> None:
    fault(rstack, racct, "http_5xx", count=4, method="GET", path="/fapi/v2/account", status=502)
    started = time.monotonic()
    with rstack.client(racct) as c:
        reply = c.account_summary()
    assert time.monotonic() - started < 12
    assert reply.status in (503, 504) and reply.code == reply.status and reply.data is None, reply
    assert armed(rstack, racct) == []


def test_cancel_retries(rstack: Stack, racct: Account) -> None:
    rstack.admin.set_mark("BTCUSDT", "95000")
    order_id = rstack.limit_order(racct, qty="0.002")
    fault(rstack, racct, "http_5xx", count=2, method="DELETE", path="/fapi/v1/order")
    with rstack.client(racct) as c:
        reply = c.cancel_order(order_id, "BTCUSDT")
    assert reply.code == 200 and reply.data["status"] == "CANCELED", reply.msg
    assert [o["status"] for o in rstack.state(racct)["orders"]] == ["CANCELED"]


def test_ip_ban_is_not_retried_and_its_retry_after_reaches_the_client(rstack: Stack, racct: Account) -> None:
    """418 says "banned for 120 s": hammering the exchange within the ban only extends it."""
    fault(rstack, racct, "ban_418", count=1, method="GET", path="/fapi/v2/account")
    started = time.monotonic()
    with rstack.client(racct) as c:
        reply = c.account_summary()
    assert time.monotonic() - started < 3
    assert (reply.status, reply.code) == (429, 429), reply.msg
    assert reply.headers.get("retry-after") == "120"
    fault(rstack, racct, "ban_418", count=1, method="POST", path="/fapi/v1/order")
    with rstack.client(racct) as c:
        order = c.open_market("BTCUSDT", "BUY", "0.002", idempotency_key=uuid.uuid4().hex)
    assert (order.status, order.code) == (429, 429) and order.headers.get("retry-after") == "120"
    assert rstack.state(racct)["orders"] == []


# --- the close leg ---------------------------------------------------------------------------------


def _open_directly(stack: Stack, account: Account, symbol: str, side: str, qty: str) -> None:
    """A position opened by another client of the account, straight at the exchange."""
    body = stack.fapi(
        account,
        "POST",
        "/fapi/v1/order",
        symbol=symbol,
        side=side,
        type="MARKET",
        quantity=qty,
    )
    assert "orderId" in body, body


@pytest.mark.parametrize("lost_as", ["-1007", "timeout"])
def test_close_executed_but_response_lost(rstack: Stack, racct: Account, lost_as: str) -> None:
    _open_directly(rstack, racct, "ETHUSDT", "BUY", "0.3")
    fault(
        rstack, racct, "executed_response_lost", method="POST", path="/fapi/v1/order", lostAs=lost_as, delayMs=LOST_MS
    )
    with rstack.client(racct) as c:
        reply = c.close_market("ETHUSDT", "LONG")
    assert reply.code == 200 and reply.data["positionClosed"] is True, reply.msg
    state = rstack.state(racct)
    closes = orders_of(state, racct, _cid(reply), ids.CLOSE)
    assert len(closes) == 1 and closes[0]["orderId"] == reply.data["orderId"]
    assert len(state["orders"]) == 2 and position(state, "ETHUSDT") == 0
    assert armed(rstack, racct) == []
