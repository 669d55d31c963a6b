"""The per-command lock also holds within one worker (one AMQP connection)."""

from __future__ import annotations

import uuid

import aio_pika
import pytest

from bus import CommandLocked, Topology
from bus.lock import CommandLocks

pytestmark = pytest.mark.integration


async def test_lock_is_exclusive_within_one_connection(amqp_url: str) -> None:
    """An exclusive queue only keeps *other* connections out; two deliveries of one command id to the
    same worker once both ran (and both placed the order)."""
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        locks = CommandLocks(connection, Topology(f"test-{uuid.uuid4().hex[:12]}"))
        async with locks.hold("cmd-1", wait=0):
            with pytest.raises(CommandLocked):
                async with locks.hold("cmd-1", wait=0.2):
                    pass
            async with locks.hold("cmd-2", wait=0):
                pass
        async with locks.hold("cmd-1", wait=2):  # released (the delete runs in the background)
            pass
    finally:
        await connection.close()
