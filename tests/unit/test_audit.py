"""The audit writer without a broker: what an entry holds, and that an entry that cannot be written is
counted and logged, never dropped silently, and never holds up the caller."""

from __future__ import annotations

import argparse
import asyncio
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from aiqt.audit import parse_since
from bus import Topology, audit
from bus.audit import AuditLog, AuditRecord, encode, entry_of
from schemas import codec
from schemas.audit import IDEMPOTENCY_KEY_HEADER, KEY_ID_HEADER, AuditEntry


def record(type_: str = "order.open_market", **overrides: Any) -> AuditRecord:
    reply = {
        "code": 200,
        "msg": "订单提交成功",
        "data": {
            "market": {"orderId": 11, "clientOrderId": "c-M"},
            "stopLoss": {"orderId": 12, "clientOrderId": "c-SL"},
            "takeProfit": None,
        },
    }
    fields: dict[str, Any] = {
        "command_id": "cmd-1",
        "type": type_,
        "account": "main",
        "payload": {"symbol": "BTCUSDT", "quantity": Decimal("0.010")},
        "headers": {KEY_ID_HEADER: b"key-abc", IDEMPOTENCY_KEY_HEADER: "k-1", "x-deadline": 1},
        "user_id": None,
        "code": 200,
        "reply": codec.dumps(reply),
        "duration_ms": 12.34567,
        "queue_ms": 0.5,
    }
    return AuditRecord(**{**fields, **overrides})


def test_an_entry_names_the_sender_the_outcome_and_the_orders() -> None:
    entry = entry_of(record(), "w1")
    assert (entry.keyId, entry.idempotencyKey, entry.amqpUser) == ("key-abc", "k-1", None)
    assert (entry.code, entry.msg, entry.orderIds, entry.clientOrderIds) == (
        200,
        "订单提交成功",
        [11, 12],
        ["c-M", "c-SL"],
    )
    assert (entry.durationMs, entry.worker) == (12.346, "w1")
    # amounts keep their digits in the journal, as the command carried them
    assert b'"quantity":0.010' in encode(entry)
    assert AuditEntry.model_validate(codec.loads(encode(entry))) == entry.model_copy(
        update={"payload": {"symbol": "BTCUSDT", "quantity": Decimal("0.010")}}
    )


def test_only_the_commands_own_fields_are_journaled() -> None:
    stray = {"symbol": "BTCUSDT", "quantity": "1", "apiSecret": "s3cr3t"}
    assert entry_of(record(payload=stray), "w").payload == {"symbol": "BTCUSDT", "quantity": "1"}
    assert entry_of(record("no.such.type", payload=stray), "w").payload == {}


def test_a_read_lists_no_orders_and_an_unreadable_reply_still_makes_an_entry() -> None:
    assert entry_of(record("account.summary"), "w").orderIds == []
    broken = entry_of(record(reply=b"not json", code=500), "w")
    assert (broken.code, broken.msg, broken.orderIds) == (500, "", [])


class FailingExchange:
    name = "x"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.published: list[bytes] = []

    async def publish(self, message: Any, routing_key: str, **kwargs: Any) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("broker away")
        self.published.append(message.body)


def _log_with(exchange: FailingExchange, **kwargs: Any) -> tuple[AuditLog, list[str], list[int]]:
    failures: list[str] = []
    written: list[int] = []
    log = AuditLog(Topology("unit"), worker="w", on_failure=failures.append, on_written=written.append, **kwargs)
    log._exchange = exchange  # type: ignore[assignment]
    return log, failures, written


async def test_writes_are_retried_through_a_broker_blip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit, "RETRY_DELAY", 0.001)
    exchange = FailingExchange(failures=2)
    log, failures, written = _log_with(exchange)
    log._task = asyncio.create_task(log._run())
    log.record(record())
    await log.close()
    assert failures == [] and sum(written) == 1 and len(exchange.published) == 1


async def test_an_entry_never_written_is_counted_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(audit, "RETRY_DELAY", 0.001)
    log, failures, written = _log_with(FailingExchange(failures=10**6))
    log._task = asyncio.create_task(log._run())
    with caplog.at_level(logging.ERROR, logger="aiqt.bus.audit"):
        log.record(record(command_id="lost-1"))
        await log.close()
    assert failures == ["not confirmed by the broker"] and written == []
    assert "lost-1" in caplog.text


async def test_a_full_buffer_counts_instead_of_blocking() -> None:
    log, failures, _ = _log_with(FailingExchange(failures=0), max_pending=2)
    for i in range(3):
        log.record(record(command_id=f"c{i}"))  # no writer running: the third finds the buffer full
    assert failures == ["buffer full"]
    log.record(record("system.ping"))  # pings are not journaled at all
    assert failures == ["buffer full"]
    await log.close()
    assert failures == ["buffer full", "shut down before written", "shut down before written"]


def test_since_accepts_durations_times_and_all() -> None:
    now = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    assert parse_since("90m", now=now) == now - timedelta(minutes=90)
    assert parse_since("2d", now=now) == now - timedelta(days=2)
    assert parse_since("2026-11-29T07:30") == datetime(2026, 11, 29, 7, 30, tzinfo=UTC)
    assert parse_since("all") == "first"
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        parse_since("yesterday")


async def test_stopping_mid_retry_counts_what_was_not_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit, "RETRY_DELAY", 30.0)  # stuck in a retry when the worker stops
    log, failures, _ = _log_with(FailingExchange(failures=10**6))
    log._task = asyncio.create_task(log._run())
    log.record(record(command_id="a"))
    log.record(record(command_id="b"))
    await asyncio.sleep(0.05)
    await log.close(timeout=0.05)
    assert failures == ["shut down before written"] * 2
    log.record(record(command_id="late"))  # a command answered after the stop
    assert len(failures) == 3
