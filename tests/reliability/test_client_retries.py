"""Client retries (issue item 4): the same Idempotency-Key again, concurrently, through two gateways,
and after the first request timed out at the gateway: one order, the same reply."""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from aiqt.client import AiqtClient, Reply
from gateway.app import create_app
from harness.holdings import orders_of, position
from harness.servers import ThreadedUvicorn
from harness.stack import Account, Stack
from tests.reliability.conftest import EXCHANGE_TIMEOUT, RECV_WINDOW
from tests.reliability.helpers import fault

pytestmark = pytest.mark.integration

D = Decimal


@pytest.fixture(scope="module")
def impatient(rstack: Stack) -> Iterator[ThreadedUvicorn]:
    """A second gateway on the same bus that gives up after 1 s (its own idempotency cache)."""
    server = ThreadedUvicorn(create_app(rstack.gateway_settings(request_timeout=1.0))).start()
    yield server
    server.stop()


def _client(server: ThreadedUvicorn, account: Account) -> AiqtClient:
    return AiqtClient(server.url, account.api_key, account.api_secret)


def test_sequential_and_concurrent_retries_place_one_order(rstack: Stack, racct: Account) -> None:
    key = uuid.uuid4().hex
    with rstack.client(racct) as c, concurrent.futures.ThreadPoolExecutor(6) as pool:
        first = c.open_market("BTCUSDT", "BUY", "0.002", stop_loss="80000", idempotency_key=key)
        again = list(
            pool.map(
                lambda _: c.open_market("BTCUSDT", "BUY", "0.002", stop_loss="80000", idempotency_key=key), range(6)
            )
        )
    assert first.code == 200
    assert all(r.code == 200 and r.data == first.data for r in again)
    state = rstack.state(racct)
    assert len(state["orders"]) == 1 and len(state["algoOrders"]) == 1
    assert position(state, "BTCUSDT") == D("0.002")


def test_concurrent_first_requests_through_two_gateways(
    rstack: Stack, racct: Account, impatient: ThreadedUvicorn
) -> None:
    """Two gateways share no cache: the worker-side lock and the lookup by client id keep it to one."""
    key = uuid.uuid4().hex
    fault(rstack, racct, "delay", method="POST", path="/fapi/v1/order", delayMs=300)
    with (
        rstack.client(racct) as a,
        _client(impatient, racct) as b,
        concurrent.futures.ThreadPoolExecutor(8) as pool,
    ):
        replies = list(
            pool.map(lambda i: (a if i % 2 else b).open_market("ETHUSDT", "BUY", "0.1", idempotency_key=key), range(8))
        )
    ok = [r for r in replies if r.code == 200]
    assert ok and len({r.data["market"]["orderId"] for r in ok}) == 1
    assert all(r.code in (200, 409, 504) for r in replies), [(r.code, r.msg) for r in replies]
    state = rstack.state(racct)
    assert len(state["orders"]) == 1 and position(state, "ETHUSDT") == D("0.1")


def test_retry_after_the_gateway_timed_out(rstack: Stack, racct: Account, impatient: ThreadedUvicorn) -> None:
    """The first request gets 504 (its order executes late at the exchange); retries with the same key,
    some concurrent and through either gateway, all learn the one order."""
    late = int(EXCHANGE_TIMEOUT * 1000) + 500
    assert late < RECV_WINDOW
    fault(rstack, racct, "delay", method="POST", path="/fapi/v1/order", delayMs=late)
    key = uuid.uuid4().hex
    with _client(impatient, racct) as b:
        first = b.open_market("BNBUSDT", "SELL", "2", idempotency_key=key)
    assert (first.status, first.code) == (504, 504), first.msg
    assert key in first.msg and first.headers["x-command-id"] in first.msg
    cid = first.headers["x-command-id"]

    def retry(i: int) -> Reply:
        client = rstack.client(racct) if i % 2 else _client(impatient, racct)
        with client as c:
            end = time.monotonic() + 20
            while True:
                reply = c.open_market("BNBUSDT", "SELL", "2", idempotency_key=key)
                if reply.code not in (409, 504) or time.monotonic() > end:
                    return reply
                time.sleep(0.2)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(retry, range(4)))
    assert {r.code for r in replies} == {200}, [(r.code, r.msg) for r in replies]
    assert {r.headers["x-command-id"] for r in replies} == {cid}
    assert len({r.data["market"]["orderId"] for r in replies}) == 1
    time.sleep(late / 1000)  # whatever is still on its way to the exchange has arrived
    state = rstack.state(racct)
    assert len(orders_of(state, racct, cid)) == 1 and len(state["orders"]) == 1, state["orders"]
    assert replies[0].data["market"]["orderId"] == state["orders"][0]["orderId"]
    assert position(state, "BNBUSDT") == D("-2")
