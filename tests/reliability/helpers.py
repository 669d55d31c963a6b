"""Helpers for the reliability tests: faults scoped to one account, worker processes that can be
killed, and waiting for the bus. (What the exchange holds for one command: harness/holdings.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import httpx

from harness.stack import Account, Stack


def fault(stack: Stack, account: Account, kind: str, **kw: Any) -> dict[str, Any]:
    """Arm a paper fault that only this account's requests can hit."""
    return stack.admin.fault(kind=kind, apiKey=account.exchange_key, **kw)


def armed(stack: Stack, account: Account) -> list[dict[str, Any]]:
    return [f for f in stack.admin.faults() if f.get("apiKey") == account.exchange_key]


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.02) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def consumers(stack: Stack) -> int:
    """Workers consuming the stack's command queue, as the gateway's /readyz reports them."""
    assert stack.gateway is not None
    try:
        body = httpx.get(f"{stack.gateway.url}/readyz", timeout=2).json()
    except httpx.HTTPError:
        return -1
    data = body.get("data") or {}
    return int(data.get("workers", 0))


def wait_for_workers(stack: Stack, n: int, timeout: float = 15.0) -> None:
    wait_until(lambda: consumers(stack) == n, timeout, f"{n} worker(s) consuming")


def spawn_worker(
    stack: Stack, *, log_path: str | None = None, env: dict[str, str] | None = None, **overrides: Any
) -> subprocess.Popen[bytes]:
    """`aiqt worker` as an OS process (so it can be SIGKILLed), optionally logging at DEBUG to a file,
    with `env` (AIQT_* variables) on top of the stack's."""
    if log_path is None and env is None:
        return stack.spawn_worker(**overrides)
    env = {**os.environ, **stack.worker_env(**overrides), **(env or {})}
    if log_path is None:
        log_path = os.devnull
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aiqt.cli", "worker", "--log-level", "DEBUG"], env=env, stdout=out, stderr=out
        )
    return stack.adopt(proc)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a worker process this test started: no cleanup, no ack, no goodbye to RabbitMQ."""
    proc.kill()
    proc.wait(10)
