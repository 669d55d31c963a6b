"""The fleet-wide governor against a paper exchange that enforces Binance's limits: a short storm
through two workers never draws a 429 or 418 from the exchange, every request is answered (200 or
AIQT's own 429 with Retry-After), and a 418 at one worker freezes the whole fleet, including a
worker that starts during the ban."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.stack import Stack, StackFactory
from paper.embedded import EmbeddedPaper, PaperAdmin
from paper.settings import PaperSettings
from worker.service import Worker

#: Small, so that a few seconds of polling spend it: the governor must say no, the exchange never.
WEIGHT_LIMIT = 1200
STORM_SECONDS = 10.0
CLIENTS = 32


def _used(admin: PaperAdmin) -> int:
    """The weight the paper exchange counted for this machine this minute (GET /_paper/limits)."""
    return int(admin.limits()["ips"].get("127.0.0.1", {}).get("usedWeight1m", 0))


def _refused(admin: PaperAdmin) -> dict[str, int]:
    """How many 429 and 418 the paper exchange's limits have answered since start, all IPs."""
    ips = admin.limits()["ips"].values()
    return {"429": sum(ip["count429"] for ip in ips), "418": sum(ip["count418"] for ip in ips)}


@pytest.fixture(scope="module")
def limited_paper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedPaper, PaperAdmin]]:
    db: Path = tmp_path_factory.mktemp("limited") / "paper.sqlite3"
    settings = PaperSettings(
        port=0, db=db, admin_token=secrets.token_hex(8), rate_limits=True, weight_limit_1m=WEIGHT_LIMIT
    )
    with EmbeddedPaper(settings) as paper:
        admin = PaperAdmin(paper.url, paper.admin_token)
        yield paper, admin
        admin.close()


@pytest.fixture
def fleet(amqp_url: str, limited_paper: tuple[EmbeddedPaper, PaperAdmin]) -> Iterator[tuple[Stack, list[Worker]]]:
    paper, admin = limited_paper
    with StackFactory(amqp_url, paper.url, admin) as make:  # a paper exchange that enforces the limits
        s = make(accounts=2, worker={"governor": True})
        workers = [s.start_worker(), s.start_worker()]
        s.start_gateway()
        yield s, workers


def _wait_for(check: Any, timeout: float = 5.0) -> None:
    give_up = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < give_up, "condition not met in time"
        time.sleep(0.02)


async def _storm(stack: Stack, seconds: float) -> Counter[tuple[str, int]]:
    answers: Counter[tuple[str, int]] = Counter()
    stop_at = time.monotonic() + seconds
    missing_retry_after = 0

    async def client(i: int) -> None:
        nonlocal missing_retry_after
        account = stack.accounts[i % len(stack.accounts)]
        async with stack.async_client(account) as c:
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                kind = ("klines", "funding", "summary")[(i + n) % 3]
                if kind == "klines":
                    reply = await c.klines(("BTCUSDT", "ETHUSDT")[n % 2], "1m", 120)
                elif kind == "funding":
                    reply = await c.funding_rate("BTCUSDT", 3)
                else:
                    reply = await c.account_summary()
                answers[(kind, reply.status)] += 1
                if reply.status == 429:
                    if not reply.headers.get("retry-after", "").isdigit():
                        missing_retry_after += 1
                    await asyncio.sleep(0.05)

    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    assert missing_retry_after == 0
    return answers


# The ban first: the storm spends this minute's budget of the (module's) paper exchange.


def test_a_ban_at_one_worker_freezes_the_fleet(
    fleet: tuple[Stack, list[Worker]], limited_paper: tuple[EmbeddedPaper, PaperAdmin]
) -> None:
    stack, workers = fleet
    _, admin = limited_paper
    admin.fault(kind="ban_418", count=1, path="/fapi/v2/account")
    with stack.client(stack.accounts[0]) as c:
        banned = c.account_summary()
        assert banned.status == 429 and int(banned.headers["retry-after"]) >= 100
        _wait_for(lambda: all(w.limits.governor.freezes for w in workers))
        # The summary's other reads were sent with the banned one, before anyone knew: let them land.
        _wait_for(lambda: all(w.limits.governor.weight.in_flight == 0 for w in workers))
        used = _used(admin)
        after = [c.klines("BTCUSDT", "1m", 5) for _ in range(4)] + [c.account_summary() for _ in range(4)]
        assert _used(admin) == used  # not one request sent
    assert all(r.status == 429 and int(r.headers["retry-after"]) >= 100 for r in after)
    assert "banned" in after[-1].msg or "418" in after[-1].msg
    # A worker that starts during the ban learns it before its first request.
    late = stack.start_worker()
    freezes = late.limits.governor.freezes
    assert [f.status for f in freezes.values()] == [418]


def test_a_storm_never_draws_a_429_or_418_from_the_exchange(
    fleet: tuple[Stack, list[Worker]], limited_paper: tuple[EmbeddedPaper, PaperAdmin]
) -> None:
    stack, workers = fleet
    _, admin = limited_paper
    before = _refused(admin)
    _wait_for(lambda: all(w.limits.governor.workers == 2 for w in workers))

    answers = asyncio.run(_storm(stack, STORM_SECONDS))

    assert _refused(admin) == before  # not one 429 or 418 from the exchange
    assert set(status for _, status in answers) <= {200, 429}, answers
    for kind in ("klines", "funding", "summary"):
        assert answers[(kind, 200)] > 0, answers
    assert sum(n for (_, status), n in answers.items() if status == 429) > 0, answers  # AIQT said no itself
    assert all(not w.limits.governor.freezes for w in workers)
