"""Worker settings (prefix AIQT_). Built once in `aiqt worker` and passed in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from bus.config import BusSettings
from worker.risk import RiskLimits


class ExchangeCredentials(BaseModel):
    """An account's exchange API key pair. Lives only in the worker, never on the bus."""

    api_key: str = Field(min_length=1)
    api_secret: SecretStr


class WorkerSettings(BusSettings):
    exchange_url: str = Field(
        "http://127.0.0.1:8100",
        description="fapi base URL: the paper exchange (default), https://demo-fapi.binance.com or https://fapi.binance.com",
    )
    accounts: dict[str, ExchangeCredentials] = Field(
        default_factory=dict,
        description='Exchange credentials per account: {"main": {"api_key": "...", "api_secret": "..."}}',
    )
    accounts_file: Path | None = Field(None, description="JSON file of the same shape as AIQT_ACCOUNTS")
    worker_concurrency: int = Field(64, ge=1, le=1000, description="Commands in flight per worker (prefetch)")
    protection_policy: Literal["close", "keep"] = Field(
        "close",
        description="When SL/TP cannot be placed after the entry filled: close the position, or keep it flagged",
    )
    exchange_timeout: float = Field(5.0, gt=0, description="Seconds to wait for one exchange response")
    exchange_connections: int | None = Field(
        None, ge=1, le=1000, description="HTTP connections to the exchange (default: worker_concurrency)"
    )
    recv_window: int = Field(5000, ge=1000, le=60000, description="recvWindow (ms) on signed exchange requests")
    retry_attempts: int = Field(4, ge=1, le=10, description="Attempts for reads and cancels")
    risk: dict[str, RiskLimits] = Field(
        default_factory=dict,
        description='Risk limits per account: {"main": {"maxOrderNotional": 5000, "symbols": ["BTCUSDT"]}}; '
        "see docs/guardrails.md",
    )
    audit: bool = Field(True, description="Append every command and its outcome to the audit stream ({ns}.audit)")
    metrics_port: int | None = Field(None, description="Serve Prometheus metrics on this port")
    metrics_host: str = Field("127.0.0.1", description="Address of the metrics server (0.0.0.0 in containers)")
    governor: bool = Field(
        True,
        description="Govern every exchange call by Binance's rate limits, fleet-wide (off only against an exchange "
        "that enforces none, such as a test paper exchange with rate limits off)",
    )
    governor_safety: float = Field(
        0.9, gt=0, le=1, description="Fraction of each Binance rate limit the whole fleet may use (docs/limits.md)"
    )
    governor_reserve: float = Field(
        0.2, ge=0, lt=1, description="Fraction of that budget kept for cancels, closes, reduce-only orders and stops"
    )
    live_max_age_ms: int = Field(
        1000,
        ge=0,
        le=60_000,
        description="How old the open candle and the current funding rate may be when served (0: always fetched)",
    )

    @model_validator(mode="after")
    def _load_accounts_file(self) -> WorkerSettings:
        if self.accounts_file is not None:
            raw = json.loads(self.accounts_file.read_text())
            for name, creds in raw.items():
                self.accounts.setdefault(name, ExchangeCredentials.model_validate(creds))
        return self
