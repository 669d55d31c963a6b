"""Binance server time, as an offset from our clock."""

from __future__ import annotations

import time


class ServerClock:
    """`now_ms()` estimates Binance's clock: local time plus the offset measured at the last sync."""

    def __init__(self) -> None:
        self.offset_ms = 0.0
        self.synced_at: float | None = None

    def now_ms(self) -> int:
        return int(time.time() * 1000 + self.offset_ms)

    def update(self, server_time_ms: int, sent_ms: float, received_ms: float) -> None:
        self.offset_ms = server_time_ms - (sent_ms + received_ms) / 2
        self.synced_at = time.monotonic()
