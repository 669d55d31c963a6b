"""When an empty start marker proves a first run (worker.service._replay_window_open), and the
marker's lifetime against the longest replay window (bus/marker.py)."""

from __future__ import annotations

import dataclasses
import time

import pytest
from pydantic import ValidationError

from bus.consumer import Delivery
from bus.marker import MARKER_TTL_MS, MAX_REPLAYABLE_MS, REPLAY_MARGIN_MS
from gateway.auth import MAX_RECV_WINDOW, replayable_until
from gateway.settings import GatewaySettings
from schemas.enums import CommandType
from worker.service import _replay_window_open


def delivery(**kw: object) -> Delivery:
    now = int(time.time() * 1000)
    base = Delivery(
        command_id="c1",
        type=CommandType.ORDER_OPEN_MARKET,
        account="main",
        payload={},
        deadline_ms=now + 10_000,
        redelivered=False,
        received_at=0.0,
        queue_wait_ms=None,
        replayable_until=now + 5_000,
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def test_only_a_fresh_delivery_with_a_bounded_replay_window_qualifies() -> None:
    now = int(time.time() * 1000)
    assert _replay_window_open(delivery())
    assert not _replay_window_open(delivery(redelivered=True))
    assert not _replay_window_open(delivery(expired=True))
    assert not _replay_window_open(delivery(replayable_until=None))  # a client key: may come back any day
    assert not _replay_window_open(delivery(replayable_until=now - REPLAY_MARGIN_MS - 1))
    assert not _replay_window_open(delivery(deadline_ms=now + 5_000 + REPLAY_MARGIN_MS + 60_000))


def test_the_marker_outlives_every_possible_replay() -> None:
    # A request signed at T is accepted from T - 1 s (clocks ahead) to T + recvWindow (≤ 60 s); its
    # runs start before its deadline, at most a request timeout later. The marker must outlive that.
    assert MAX_REPLAYABLE_MS >= MAX_RECV_WINDOW + 1000
    with pytest.raises(ValidationError):  # no gateway waits longer than the margin allows
        GatewaySettings(request_timeout=REPLAY_MARGIN_MS / 1000 + 1)
    assert MARKER_TTL_MS > MAX_REPLAYABLE_MS + REPLAY_MARGIN_MS


def test_the_gateway_says_until_when_a_signed_request_can_come_back() -> None:
    assert replayable_until("a=1&timestamp=1000&recvWindow=2500&signature=ab") == 3500
    assert replayable_until("timestamp=1000&signature=ab") == 6000
