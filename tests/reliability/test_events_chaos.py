"""The events-out chaos run (harness/events_chaos.py) in a CI-sized version: 40 orders with SL and TP,
random marks, two SIGKILLs of the leading streamer, two dropped exchange connections, an expired
listenKey and a client that drops its own connection — and still every fill and every fired stop at
the exchange reaches the account's WebSocket client, naming the right command, with seq gap-free."""

from __future__ import annotations

import pytest

from harness.events_chaos import Config, run_events_chaos

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(110)
async def test_events_chaos_short_run(amqp_url: str, paper_server: object, paper_admin: object) -> None:
    cfg = Config(orders=40, seed=3, accounts=3, rate=8.0, kills=2, drops=2, expiries=1, client_drops=1)
    report = await run_events_chaos(cfg, amqp_url, paper_server.url, paper_admin)  # type: ignore[attr-defined, arg-type]
    summary = report.summary()
    print(summary)
    assert (report.kills, report.drops, report.expiries, report.client_drops) == (2, 2, 1, 1), summary
    assert report.fills >= 40 and report.fired_stops >= 3, summary
    assert report.takeovers_seen >= 2, summary
    assert (report.missed_fills, report.missed_stops, report.wrong_command, report.seq_holes) == (0, 0, 0, 0), summary
