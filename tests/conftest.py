"""Shared fixtures: a real RabbitMQ, the paper exchange over real HTTP, and AIQT stacks in front of it.

`make_stack(**options) -> Stack` (function scope) and `make_module_stack` (module scope) build stacks
(`harness.stack.StackFactory`) and stop every stack they made when their scope ends. `stack` is the
one shared by the command-path tests; `account` gives each test an account of its own on it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.stack import Account, Stack, StackFactory
from paper.embedded import EmbeddedPaper, PaperAdmin
from paper.settings import PaperSettings
from tests.support.broker import find_broker


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    url, container = find_broker()
    yield url
    if container is not None:
        container.stop()


@pytest.fixture(scope="session")
def paper_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPaper]:
    db: Path = tmp_path_factory.mktemp("paper") / "paper.sqlite3"
    settings = PaperSettings(port=0, db=db, admin_token=secrets.token_hex(8), rate_limits=False)
    with EmbeddedPaper(settings) as server:
        yield server


@pytest.fixture(scope="session")
def paper_admin(paper_server: EmbeddedPaper) -> PaperAdmin:
    return PaperAdmin(paper_server.url, paper_server.admin_token)


@pytest.fixture
def make_stack(amqp_url: str, paper_server: EmbeddedPaper, paper_admin: PaperAdmin) -> Iterator[StackFactory]:
    """Stacks for one test, stopped after it."""
    with StackFactory(amqp_url, paper_server.url, paper_admin) as make:
        yield make


@pytest.fixture(scope="module")
def make_module_stack(amqp_url: str, paper_server: EmbeddedPaper, paper_admin: PaperAdmin) -> Iterator[StackFactory]:
    """Stacks shared by the tests of one module, stopped after its last test."""
    with StackFactory(amqp_url, paper_server.url, paper_admin) as make:
        yield make


@pytest.fixture(scope="session")
def stack(amqp_url: str, paper_server: EmbeddedPaper, paper_admin: PaperAdmin) -> Iterator[Stack]:
    """One gateway and two workers shared by the command-path tests; each test takes its own account."""
    with StackFactory(amqp_url, paper_server.url, paper_admin) as make:
        yield make(accounts=80, workers=2, gateway_up=True)


@pytest.fixture
def account(stack: Stack) -> Account:
    return stack.take_account()
