"""Shared fixtures: a real RabbitMQ, the paper exchange over real HTTP, a whole AIQT stack."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import find_broker


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    url, container = find_broker()
    yield url
    if container is not None:
        container.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def paper_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from paper.embedded import EmbeddedPaper
    from paper.settings import PaperSettings

    db: Path = tmp_path_factory.mktemp("paper") / "paper.sqlite3"
    settings = PaperSettings(port=0, db=db, admin_token=secrets.token_hex(8), rate_limits=False)
    with EmbeddedPaper(settings) as server:
        yield server


@pytest.fixture(scope="session")
def paper_admin(paper_server: object) -> object:
    from paper.embedded import PaperAdmin

    return PaperAdmin(paper_server.url, paper_server.admin_token)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def stack(amqp_url: str, paper_server: object, paper_admin: object) -> Iterator[object]:
    """One gateway and two workers shared by the command-path tests; each test takes its own account."""
    from harness.stack import Stack

    s = Stack(amqp_url, paper_server.url, paper_admin, accounts=80)  # type: ignore[attr-defined, arg-type]
    s.start(workers=2)
    yield s
    s.stop()


@pytest.fixture
def account(stack: object) -> object:
    return stack.take_account()  # type: ignore[attr-defined]
