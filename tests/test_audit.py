"""The audit journal end to end: commands through the REST API and straight onto the bus, each written
by the worker to the `{ns}.audit` stream, read back with `aiqt audit` (a real subprocess, from a point in
time) with the right outcomes, senders and orders — and not one secret anywhere in it."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import pytest

from aiqt.client import AiqtClient
from harness.servers import LoopThread
from harness.stack import Account, Stack
from schemas.enums import CommandType
from tests.support.broker import skip_unless_ci

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def aiqt_audit(stack: Stack, *args: str, amqp_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIQT_AMQP_URL": amqp_url or stack.amqp_url, "AIQT_BUS_NAMESPACE": stack.namespace}
    return subprocess.run(
        [sys.executable, "-m", "aiqt.cli", "audit", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def journal(stack: Stack, *args: str, until: int = 0) -> list[dict[str, Any]]:
    """Entries `aiqt audit --json` prints, waiting (the journal is written off the reply path) until there are
    at least `until` of them."""
    end = time.monotonic() + 20
    while True:
        out = aiqt_audit(stack, "--json", *args).stdout
        entries = [json.loads(line) for line in out.splitlines() if line.strip()]
        if len(entries) >= until or time.monotonic() > end:
            return entries
        time.sleep(0.3)


def publish(stack: Stack, body: bytes, *, routing_key: str, user_id: str | None = "guest") -> str:
    """A command from an outside AMQP publisher (no gateway, no API key)."""
    message_id = uuid.uuid4().hex

    async def send() -> None:
        connection = await aio_pika.connect(stack.amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(stack.topology.commands_exchange)
            await exchange.publish(
                aio_pika.Message(body, message_id=message_id, user_id=user_id, content_type="application/json"),
                routing_key=routing_key,
            )

    loop = LoopThread()
    try:
        loop.run(send())
    finally:
        loop.stop()
    return message_id


def test_aiqt_audit_shows_each_command_with_its_outcome(stack: Stack, account: Account) -> None:
    stack.admin.set_mark("BTCUSDT", "95000")
    with stack.client(account) as c:
        opened = c.open_market("BTCUSDT", "BUY", "0.010", stop_loss="90000", take_profit="99000", idempotency_key="o-1")
        leverage = c.set_leverage("ETHUSDT", 9)
        missing = c.cancel_order(987654321, "BTCUSDT")
        summary = c.account_summary()
    assert (opened.code, leverage.code, missing.code, summary.code) == (200, 200, 404, 200)

    entries = journal(stack, "--since", "10m", "--account", account.name, until=4)
    by_type = {e["type"]: e for e in entries}
    assert set(by_type) == {"order.open_market", "position.leverage", "order.cancel", "account.summary"}
    assert all(e["account"] == account.name and e["keyId"] == account.api_key for e in entries)
    assert all(e["amqpUser"] is None and e["durationMs"] > 0 and e["worker"] for e in entries)

    entry = by_type["order.open_market"]
    assert (entry["code"], entry["msg"], entry["idempotencyKey"]) == (200, "订单提交成功", "o-1")
    assert entry["payload"]["symbol"] == "BTCUSDT" and entry["payload"]["quantity"] == 0.010
    legs = [opened.data["market"], opened.data["stopLoss"], opened.data["takeProfit"]]
    assert entry["orderIds"] == [leg["orderId"] for leg in legs]
    assert entry["clientOrderIds"] == [leg["clientOrderId"] for leg in legs]
    assert (by_type["order.cancel"]["code"], by_type["order.cancel"]["msg"]) == (404, missing.msg)
    assert by_type["order.cancel"]["payload"] == {"orderId": 987654321, "symbol": "BTCUSDT"}
    assert by_type["position.leverage"]["payload"] == {"symbol": "ETHUSDT", "leverage": 9}
    assert by_type["account.summary"]["orderIds"] == []  # a read's order list is not its doing
    # In append order: with two workers, a command that started earlier may be written later.

    table = aiqt_audit(stack, "--since", "10m", "--account", account.name).stdout
    assert "order.open_market" in table and "订单提交成功" in table and str(legs[0]["orderId"]) in table
    assert "Order does not exist" in table


def test_time_offset_and_filters(stack: Stack, account: Account) -> None:
    with stack.client(account) as c:
        assert c.set_leverage("BTCUSDT", 3).ok
    time.sleep(1.2)
    cutoff = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    time.sleep(1.0)
    with stack.client(account) as c:
        assert c.set_leverage("BTCUSDT", 4).ok
        assert c.funding_rate("BTCUSDT").ok
    after = journal(stack, "--since", cutoff, "--account", account.name, until=2)
    assert [(e["type"], e["payload"].get("leverage")) for e in after] == [
        ("position.leverage", 4),
        ("market.funding_rate", None),
    ]
    leverage_only = journal(stack, "--since", "all", "--account", account.name, "--type", "position.leverage", until=2)
    assert [e["payload"]["leverage"] for e in leverage_only] == [3, 4]


def test_outside_publishers_are_named_by_their_rabbitmq_user(stack: Stack, account: Account) -> None:
    body = json.dumps({"type": CommandType.ACCOUNT_SUMMARY.value, "account": account.name, "payload": {}}).encode()
    command_id = publish(stack, body, routing_key=CommandType.ACCOUNT_SUMMARY.value)
    entries = [e for e in journal(stack, "--since", "10m", "--account", account.name, until=1)]
    (entry,) = [e for e in entries if e["commandId"] == command_id]
    assert (entry["amqpUser"], entry["keyId"], entry["code"]) == ("guest", None, 200)


def test_no_secret_in_the_journal(stack: Stack, account: Account) -> None:
    """A spy over the whole journal of this stack: every entry any test wrote, including a poison message whose
    body carries an exchange secret."""
    stack.admin.set_mark("BTCUSDT", "95000")
    with stack.client(account) as c:
        assert c.open_market("BTCUSDT", "SELL", "0.002", stop_loss="99000").ok
        assert c.close_market("BTCUSDT", "SHORT").ok
    # an outside publisher's malformed command, carrying a secret in a field no command has
    poison = {"type": "order.open_market", "account": account.name, "payload": {}, "apiSecret": account.exchange_secret}
    poison_id = publish(stack, json.dumps(poison).encode(), routing_key="order.open_market")
    # a well-formed message whose payload has a field no command has, holding a client secret
    stray = {"type": "account.summary", "account": account.name, "payload": {"secret": account.api_secret}}
    stray_id = publish(stack, json.dumps(stray).encode(), routing_key="account.summary")
    # with a bad signature: refused at the gateway, so never a command (and never journaled)
    assert stack.gateway is not None
    bad = AiqtClient(stack.gateway.url, account.api_key, "not-the-secret")
    with bad:
        assert bad.account_summary().status == 401

    entries = journal(stack, "--since", "all", until=1)
    deadline = time.monotonic() + 20
    while not {poison_id, stray_id} <= {e["commandId"] for e in entries}:  # written off the reply path
        assert time.monotonic() < deadline, "the outside publishers' commands were never journaled"
        time.sleep(0.3)
        entries = journal(stack, "--since", "all")
    assert any(e["commandId"] == poison_id and e["deadLetter"] and e["code"] == 400 for e in entries)
    assert any(e["commandId"] == stray_id and e["code"] == 400 and e["payload"] == {} for e in entries)
    raw = aiqt_audit(stack, "--since", "all", "--json").stdout + aiqt_audit(stack, "--since", "all").stdout
    assert len(entries) >= 3
    for a in stack.accounts:
        for secret in (a.api_secret, a.exchange_secret):
            assert secret not in raw, f"a secret of {a.name} is in the audit journal"


def test_an_auditor_needs_only_read_permission_on_the_stream(stack: Stack, account: Account) -> None:
    """docs/amqp.md: `set_permissions auditor '^$' '^$' '^aiqt\\.audit$'` is enough to run `aiqt audit`."""
    if shutil.which("rabbitmqctl") is None:
        skip_unless_ci("needs rabbitmqctl to add a user")
    with stack.client(account) as c:
        assert c.set_leverage("BTCUSDT", 6).ok
    journal(stack, "--since", "10m", "--account", account.name, until=1)  # written
    parsed = urlsplit(stack.amqp_url)
    if parsed.hostname not in {"127.0.0.1", "localhost"}:
        skip_unless_ci("rabbitmqctl manages only a local broker")
    user, password = f"auditor-{stack.namespace}", secrets.token_hex(12)

    def ctl(*args: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=30)

    ctl("add_user", user, password)
    try:
        vhost = parsed.path.lstrip("/") or "/"
        ctl("set_permissions", "-p", vhost, user, "^$", "^$", rf"^{re.escape(stack.namespace)}\.audit$")
        url = parsed._replace(netloc=f"{user}:{password}@{parsed.hostname}:{parsed.port or 5672}").geturl()
        out = aiqt_audit(stack, "--since", "10m", "--account", account.name, "--json", amqp_url=url).stdout
    finally:
        ctl("delete_user", user)
    assert [json.loads(line)["payload"] for line in out.splitlines()] == [{"symbol": "BTCUSDT", "leverage": 6}]
