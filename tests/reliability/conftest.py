"""Fixtures of the reliability tests.

`rstack` is a stack of their own (own bus namespace, two in-process workers, one gateway) with a short
recvWindow and exchange timeout, so that reconciliation after an unknown outcome takes seconds, not
the production defaults' tens of seconds. Tests that kill workers or need other settings build a
`Stack` of their own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.stack import Account, Stack, StackFactory
from paper.embedded import EmbeddedPaper, PaperAdmin

#: recvWindow (ms) and exchange timeout (s) of the reliability stacks: an order sent and not answered
#: within EXCHANGE_TIMEOUT is reconciled, and is certainly dead RECV_WINDOW + 1 s after it was sent.
RECV_WINDOW = 3000
EXCHANGE_TIMEOUT = 1.5
REQUEST_TIMEOUT = 25.0

WORKER = {"recv_window": RECV_WINDOW, "exchange_timeout": EXCHANGE_TIMEOUT}


@pytest.fixture(scope="package")
def rstack(amqp_url: str, paper_server: EmbeddedPaper, paper_admin: PaperAdmin) -> Iterator[Stack]:
    with StackFactory(amqp_url, paper_server.url, paper_admin) as make:
        yield make(accounts=50, workers=2, gateway_up=True, worker=WORKER, gateway={"request_timeout": REQUEST_TIMEOUT})


@pytest.fixture
def racct(rstack: Stack) -> Account:
    return rstack.take_account()
