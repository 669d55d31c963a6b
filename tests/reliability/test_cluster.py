"""A 3-node RabbitMQ cluster is one broker to AIQT (issue 9, item 5).

The cluster is started on this machine beside the shared broker (`tests/support/cluster.py`). The
gateway and two workers get `AIQT_AMQP_URL` = all three node URLs. Under load from clients that
retry every answer that says nothing final (503, 504) with the same Idempotency-Key, the test stops
the node the gateway is connected to, starts it again, then stops the node the gateway moved to.
Each time the gateway and the workers must fail over to a node that is still up, within seconds.
At the end it counts at the paper exchange, by client id: every command exactly one order (none
lost, none doubled), and every HTTP request answered within its deadline.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from fastapi import FastAPI

from bus import RpcClient
from harness.holdings import orders_of, position
from harness.stack import Account, Stack, StackFactory
from tests.reliability.helpers import consumers, wait_until
from tests.support.cluster import Cluster, require_rabbitmq

pytestmark = [pytest.mark.integration, pytest.mark.slow]

D = Decimal
REQUEST_TIMEOUT = 3.0
QTY = D("0.002")
CLIENTS = 4
RETRY_FOR = 30.0  # a client gives up on a command after this long (the test then fails)


@dataclass
class Attempt:
    key: str
    status: int
    started: float
    ended: float


@dataclass
class Command:
    account: Account
    key: str
    command_id: str | None = None
    final: int | None = None


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    require_rabbitmq()
    c = Cluster(3)
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture
def cluster_stack(cluster: Cluster, make_stack: StackFactory) -> Stack:
    # `cluster` first: the stack is stopped (and its namespace deleted) before the cluster is.
    return make_stack(
        amqp_url=cluster.amqp_url,
        accounts=CLIENTS,
        workers=2,
        gateway_up=True,
        worker={"recv_window": 3000, "exchange_timeout": 2.0},
        gateway={"request_timeout": REQUEST_TIMEOUT},
    )


def gateway_rpc(stack: Stack) -> RpcClient:
    assert stack.gateway is not None
    app = stack.gateway.server.config.app
    assert isinstance(app, FastAPI)
    rpc = app.state.gateway.rpc
    assert isinstance(rpc, RpcClient)
    return rpc


def node_index(cluster: Cluster, address: str | None) -> int:
    assert address is not None
    return cluster.node_of_port(int(address.rsplit(":", 1)[1]))


def quorum_complete(cluster: Cluster, queue: str, via: int = 0) -> bool:
    states = cluster.quorum_states(queue, via=via)
    return sorted(states) == sorted(cluster.names) and set(states.values()) <= {"leader", "follower"}


def test_cluster_failover_under_load(cluster: Cluster, cluster_stack: Stack) -> None:
    stack = cluster_stack
    rpc = gateway_rpc(stack)
    queue = stack.topology.commands_queue

    # The quorum command queue was declared with the cluster complete: a member on every node.
    assert quorum_complete(cluster, queue), cluster.quorum_states(queue)
    assert consumers(stack) == 2

    accounts = [stack.take_account() for _ in range(CLIENTS)]
    commands: list[Command] = []
    attempts: list[Attempt] = []
    stop = threading.Event()
    failures: list[str] = []

    def load(account: Account) -> None:
        try:
            with stack.client(account) as c:
                while not stop.is_set():
                    cmd = Command(account, uuid.uuid4().hex)
                    commands.append(cmd)
                    give_up = time.monotonic() + RETRY_FOR
                    while True:  # like a client: retry what says nothing final, with the same key
                        started = time.monotonic()
                        reply = c.open_market("BTCUSDT", "BUY", QTY, idempotency_key=cmd.key)
                        attempts.append(Attempt(cmd.key, reply.status, started, time.monotonic()))
                        cmd.command_id = reply.headers.get("x-command-id") or cmd.command_id
                        if reply.status not in (503, 504) or time.monotonic() > give_up:
                            cmd.final = reply.status
                            break
                        time.sleep(0.1)
                    time.sleep(0.05)
        except Exception as exc:  # a request that raised was not answered: counted as a failure
            failures.append(repr(exc))

    def first_success_after(t: float) -> float:
        done = [a.ended for a in attempts if a.started >= t and a.status == 200]
        return min(done) if done else float("inf")

    def longest_gap(since: float, until: float) -> float:
        """The longest time without a successful reply, over [since, until]."""
        ends = sorted(a.ended for a in attempts if a.status == 200 and since <= a.ended <= until)
        marks = [since, *ends, until]
        return max(b - a for a, b in itertools.pairwise(marks))

    def fail_over(round_: int) -> dict[str, float | str | bool]:
        """Stop the gateway's node under load; the gateway and both workers must carry on elsewhere.
        Then start it again and wait until it is back in the quorum queue."""
        gone = node_index(cluster, rpc.connected_url)
        leader = [n for n, state in cluster.quorum_states(queue).items() if state == "leader"]
        before = len(attempts)
        reconnected: list[float] = []

        def watch_gateway() -> None:  # when the gateway's connection is up on another node
            while not reconnected:
                now = rpc.connected_url
                if now is not None and node_index(cluster, now) != gone:
                    reconnected.append(time.monotonic())
                time.sleep(0.01)

        stopping = time.monotonic()
        watcher = threading.Thread(target=watch_gateway, daemon=True)
        watcher.start()
        cluster.stop_app(gone)  # returns once the node's connections are closed and its app stopped
        stopped = time.monotonic()
        watcher.join(20)
        assert reconnected, "the gateway did not reconnect to another node"
        wait_until(lambda: first_success_after(stopped) < float("inf"), 20, "an order after the node stopped")
        back = first_success_after(stopped)
        wait_until(lambda: consumers(stack) == 2, 20, "both workers consuming again", interval=0.1)
        moved_to = node_index(cluster, rpc.connected_url)
        assert moved_to != gone
        for w in stack.workers:
            assert node_index(cluster, w.consumer.bus.connected_url) != gone
        time.sleep(2.0)  # back to normal: traffic keeps flowing on the remaining nodes
        after = [a for a in attempts[before:] if a.started >= back]
        ok_after = sum(a.status == 200 for a in after)
        assert ok_after >= 10 and ok_after >= 0.9 * len(after), [a.status for a in after]
        cluster.start_app(gone)
        # a full cluster again (the restarted member back in the quorum queue) before the next stop
        wait_until(lambda: quorum_complete(cluster, queue, via=gone), 30, "a complete quorum", interval=0.5)
        return {
            "round": round_,
            "stopped": cluster.names[gone],
            "gateway_moved_to": cluster.names[moved_to],
            "quorum_leader_stopped": leader == [cluster.names[gone]],
            "stop_app_s": round(stopped - stopping, 2),
            "gateway_reconnected_s": round(reconnected[0] - stopping, 2),
            "stop_to_first_success_s": round(back - stopping, 2),
            "longest_gap_without_success_s": round(longest_gap(stopping - 1.0, back + 2.0), 2),
        }

    threads = [threading.Thread(target=load, args=(a,), daemon=True) for a in accounts]
    for t in threads:
        t.start()
    failovers: list[dict[str, float | str | bool]] = []
    try:
        try:
            wait_until(lambda: sum(a.status == 200 for a in attempts) >= 20, 20, "traffic before the first stop")
        except AssertionError:
            raise AssertionError(f"no traffic: {Counter(a.status for a in attempts)}, {failures}") from None
        for round_ in (1, 2):
            failovers.append(fail_over(round_))
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(RETRY_FOR + REQUEST_TIMEOUT + 5)

    # every request answered, within its deadline (plus slack for a loaded 2-core machine)
    assert failures == []
    assert all(not t.is_alive() for t in threads)
    longest = max(a.ended - a.started for a in attempts)
    assert longest <= REQUEST_TIMEOUT + 2, longest
    assert {a.status for a in attempts} <= {200, 503, 504}, {a.status for a in attempts}
    # every command ended with its order, each exactly once at the exchange
    assert [c for c in commands if c.final != 200] == []
    time.sleep(1.0)
    for account in accounts:
        state = stack.state(account)
        mine = [c for c in commands if c.account == account]
        for c in mine:
            assert c.command_id is not None
            assert len(orders_of(state, account, c.command_id)) == 1, c
        assert len(state["orders"]) == len(mine)
        assert position(state, "BTCUSDT") == QTY * len(mine)
    statuses = [a.status for a in attempts]
    print(
        f"\ncluster failover: {len(commands)} commands, {len(attempts)} requests "
        f"(200: {statuses.count(200)}, 503: {statuses.count(503)}, 504: {statuses.count(504)}), "
        f"lost 0, doubled 0, longest request {longest:.2f}s, gateway connections {rpc.connects}"
    )
    for f in failovers:
        print(f"  {f}")
    assert all(float(f["stop_to_first_success_s"]) <= 10 for f in failovers), failovers
