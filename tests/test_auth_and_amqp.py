"""REST auth failures, and the same commands from an outside AMQP publisher."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from typing import Any

import aio_pika
import httpx
import pytest

from aiqt.client import sign_request
from harness.stack import Account, Stack
from schemas import codec

pytestmark = pytest.mark.integration


LEVERAGE = "/api/position/leverage"
LEVERAGE_BODY = b'{"symbol": "BTCUSDT", "leverage": 3}'


def _send(
    stack: Stack,
    account: Account,
    *,
    key: str | None = None,
    secret: str | None = None,
    query: str | None = None,
    body: bytes = LEVERAGE_BODY,
    sent_body: bytes | None = None,
) -> httpx.Response:
    assert stack.gateway is not None
    q = query if query is not None else sign_request(secret or account.api_secret, "POST", LEVERAGE, None, body)
    headers = {"X-API-KEY": key if key is not None else account.api_key, "Content-Type": "application/json"}
    return httpx.post(f"{stack.gateway.url}{LEVERAGE}?{q}", content=sent_body or body, headers=headers)


def test_auth_failures(stack: Stack, account: Account) -> None:
    now = int(time.time() * 1000)
    cases = {
        "no key": (_send(stack, account, key=""), 401, 401, "Invalid API key"),
        "unknown key": (_send(stack, account, key="key-nobody"), 401, 401, "Invalid API key"),
        "wrong secret": (
            _send(stack, account, secret="0" * 32),
            401,
            -1022,
            "Signature for this request is not valid.",
        ),
        "tampered body": (
            _send(stack, account, sent_body=b'{"symbol": "BTCUSDT", "leverage": 125}'),
            401,
            -1022,
            "Signature for this request is not valid.",
        ),
        "stale": (
            _send(
                stack,
                account,
                query=sign_request(account.api_secret, "POST", LEVERAGE, None, LEVERAGE_BODY, now_ms=now - 60_000),
            ),
            400,
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
        ),
        "future": (
            _send(
                stack,
                account,
                query=sign_request(account.api_secret, "POST", LEVERAGE, None, LEVERAGE_BODY, now_ms=now + 5_000),
            ),
            400,
            -1021,
            "Timestamp for this request was 1000ms ahead of the server's time.",
        ),
    }
    for name, (response, status, code, msg) in cases.items():
        assert (response.status_code, response.json()) == (status, {"code": code, "msg": msg, "data": None}), name
    ok = _send(stack, account)
    assert ok.status_code == 200 and ok.json()["data"]["leverage"] == 3


def test_signature_missing_or_malformed_body(stack: Stack, account: Account) -> None:
    assert stack.gateway is not None
    no_sig = httpx.post(
        f"{stack.gateway.url}/api/position/leverage?timestamp={int(time.time() * 1000)}",
        headers={"X-API-KEY": account.api_key},
    )
    assert (no_sig.status_code, no_sig.json()["code"]) == (401, -1022)
    bad_json = _send(stack, account, body=b"{nope")
    assert (bad_json.status_code, bad_json.json()["code"]) == (400, 400)
    assert bad_json.json()["msg"].startswith("body:")
    huge = _send(stack, account, body=b'{"symbol": "' + b"A" * 70_000 + b'"}')
    assert (huge.status_code, huge.json()["code"]) == (400, 400) and "larger than" in huge.json()["msg"]


async def _publish(
    stack: Stack, command: str, account: str, payload: dict[str, object], message_id: str
) -> dict[str, Any]:
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        replies = await channel.declare_queue(exclusive=True)
        exchange = await channel.get_exchange(stack.topology.commands_exchange)
        await exchange.publish(
            aio_pika.Message(
                codec.dumps({"type": command, "account": account, "payload": payload}),
                message_id=message_id,
                correlation_id=message_id,
                reply_to=replies.name,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers={"x-deadline": int(time.time() * 1000) + 10_000},
            ),
            routing_key=command,
            mandatory=True,
        )
        async with replies.iterator(timeout=10) as it:
            async for message in it:
                assert message.correlation_id == message_id
                reply: dict[str, object] = codec.loads(message.body)
                return reply
    raise AssertionError("no reply")


async def test_outside_amqp_publisher(stack: Stack, account: Account) -> None:
    cid = uuid.uuid4().hex
    opened = await _publish(
        stack,
        "order.open_market",
        account.name,
        {"symbol": "BTCUSDT", "side": "BUY", "quantity": Decimal("0.003")},
        cid,
    )
    assert opened["code"] == 200
    again = await _publish(
        stack,
        "order.open_market",
        account.name,
        {"symbol": "BTCUSDT", "side": "BUY", "quantity": Decimal("0.003")},
        cid,
    )
    assert again["data"] == opened["data"]  # same command id: found at the exchange, not placed again
    summary = await _publish(stack, "account.summary", account.name, {}, uuid.uuid4().hex)
    assert summary["code"] == 200
    positions = summary["data"]["positions"]
    assert [(p["symbol"], p["quantity"]) for p in positions] == [("BTCUSDT", Decimal("0.003"))]
    invalid = await _publish(
        stack, "position.leverage", account.name, {"symbol": "BTCUSDT", "leverage": 500}, uuid.uuid4().hex
    )
    assert (invalid["code"], invalid["msg"]) == (400, "Invalid leverage (1-125 allowed)")
    unknown = await _publish(stack, "account.summary", "nobody", {}, uuid.uuid4().hex)
    assert unknown["code"] == 400
    state = await asyncio.to_thread(stack.state, account)
    assert len(state["orders"]) == 1


def test_two_workers_both_do_work(stack: Stack, account: Account) -> None:
    with stack.client(account) as c:
        workers = {c.ping().data["worker"] for _ in range(60)}
    assert len(workers) == 2
