"""Finding a RabbitMQ for the integration tests.

`AIQT_TEST_AMQP_URL` (default the local broker). If none answers: testcontainers starts one where a
Docker engine exists; otherwise the tests skip — except under CI (`CI` set), where they fail, so
CI can never pass by skipping.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn
from urllib.parse import urlparse

import pytest

from bus import Topology
from bus.connection import connect_first

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


def _answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5672), timeout=2):
            return True
    except OSError:
        return False


def skip_unless_ci(reason: str) -> NoReturn:
    """Skip a test that cannot run here — but fail under CI, so CI never passes by skipping."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI requires it", pytrace=False)
    pytest.skip(reason)


def find_broker() -> tuple[str, object | None]:
    """(amqp url, container to stop or None)."""
    url = os.environ.get("AIQT_TEST_AMQP_URL", DEFAULT_URL)
    if _answers(url):
        return url, None
    try:
        from testcontainers.rabbitmq import RabbitMqContainer

        container = RabbitMqContainer("rabbitmq:3.13-management")
        container.start()
        host = container.get_container_host_ip()
        port = container.get_exposed_port(5672)
        return f"amqp://guest:guest@{host}:{port}/", container
    except Exception as exc:
        reason = f"no RabbitMQ answers at {url} and none could be started with testcontainers ({exc!r})"
        skip_unless_ci(reason)


async def delete_namespace(amqp_url: str, topology: Topology) -> None:
    connection, _ = await connect_first(amqp_url)  # a cluster's URL list: any node that answers
    async with connection:
        channel = await connection.channel()
        for queue in (
            topology.commands_queue,
            topology.dead_queue,
            topology.reads_queue,
            f"{topology.namespace}.governor.freeze",
        ):
            await channel.queue_delete(queue)
        for exchange in (topology.commands_exchange, topology.dead_exchange, f"{topology.namespace}.governor"):
            await channel.exchange_delete(exchange)
