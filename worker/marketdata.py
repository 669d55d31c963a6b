"""Market data from what AIQT already knows: closed candles and settled funding from a cache, live
values (the open candle, the current funding rate) from a `LiveMarket` when one is fed.

Why: a closed kline never changes (Binance identifies it by its open time) and a settled funding
rate never changes, so asking the exchange for them again spends request weight for nothing — and
the IP's weight is shared by the whole fleet (docs/limits.md). What does change — the open candle,
the current rate — is what the market streams carry; until the streamer feeds a `LiveMarket`,
it is fetched with the least weight: one small tail request (weight 1) shared by every caller
asking at the same moment, reused for at most `max_age_ms`.

Every answer says where it came from (`Source`), and the worker passes that to the caller in the
`X-AIQT-Source` header: `cache` (nothing asked of the exchange), `live` (fed by a stream),
`exchange` (at least part of it was fetched for this answer).

A tail request's rows are the last `n` candles, the last one still open: every other row is
closed and is cached. Which candle is open is the exchange's answer, never our clock (the paper
exchange's clock can be advanced), so a stale guess costs at most one more request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from worker.binance.endpoints import Exchange, Json

Source = Literal["cache", "live", "exchange"]
Row = list[Any]

#: Interval lengths; "1M" (calendar months) has none and is always fetched.
INTERVAL_MS: dict[str, int] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}
#: Up to 99 rows cost the same weight (1) as one row: a tail refresh asks for up to this many.
CHEAP_ROWS = 99
#: Closed candles kept per symbol and interval (Binance serves at most 1500 per request).
KEEP_ROWS = 1500


class LiveMarket(Protocol):
    """What the market-stream consumer will feed (the `@kline_<interval>` and `@markPrice` streams).
    None means "not known live": the cache falls back to a small REST request. Candles that close
    on the stream go into the cache with `MarketData.candle_closed`."""

    def open_candle(self, symbol: str, interval: str) -> Row | None: ...

    def premium(self, symbol: str) -> Json | None: ...


class NoLiveMarket:
    """No streams yet: nothing is known live."""

    def open_candle(self, symbol: str, interval: str) -> Row | None:
        return None

    def premium(self, symbol: str) -> Json | None:
        return None


def worst(*sources: Source) -> Source:
    """The source of an answer made of parts: `exchange` if any part was fetched, then `live`."""
    if "exchange" in sources:
        return "exchange"
    if "live" in sources:
        return "live"
    return "cache"


@dataclass
class _Series:
    closed: dict[int, Row] = field(default_factory=dict)
    #: Closed candles as the reply writes them (rendered once: they never change).
    rendered: dict[int, Any] = field(default_factory=dict)
    open_row: Row | None = None
    fetched_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def store(self, rows: list[Row], now: float) -> None:
        if not rows:
            return
        for row in rows[:-1]:
            self.closed[int(row[0])] = row
        self.open_row, self.fetched_at = rows[-1], now
        if len(self.closed) > KEEP_ROWS:
            for t in sorted(self.closed)[: len(self.closed) - KEEP_ROWS]:
                del self.closed[t]
                self.rendered.pop(t, None)

    def missing(self, open_time: int, step: int, limit: int) -> list[int]:
        return [open_time - k * step for k in range(limit - 1, 0, -1) if open_time - k * step not in self.closed]


@dataclass
class _Funding:
    rows: dict[int, Json] = field(default_factory=dict)
    #: The premium index's nextFundingTime when the rows were fetched: while it is unchanged, no
    #: funding has settled since, so the rows are the whole settled history's tail.
    marker: int = -1
    #: The exchange had fewer rows than asked: the cache holds the whole history.
    exhausted: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class _Fees:
    marker: int
    start: int
    rows: list[Json]


class MarketData:
    """The worker's market-data cache, shared by every account (market data is public)."""

    def __init__(
        self,
        *,
        live: LiveMarket | None = None,
        max_age_ms: int = 1000,
        monotonic: Callable[[], float] = time.monotonic,
        server_now_ms: Callable[[], int] | None = None,
    ) -> None:
        self.live: LiveMarket = live or NoLiveMarket()
        self.max_age = max_age_ms / 1000
        self._monotonic = monotonic
        #: The exchange's clock: a recent premium index whose next funding time has passed is stale.
        self._server_now = server_now_ms or (lambda: int(time.time() * 1000))
        self._series: dict[tuple[str, str], _Series] = {}
        self._premium: dict[str, tuple[Json, float]] = {}
        self._premium_locks: dict[str, asyncio.Lock] = {}
        self._funding: dict[str, _Funding] = {}
        self._fees: dict[tuple[str, str], _Fees] = {}
        #: Exchange requests made, for tests and benchmarks.
        self.fetches = 0

    # --- klines ----------------------------------------------------------------------------

    async def klines_rendered(
        self, exchange: Exchange, symbol: str, interval: str, limit: int, render: Callable[[Row], Any]
    ) -> tuple[list[Any], Source]:
        """`klines`, each row passed through `render`; closed rows are rendered once and remembered
        (a reply of 100 candles costs ~1 ms of views and serialisation otherwise)."""
        rows, source = await self.klines(exchange, symbol, interval, limit)
        series = self._series.get((symbol, interval))
        if series is None or not rows:  # "1M": not cached
            return [render(row) for row in rows], source
        out = []
        for row in rows[:-1]:
            t = int(row[0])
            done = series.rendered.get(t)
            if done is None:
                done = series.rendered[t] = render(row)
            out.append(done)
        out.append(render(rows[-1]))
        return out, source

    async def klines(self, exchange: Exchange, symbol: str, interval: str, limit: int) -> tuple[list[Row], Source]:
        """The last `limit` candles, the open one last, as Binance's REST answer would give them."""
        step = INTERVAL_MS.get(interval)
        if step is None:
            self.fetches += 1
            return await exchange.klines(symbol, interval, limit), "exchange"
        series = self._series.setdefault((symbol, interval), _Series())
        async with series.lock:
            now = self._monotonic()
            source: Source = "cache"
            open_row = self.live.open_candle(symbol, interval)
            if open_row is not None:
                source = "live"
            elif series.open_row is not None and now - series.fetched_at < self.max_age:
                open_row = series.open_row
            if open_row is not None and not series.missing(int(open_row[0]), step, limit):
                return self._assemble(series, open_row, step, limit), source
            # Fetch the tail: everything from the oldest missing candle (our best guess of which
            # one is open), at least CHEAP_ROWS when that costs no more weight.
            guess = self._guess_rows(series, open_row, step, limit, now)
            rows = await self._fetch(exchange, symbol, interval, guess)
            series.store(rows, self._monotonic())
            if not rows:
                return [], "exchange"
            open_row = rows[-1]
            if series.missing(int(open_row[0]), step, limit):
                rows = await self._fetch(exchange, symbol, interval, limit)
                series.store(rows, self._monotonic())
                open_row = rows[-1] if rows else open_row
            return self._assemble(series, open_row, step, limit), "exchange"

    def candle_closed(self, symbol: str, interval: str, row: Row) -> None:
        """A candle closed (the kline stream's final event, `x: true`): cache it. The streamer calls
        this; with it and a `LiveMarket` fed by the same stream, klines need no request at all."""
        series = self._series.setdefault((symbol, interval), _Series())
        series.closed[int(row[0])] = row

    async def _fetch(self, exchange: Exchange, symbol: str, interval: str, rows: int) -> list[Row]:
        self.fetches += 1
        return await exchange.klines(symbol, interval, rows)

    def _guess_rows(self, series: _Series, open_row: Row | None, step: int, limit: int, now: float) -> int:
        known = open_row or series.open_row
        if known is None or not series.closed:
            return limit
        # The open candle moves on with time; the closed ones we lack are the gap since then.
        elapsed = max(0.0, now - series.fetched_at) * 1000
        open_guess = int(known[0]) + int(elapsed // step) * step
        missing = series.missing(open_guess, step, limit)
        need = (open_guess - missing[0]) // step + 1 if missing else 1
        need = max(need, (open_guess - int(known[0])) // step + 1)
        if need <= CHEAP_ROWS:
            return min(limit, CHEAP_ROWS)
        return min(limit, need)

    @staticmethod
    def _assemble(series: _Series, open_row: Row, step: int, limit: int) -> list[Row]:
        t = int(open_row[0])
        rows = [series.closed[t - k * step] for k in range(limit - 1, 0, -1) if t - k * step in series.closed]
        return [*rows, open_row]

    # --- funding ---------------------------------------------------------------------------

    async def premium(self, exchange: Exchange, symbol: str) -> tuple[Json, Source]:
        """The premium index (current funding rate, next funding time): live, recent, or fetched."""
        live = self.live.premium(symbol)
        if live is not None:
            return live, "live"
        lock = self._premium_locks.setdefault(symbol, asyncio.Lock())
        async with lock:
            cached = self._premium.get(symbol)
            if (
                cached is not None
                and self._monotonic() - cached[1] < self.max_age
                and int(cached[0].get("nextFundingTime") or 0) > self._server_now()
            ):
                return cached[0], "cache"
            self.fetches += 1
            body = await exchange.premium_index(symbol)
            self._premium[symbol] = (body, self._monotonic())
            return body, "exchange"

    async def funding_history(
        self, exchange: Exchange, symbol: str, limit: int, next_funding_time: int
    ) -> tuple[list[Json], Source]:
        """The last `limit` settled funding rates; fetched only when one settled since last time."""
        entry = self._funding.setdefault(symbol, _Funding())
        async with entry.lock:
            if entry.marker == next_funding_time and (len(entry.rows) >= limit or entry.exhausted):
                return self._tail(entry, limit), "cache"
            self.fetches += 1
            rows = await exchange.funding_rate_history(symbol, limit)
            for row in rows:
                entry.rows[int(row["fundingTime"])] = row
            if entry.marker != next_funding_time:
                entry.exhausted = False
            entry.exhausted = entry.exhausted or len(rows) < limit
            entry.marker = next_funding_time
            return self._tail(entry, limit), "exchange"

    @staticmethod
    def _tail(entry: _Funding, limit: int) -> list[Json]:
        return [entry.rows[t] for t in sorted(entry.rows)[-limit:]]

    async def funding_fees(
        self, exchange: Exchange, account: str, symbol: str, start: int, next_funding_time: int
    ) -> tuple[list[Json], Source]:
        """The account's FUNDING_FEE income since `start` (weight 30): a fee is booked at a funding
        time, so while no funding has settled since the last fetch the answer is the same."""
        key = (account, symbol)
        cached = self._fees.get(key)
        if cached is not None and cached.marker == next_funding_time and cached.start <= start:
            return [f for f in cached.rows if int(f["time"]) >= start], "cache"
        self.fetches += 1
        rows = await exchange.funding_fees(symbol, start)
        self._fees[key] = _Fees(next_funding_time, start, rows)
        return rows, "exchange"
