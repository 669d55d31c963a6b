"""system.ping: no exchange call, no account. Readiness checks and benchmarks use it to measure the
bus and the worker alone."""

from __future__ import annotations

import time

from schemas import errors
from schemas.replies import PingData
from worker.outcome import Outcome


def ping(worker: str) -> Outcome:
    return Outcome(errors.OK, "pong", PingData(pong=True, worker=worker, time=int(time.time() * 1000)))
