"""Settings of the paper exchange (env prefix ``AIQT_PAPER_``)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import platformdirs
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_db() -> Path:
    return Path(platformdirs.user_data_dir("aiqt")) / "paper.sqlite3"


class AccountSeed(BaseModel):
    """An account created at start-up if its API key is not known yet."""

    name: str = "main"
    api_key: str
    api_secret: SecretStr
    balance: Decimal | None = None


class PaperSettings(BaseSettings):
    """Configuration of one paper exchange process."""

    model_config = SettingsConfigDict(env_prefix="AIQT_PAPER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8100
    db: Path = Field(default_factory=_default_db)
    seed: int = 42
    starting_balance: Decimal = Decimal("10000")
    accounts: list[AccountSeed] = Field(default_factory=list)
    admin_token: SecretStr | None = None
    rate_limits: bool = True
    weight_limit_1m: int = 2400
    order_limit_10s: int = 300
    order_limit_1m: int = 1200
    # How long acknowledged changes may wait in memory before they are committed to SQLite.
    flush_interval_ms: int = 5
    # How often (wall-clock seconds) the market is re-evaluated in the background
    # (resting LIMIT orders, conditional orders, liquidations, funding).
    tick_interval_s: float = 1.0
    # WebSocket streams (same port as the REST API). Binance pings every 3 min and drops a client
    # that has not answered within 10 min; it closes a connection that sends more than 10
    # messages per second, and every connection at the 24 h mark.
    ws_ping_interval_s: float = 180.0
    ws_pong_timeout_s: float = 600.0
    ws_max_messages_per_s: int = 10
    ws_max_connection_s: float = 86_400.0
    ws_max_streams: int = 1024
    # frames a connection may have waiting to be written; a client that falls further behind is dropped
    ws_queue_frames: int = 5000
    # a listenKey lives this long after its last POST/PUT
    listen_key_validity_s: float = 3600.0
