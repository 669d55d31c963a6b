"""The chaos run (bench/chaos.py) in a CI-sized version: a few hundred order commands with faults,
worker kills, client retries and duplicates, then nothing doubled, nothing lost, nothing hung, no
position left unprotected and unflagged. (No broker restart here: test_broker_restart.py does that.)"""

from __future__ import annotations

import pytest

from harness.chaos import Config, run_chaos
from paper.embedded import EmbeddedPaper, PaperAdmin

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(110)
async def test_chaos_short_run(amqp_url: str, paper_server: EmbeddedPaper, paper_admin: PaperAdmin) -> None:
    cfg = Config(commands=150, seed=11, concurrency=12, accounts=10, workers=2, kill_every=2.5)
    report = await run_chaos(cfg, amqp_url, paper_server.url, paper_admin)
    print(report.text())
    assert report.commands_sent == 150
    assert sum(report.faults_armed.values()) >= 40 and report.workers_killed >= 1, report.text()
    assert (report.duplicates, report.lost, report.mismatched, report.hung, report.protection_gaps) == (
        0,
        0,
        0,
        0,
        0,
    ), report.text()
    assert report.orders_at_exchange >= 120, report.text()
