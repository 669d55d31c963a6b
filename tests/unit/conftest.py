"""Unit tests: no broker, no socket. HTTP goes through `httpx.MockTransport` (tests/unit/fake_fapi.py).

The root conftest's fixtures (RabbitMQ, the paper exchange, a stack) are session-scoped and only
start when a test asks for them; nothing here does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.unit.fake_fapi import FakeFapi, FakeSleep, make_exchange
from worker.binance.endpoints import Exchange


@dataclass
class Rig:
    fake: FakeFapi
    exchange: Exchange
    sleep: FakeSleep


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    fake = FakeFapi()
    exchange, sleep, http = make_exchange(fake)
    yield Rig(fake, exchange, sleep)
    await http.aclose()
