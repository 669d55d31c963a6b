"""Every configured account's exchange endpoints, built one way for the worker and the streamer."""

from __future__ import annotations

import httpx

from worker.binance.client import FapiClient
from worker.binance.clock import ServerClock
from worker.binance.endpoints import Exchange
from worker.limits.governor import AccountGate, Governor
from worker.settings import WorkerSettings


def account_exchanges(
    http: httpx.AsyncClient,
    settings: WorkerSettings,
    *,
    clock: ServerClock | None = None,
    governor: Governor | None = None,
) -> dict[str, Exchange]:
    """Each configured account's endpoints, on one HTTP client and one exchange clock; with a
    governor, every request of each account is admitted by it first (worker.limits)."""
    clock = clock or ServerClock()
    return {
        name: Exchange(
            FapiClient(
                http,
                base_url=settings.exchange_url,
                api_key=creds.api_key,
                api_secret=creds.api_secret,
                clock=clock,
                recv_window=settings.recv_window,
                retry_attempts=settings.retry_attempts,
                gate=AccountGate(governor, name) if governor is not None else None,
            )
        )
        for name, creds in settings.accounts.items()
    }
