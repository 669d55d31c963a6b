"""A worker SIGKILLed mid-command (issue item 1): RabbitMQ redelivers the unacked command, the next
worker finds the order by its client id and replies with it. Exactly one order at the exchange."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from decimal import Decimal

import pytest

from aiqt.client import AiqtClient, Reply
from gateway.app import create_app
from harness.holdings import algos_of, orders_of, position
from harness.servers import ThreadedUvicorn
from harness.stack import Account, Stack, StackFactory
from tests.reliability.helpers import armed, fault, kill, wait_for_workers, wait_until
from worker import ids

pytestmark = [pytest.mark.integration, pytest.mark.slow]

D = Decimal
RECV_WINDOW = 2000


@pytest.fixture(scope="module")
def crash_stack(make_module_stack: StackFactory) -> Stack:
    """A gateway with no worker of its own: each test spawns worker processes and kills them."""
    return make_module_stack(
        accounts=6,
        gateway_up=True,
        worker={"recv_window": RECV_WINDOW, "exchange_timeout": 2.0},
        gateway={"request_timeout": 25.0},
    )


def _kill_while_in_flight(stack: Stack, account: Account, send: Callable[[], Reply]) -> Reply:
    """Start a worker, send a command, SIGKILL the worker as soon as its armed fault is being served
    (the request is at the exchange), start a fresh worker, and return the client's reply."""
    first = stack.spawn_worker()
    wait_for_workers(stack, 1)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(send)
        wait_until(lambda: armed(stack, account) == [], 10, "the worker's request to reach the exchange")
        kill(first)
        second = stack.spawn_worker()
        reply = pending.result(30)
    stack.stop_workers()
    assert second.poll() is not None
    return reply


def test_killed_while_the_order_is_in_flight(crash_stack: Stack) -> None:
    account = crash_stack.take_account()
    # The exchange holds the order 1.5 s, then executes it (inside recvWindow): the worker dies first.
    fault(crash_stack, account, "delay", method="POST", path="/fapi/v1/order", delayMs=1500)
    with crash_stack.client(account) as c:
        reply = _kill_while_in_flight(crash_stack, account, lambda: c.open_market("BTCUSDT", "BUY", "0.005"))
    assert reply.code == 200, reply.msg
    cid = reply.headers["x-command-id"]
    state = crash_stack.state(account)
    assert len(orders_of(state, account, cid)) == 1 and len(state["orders"]) == 1, state["orders"]
    assert reply.data["market"]["orderId"] == state["orders"][0]["orderId"]
    assert position(state, "BTCUSDT") == D("0.005")


def test_killed_after_the_exchange_executed_before_the_ack(crash_stack: Stack) -> None:
    account = crash_stack.take_account()
    # Executed at once; the response is withheld long enough for the worker to be killed before it acks.
    fault(
        crash_stack,
        account,
        "executed_response_lost",
        method="POST",
        path="/fapi/v1/order",
        lostAs="timeout",
        delayMs=4000,
    )
    with crash_stack.client(account) as c:
        reply = _kill_while_in_flight(crash_stack, account, lambda: c.open_market("ETHUSDT", "SELL", "0.2"))
    assert reply.code == 200, reply.msg
    state = crash_stack.state(account)
    assert len(orders_of(state, account, reply.headers["x-command-id"])) == 1 and len(state["orders"]) == 1
    assert position(state, "ETHUSDT") == D("-0.2")


