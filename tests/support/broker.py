"""Finding a RabbitMQ for the integration tests.

`AIQT_TEST_AMQP_URL` (default the local broker). If none answers: testcontainers starts one where a
Docker engine exists; otherwise the tests skip — except under CI (`CI` set), where they fail, so
CI can never pass by skipping.
"""

from __future__ import annotations

import os
from typing import NoReturn, Protocol

import pytest

from harness.broker import DEFAULT_URL, answers


class Container(Protocol):
    """What the tests need of a testcontainers container: stopping it."""

    def stop(self) -> None: ...


def skip_unless_ci(reason: str) -> NoReturn:
    """Skip a test that cannot run here — but fail under CI, so CI never passes by skipping."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI requires it", pytrace=False)
    pytest.skip(reason)


def find_broker() -> tuple[str, Container | None]:
    """(amqp url, container to stop or None)."""
    url = os.environ.get("AIQT_TEST_AMQP_URL", DEFAULT_URL)
    if answers(url):
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
