"""Secrets (issue item 10): exchange secrets and client secrets never appear in logs, replies or bus
messages. (Refused requests — missing/unknown key, bad signature, stale/future timestamp, tampered
body — are covered by tests/test_auth_and_amqp.py; here they are only sent so that their replies and
logs are searched too.)

Captured: the gateway's log records (in process, caplog at DEBUG), a spawned worker's own stderr at
DEBUG (its HTTP client logs every URL it calls), every reply body and header, and every message on
the command exchange (a spy queue bound to it for every command type)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest

from aiqt.client import Reply, sign_request
from harness.servers import LoopThread
from harness.stack import Stack, StackFactory
from schemas.enums import CommandType
from tests.reliability.helpers import fault, kill, spawn_worker, wait_for_workers

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Spy:
    """A queue of our own bound to the command exchange for every command type: a copy of every
    command any publisher sends, as the broker carries it (body, headers, properties)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.loop = LoopThread()
        self.messages: list[bytes] = []
        self.loop.run(self._start())

    async def _start(self) -> None:
        self.connection = await aio_pika.connect(self.stack.amqp_url)
        channel = await self.connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        exchange = await channel.get_exchange(self.stack.topology.commands_exchange)
        for command in CommandType:
            await queue.bind(exchange, routing_key=command.value)
        await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        props = {
            "headers": message.headers,
            "message_id": message.message_id,
            "correlation_id": message.correlation_id,
            "reply_to": message.reply_to,
            "app_id": message.app_id,
            "user_id": message.user_id,
            "type": message.type,
        }
        self.messages.append(message.body + json.dumps(props, default=str).encode())

    def close(self) -> None:
        self.loop.run(self.connection.close())
        self.loop.stop()


@pytest.fixture(scope="module")
def secret_stack(make_module_stack: StackFactory) -> Stack:
    return make_module_stack(accounts=2, gateway_up=True, worker={"recv_window": 3000, "exchange_timeout": 1.5})


def _reply_text(reply: Reply | httpx.Response) -> str:
    if isinstance(reply, httpx.Response):
        return reply.text + json.dumps(dict(reply.headers))
    return json.dumps({"code": reply.code, "msg": reply.msg, "data": reply.data}, default=str) + json.dumps(
        dict(reply.headers)
    )


def test_secrets_never_leak(secret_stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    stack = secret_stack
    good, broken = stack.take_account(), stack.take_account()
    wrong_secret = uuid.uuid4().hex + uuid.uuid4().hex  # what the worker is (wrongly) given for `broken`
    log_path = tmp_path / "worker.log"
    spy = Spy(stack)
    # The worker gets a wrong exchange secret for `broken`: the exchange refuses it (-1022), and that
    # error path must not echo the secret either.
    env_accounts = {
        good.name: {"api_key": good.exchange_key, "api_secret": good.exchange_secret},
        broken.name: {"api_key": broken.exchange_key, "api_secret": wrong_secret},
    }
    worker = spawn_worker(stack, log_path=str(log_path), env={"AIQT_ACCOUNTS": json.dumps(env_accounts)})
    texts: list[str] = []
    try:
        wait_for_workers(stack, 1)
        stack.admin.set_mark("BTCUSDT", "95000")
        fault(stack, good, "executed_response_lost", method="POST", path="/fapi/v1/order", lostAs="-1007")
        fault(stack, good, "rate_limit_429", method="GET", path="/fapi/v2/account")
        fault(stack, good, "timestamp_1021", method="POST", path="/fapi/v1/algoOrder")
        with stack.client(good) as c:
            replies = [
                c.open_market("BTCUSDT", "BUY", "0.004", stop_loss="90000", take_profit="99000"),
                c.account_summary(),
                c.klines("BTCUSDT", "1m", 5),
                c.funding_rate("BTCUSDT", 3),
                c.set_leverage("BTCUSDT", 5),
                c.set_margin_mode("BTCUSDT", "CROSSED"),
                c.cancel_order(123456789, "BTCUSDT"),
                c.modify_order(123456789, "BTCUSDT", "BUY", "0.002", "90000"),
                c.close_market("BTCUSDT", "LONG"),
                c.request(
                    "POST", "/api/order/open/market", None, {"symbol": "BTCUSDT", "side": "BUY", "quantity": "abc"}
                ),
                c.ping(),
            ]
        with stack.client(broken) as c:
            replies += [c.open_market("BTCUSDT", "BUY", "0.002"), c.account_summary()]
        assert replies[0].code == 200 and replies[-1].code == 500, [(r.code, r.msg) for r in replies]
        texts += [_reply_text(r) for r in replies]
        texts += [_reply_text(r) for r in _refused_requests(stack, good)]
        time.sleep(0.3)
    finally:
        kill(worker)
        spy.close()
        stack.admin.unpin("BTCUSDT")

    worker_log = log_path.read_text(errors="replace")
    assert "DEBUG" in worker_log and "WARNING" in worker_log, worker_log[-2000:]  # it did log, verbosely
    gateway_log = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    bus = b"\n".join(spy.messages).decode(errors="replace")
    assert len(spy.messages) >= len(replies) - 1, len(spy.messages)  # all but the one refused at the gateway

    secrets = {
        "exchange secret": good.exchange_secret,
        "wrong exchange secret": wrong_secret,
        "client secret": good.api_secret,
        "other client secret": broken.api_secret,
    }
    places = {"worker log": worker_log, "gateway log": gateway_log, "replies": "\n".join(texts), "bus": bus}
    leaks = [(what, where) for what, s in secrets.items() for where, text in places.items() if s in text]
    assert leaks == []
    # The bus carries no exchange credentials at all, not even the API keys.
    assert good.exchange_key not in bus and broken.exchange_key not in bus
    assert good.exchange_key not in places["replies"]


LEVERAGE = "/api/position/leverage"


def _refused_requests(stack: Stack, account: Any) -> list[httpx.Response]:
    """Requests the gateway must refuse: their replies and logs are searched too."""
    assert stack.gateway is not None
    url = f"{stack.gateway.url}{LEVERAGE}"
    body = b'{"symbol": "BTCUSDT", "leverage": 3}'
    now = int(time.time() * 1000)
    good = sign_request(account.api_secret, "POST", LEVERAGE, None, body)
    wrong_secret = sign_request("0" * 32, "POST", LEVERAGE, None, body)
    stale = sign_request(account.api_secret, "POST", LEVERAGE, None, body, now_ms=now - 60_000)
    future = sign_request(account.api_secret, "POST", LEVERAGE, None, body, now_ms=now + 60_000)
    tampered = b'{"symbol": "BTCUSDT", "leverage": 100}'
    h = {"X-API-KEY": account.api_key, "Content-Type": "application/json"}
    return [
        httpx.post(f"{url}?{good}", content=body, headers={"Content-Type": "application/json"}),
        httpx.post(f"{url}?{good}", content=body, headers={**h, "X-API-KEY": "key-nobody"}),
        httpx.post(f"{url}?{wrong_secret}", content=body, headers=h),
        httpx.post(f"{url}?{good}", content=tampered, headers=h),
        httpx.post(f"{url}?{stale}", content=body, headers=h),
        httpx.post(f"{url}?{future}", content=body, headers=h),
    ]