def test_killed_between_entry_and_stop_loss(crash_stack: Stack) -> None:
    """The entry filled and was answered; the worker dies while the stop loss is on its way. The rerun
    must find the entry (not buy again) and end with exactly one stop loss and one take profit."""
    account = crash_stack.take_account()
    crash_stack.admin.set_mark("SOLUSDT", "180")
    fault(crash_stack, account, "delay", method="POST", path="/fapi/v1/algoOrder", delayMs=1500)
    with crash_stack.client(account) as c:
        reply = _kill_while_in_flight(
            crash_stack, account, lambda: c.open_market("SOLUSDT", "BUY", "3", stop_loss="170", take_profit="200")
        )
    assert reply.code == 200, reply.msg
    assert reply.data.get("protection") is None
    cid = reply.headers["x-command-id"]
    state = crash_stack.state(account)
    assert len(orders_of(state, account, cid)) == 1 and len(state["orders"]) == 1
    sl, tp = algos_of(state, account, cid, ids.STOP_LOSS), algos_of(state, account, cid, ids.TAKE_PROFIT)
    assert len(sl) == 1 and len(tp) == 1 and len(state["algoOrders"]) == 2, state["algoOrders"]
    assert reply.data["stopLoss"]["orderId"] == sl[0]["algoId"]
    assert position(state, "SOLUSDT") == D("3")
    crash_stack.admin.unpin("SOLUSDT")


def test_redelivered_after_its_deadline_still_completes_the_protection(crash_stack: Stack) -> None:
    """The caller gave up (504) and the worker died between entry and stop loss; the command comes
    back after its deadline. Dropping it would leave a filled entry without its stop loss, silently:
    the rerun must finish what the first run started (never start anything new)."""
    account = crash_stack.take_account()
    crash_stack.admin.set_mark("XRPUSDT", "2.5")
    short = ThreadedUvicorn(create_app(crash_stack.gateway_settings(request_timeout=3.0)))
    short.start()
    try:
        # The stop loss request dies at the exchange (held past its recvWindow): only a rerun can place it.
        fault(crash_stack, account, "delay", method="POST", path="/fapi/v1/algoOrder", delayMs=RECV_WINDOW + 500)
        first = crash_stack.spawn_worker()
        wait_for_workers(crash_stack, 1)
        with (
            AiqtClient(short.url, account.api_key, account.api_secret) as c,
            concurrent.futures.ThreadPoolExecutor(1) as pool,
        ):
            pending = pool.submit(lambda: c.open_market("XRPUSDT", "BUY", "100", stop_loss="2.2"))
            wait_until(lambda: armed(crash_stack, account) == [], 10, "the stop loss to reach the exchange")
            kill(first)
            reply = pending.result(30)
        assert reply.status == 504
        time.sleep(0.5)
        crash_stack.spawn_worker()
        wait_for_workers(crash_stack, 1)
        cid = reply.headers["x-command-id"]
        wait_until(
            lambda: len(algos_of(crash_stack.state(account), account, cid, ids.STOP_LOSS)) == 1,
            5,
            "the stop loss at the exchange",
            interval=0.2,
        )
        state = crash_stack.state(account)
        assert len(orders_of(state, account, cid)) == 1 and position(state, "XRPUSDT") == D("100")
    finally:
        short.stop()
        crash_stack.stop_workers()
        crash_stack.admin.unpin("XRPUSDT")


def test_killed_while_the_close_is_in_flight(crash_stack: Stack) -> None:
    account = crash_stack.take_account()
    body = crash_stack.fapi(
        account,
        "POST",
        "/fapi/v1/order",
        symbol="BNBUSDT",
        side="SELL",
        type="MARKET",
        quantity="3",
    )
    assert "orderId" in body, body
    fault(crash_stack, account, "delay", method="POST", path="/fapi/v1/order", delayMs=1500)
    with crash_stack.client(account) as c:
        reply = _kill_while_in_flight(crash_stack, account, lambda: c.close_market("BNBUSDT", "SHORT"))
    assert reply.code == 200, reply.msg
    state = crash_stack.state(account)
    closes = orders_of(state, account, reply.headers["x-command-id"], ids.CLOSE)
    assert len(closes) == 1 and closes[0]["orderId"] == reply.data["orderId"], state["orders"]
    assert len(state["orders"]) == 2 and position(state, "BNBUSDT") == 0
