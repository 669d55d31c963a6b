"""Metrics, health, readiness and JSON logs, checked after real traffic.

Readiness when "the broker stops": this suite shares one RabbitMQ with tests that restart it, so
stopping it here would break them when run concurrently. Instead (1) a gateway pointed at an AMQP
port where nothing answers shows `/readyz` 503 with `broker: false`, and (2) the broker closes a
live gateway's connection (`rabbitmqctl close_connection`) and refuses it back for a while, which is
what a gateway sees while the broker is down: readiness drops, then comes back by itself. (A bare
close_connection is not enough to see it: aio-pika reconnects within ~10 ms. So the gateway runs as
a RabbitMQ user of its own whose permissions are revoked, then restored.)
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bus import RpcClient
from gateway.app import create_app
from harness.servers import ThreadedUvicorn, free_port
from harness.stack import Stack, StackFactory
from paper.embedded import EmbeddedPaper, PaperAdmin
from tests.support.broker import skip_unless_ci

pytestmark = pytest.mark.integration


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return False


class Observed:
    """A stack of its own: a gateway (with a connection name we can find in RabbitMQ) and a worker
    process serving metrics, logging JSON to a file."""

    def __init__(self, stack: Stack, tmp: Any, gateway_amqp_url: str | None = None) -> None:
        self.stack = stack
        self.connection_name = f"aiqt-gateway {stack.namespace}"
        settings = stack.gateway_settings()
        if gateway_amqp_url is not None:
            settings = settings.model_copy(update={"amqp_url": gateway_amqp_url})
        self.gateway = ThreadedUvicorn(create_app(settings, RpcClient(settings, name=self.connection_name))).start()
        stack.gateway = self.gateway
        self.metrics_port = free_port()
        self.worker_log = tmp / "worker.log"
        self.worker: subprocess.Popen[bytes] | None = None

    def start_worker(self) -> None:
        env = {
            **os.environ,
            **self.stack.worker_env(),
            "AIQT_METRICS_PORT": str(self.metrics_port),
            "AIQT_JSON_LOGS": "1",
            "AIQT_LOG_LEVEL": "INFO",
        }
        with self.worker_log.open("wb") as log:
            self.worker = subprocess.Popen([sys.executable, "-m", "aiqt.cli", "worker"], env=env, stderr=log)

    def ready(self) -> httpx.Response:
        return httpx.get(f"{self.gateway.url}/readyz", timeout=10)

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            self.worker.wait(10)


@pytest.fixture
def observed(make_stack: StackFactory, tmp_path: Path) -> Iterator[Observed]:
    o = Observed(make_stack(accounts=1), tmp_path)
    try:
        yield o
    finally:
        o.stop()


def ctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=30, check=True)
    return done.stdout


def test_readiness_follows_workers_and_the_broker_connection(
    amqp_url: str, make_stack: StackFactory, tmp_path: Path
) -> None:
    parsed = urlsplit(amqp_url)
    if shutil.which("rabbitmqctl") is None or parsed.hostname not in {"127.0.0.1", "localhost"}:
        skip_unless_ci("needs rabbitmqctl on the test broker's machine")
    # The gateway gets a RabbitMQ user of its own, so the broker can refuse *it* without touching
    # anything else that uses the shared broker.
    stack = make_stack(accounts=1)
    user, password, vhost = f"gw-{stack.namespace}", secrets.token_hex(12), parsed.path.lstrip("/") or "/"
    ctl("add_user", user, password)
    ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    gateway_url = parsed._replace(netloc=f"{user}:{password}@{parsed.hostname}:{parsed.port or 5672}").geturl()
    observed = Observed(stack, tmp_path, gateway_amqp_url=gateway_url)
    try:
        not_ready = observed.ready()
        assert not_ready.status_code == 503
        assert not_ready.json() == {
            "code": 503,
            "msg": "not ready",
            "data": {"broker": True, "workers": 0, "queued": 0},
        }
        assert httpx.get(f"{observed.gateway.url}/healthz", timeout=5).status_code == 200  # alive, not ready

        observed.start_worker()
        assert wait_for(lambda: observed.ready().status_code == 200, timeout=30), observed.ready().text
        assert observed.ready().json()["data"] == {"broker": True, "workers": 1, "queued": 0}

        # The broker drops the gateway's connection and refuses it back (as while it is down).
        mine = f'{{"connection_name","{observed.connection_name}"}}'
        pids = [
            line.split("\t", 1)[0]
            for line in ctl("list_connections", "pid", "client_properties").splitlines()
            if mine in line
        ]
        assert len(pids) == 1
        ctl("clear_permissions", "-p", vhost, user)
        ctl("close_connection", pids[0], "test: the broker goes away")
        assert wait_for(lambda: observed.ready().status_code == 503, timeout=10), "readiness never dropped"
        down = observed.ready()
        assert (down.status_code, down.json()["data"]) == (503, {"broker": False})
        with observed.stack.client(observed.stack.take_account()) as c:
            refused = c.ping()
            assert (refused.status, refused.code) == (503, 503)  # not accepted: safe to retry
            assert value(scrape(f"{observed.gateway.url}/metrics"), "aiqt_gateway_bus_connected") == 0

            # The broker is back: the gateway reconnects by itself (every second) and serves again.
            ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
            assert wait_for(lambda: observed.ready().status_code == 200, timeout=15), observed.ready().text
            assert c.ping().code == 200
    finally:
        observed.stop()
        stack.stop()
        ctl("delete_user", user)


def test_a_gateway_without_a_broker_is_not_ready(paper_server: EmbeddedPaper, paper_admin: PaperAdmin) -> None:
    # Only settings and an account: nothing of this stack is started, so it has nothing to stop.
    stack = Stack("amqp://guest:guest@127.0.0.1:1/", paper_server.url, paper_admin, accounts=1)
    settings = stack.gateway_settings()
    gateway = ThreadedUvicorn(create_app(settings)).start()
    try:
        ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
        assert (ready.status_code, ready.json()["data"]) == (503, {"broker": False})
        assert httpx.get(f"{gateway.url}/healthz", timeout=5).status_code == 200
        account = stack.take_account()
        with httpx.Client() as http:
            from aiqt.client import AiqtClient

            with AiqtClient(gateway.url, account.api_key, account.api_secret, http=http) as c:
                reply = c.ping()
        assert (reply.status, reply.code) == (503, 503) and reply.headers["retry-after"] == "1"
        assert value(scrape(f"{gateway.url}/metrics"), "aiqt_gateway_bus_connected") == 0
    finally:
        gateway.stop()


def test_metrics_and_logs_after_traffic(observed: Observed) -> None:
    stack = observed.stack
    observed.start_worker()
    assert wait_for(lambda: observed.ready().status_code == 200, timeout=30), observed.ready().text
    account = stack.take_account()
    before = scrape(f"{observed.gateway.url}/metrics")
    stack.admin.fault(kind="http_5xx", path="/fapi/v2/account", apiKey=account.exchange_key, count=1, status=502)
    stack.admin.fault(
        kind="executed_response_lost", method="POST", path="/fapi/v1/order", apiKey=account.exchange_key, count=1
    )
    with stack.client(account) as c:
        assert c.ping().code == 200
        assert c.account_summary().code == 200  # the first /fapi/v2/account answers 502: retried
        opened = c.open_market("BTCUSDT", "BUY", "0.002")  # placed, but the response is lost: reconciled
        assert opened.code == 200, opened.msg
        assert c.cancel_order(123456789, "BTCUSDT").code == 404  # Binance -2011, "Unknown order sent."
        assert c.set_leverage("BTCUSDT", 500).code == 400  # refused by AIQT, never reaches the worker
    command_id = opened.headers["x-command-id"]

    gateway = scrape(f"{observed.gateway.url}/metrics")

    def grew(name: str, **labels: str) -> float:
        return value(gateway, name, **labels) - value(before, name, **labels)

    assert grew("aiqt_gateway_requests_total", command="system.ping", code="200") == 1
    assert grew("aiqt_gateway_requests_total", command="order.open_market", code="200") == 1
    assert grew("aiqt_gateway_requests_total", command="order.cancel", code="404") == 1
    assert grew("aiqt_gateway_requests_total", command="position.leverage", code="400") == 1
    assert grew("aiqt_gateway_request_seconds_count", command="account.summary") == 1
    for stage in ("auth_parse", "publish", "queue", "worker", "roundtrip"):
        assert grew("aiqt_gateway_stage_seconds_count", stage=stage) >= 4, stage
    assert value(gateway, "aiqt_gateway_bus_connected") == 1
    assert value(gateway, "aiqt_queue_consumers") == 1 and ("aiqt_queue_depth", frozenset()) in gateway

    worker = scrape(f"http://127.0.0.1:{observed.metrics_port}/metrics")  # the worker process's own
    assert value(worker, "aiqt_worker_commands_total", type="system.ping", code="200") == 1
    assert value(worker, "aiqt_worker_commands_total", type="order.open_market", code="200") == 1
    assert value(worker, "aiqt_worker_commands_total", type="order.cancel", code="404") == 1
    assert value(worker, "aiqt_worker_command_seconds_count", type="account.summary") == 1
    assert value(worker, "aiqt_worker_queue_wait_seconds_count") == 4
    assert value(worker, "aiqt_exchange_request_seconds_count", path="/fapi/v1/order") >= 2  # lost + lookup
    assert value(worker, "aiqt_exchange_errors_total", code="-2011") >= 1  # the cancel (and its lookups)
    assert value(worker, "aiqt_exchange_errors_total", code="-1001") == 1  # the 502's Binance code
    assert value(worker, "aiqt_exchange_retries_total", path="/fapi/v2/account") == 1
    assert value(worker, "aiqt_reconciliations_total", outcome="found_after_unknown") == 1
    assert ("aiqt_exchange_weight_used_1m", frozenset()) in worker
    assert ("aiqt_exchange_clock_offset_ms", frozenset()) in worker

    # JSON logs: the reconciliation the lost response caused is logged with the command's id.
    observed.stop()
    entries = [json.loads(line) for line in observed.worker_log.read_text().splitlines() if line.startswith("{")]
    assert all({"ts", "level", "logger", "msg"} <= set(e) for e in entries)
    reconciling = [e for e in entries if "reconciling" in e["msg"]]
    assert [e["command_id"] for e in reconciling] == [command_id], entries
