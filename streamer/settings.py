"""Streamer settings (prefix AIQT_): the worker's, plus where the exchange's WebSocket streams are."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field

from worker.settings import WorkerSettings

#: Binance's WebSocket hosts for its REST hosts (binance-streams.md, 1.1); anything else (the paper
#: exchange) serves its streams on the REST port.
_STREAM_HOSTS = {
    "fapi.binance.com": "wss://fstream.binance.com",
    "testnet.binancefuture.com": "wss://fstream.binancefuture.com",
    "demo-fapi.binance.com": "wss://fstream.binancefuture.com",
}


class StreamerSettings(WorkerSettings):
    stream_url: str | None = Field(
        None, description="WebSocket base of the exchange's streams (default: derived from AIQT_EXCHANGE_URL)"
    )
    stream_symbols: list[str] = Field(
        default_factory=lambda: ["BTCUSDT", "ETHUSDT"],
        description="Symbols whose mark price and 1m klines are published as market events",
    )
    listen_key_keepalive: float = Field(1800.0, gt=0, description="Seconds between listenKey keepalives")
    stream_rotate_after: float = Field(
        23 * 3600.0, gt=0, description="Seconds after which a stream connection is replaced (Binance cuts at 24 h)"
    )
    leader_retry: float = Field(1.0, gt=0, le=5, description="Seconds between a standby's attempts to take over")
    resync_margin_ms: int = Field(
        5000, ge=0, description="How far before the last published event a resync looks for changed orders"
    )

    def ws_base(self) -> str:
        if self.stream_url:
            return self.stream_url.rstrip("/")
        parts = urlsplit(self.exchange_url)
        known = _STREAM_HOSTS.get(parts.hostname or "")
        if known:
            return known
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}"
