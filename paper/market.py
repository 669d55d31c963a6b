"""The simulated market: a seeded, deterministic price walk per symbol, the market clock,
pinned marks, synthetic klines and funding rates.

The walk is a sum of value-noise octaves (1 min … 60 days) in log-price, so the price at any
market time is a pure function of (seed, symbol, time): no history has to be stored, klines for
any past range can be rebuilt, and two processes with the same seed agree.
"""

from __future__ import annotations

import calendar
import math
import time
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from .symbols import SYMBOLS, SymbolSpec

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
FUNDING_INTERVAL = 8 * HOUR

INTERVALS: dict[str, int] = {
    "1m": MINUTE,
    "3m": 3 * MINUTE,
    "5m": 5 * MINUTE,
    "15m": 15 * MINUTE,
    "30m": 30 * MINUTE,
    "1h": HOUR,
    "2h": 2 * HOUR,
    "4h": 4 * HOUR,
    "6h": 6 * HOUR,
    "8h": 8 * HOUR,
    "12h": 12 * HOUR,
    "1d": DAY,
    "3d": 3 * DAY,
    "1w": 7 * DAY,
    "1M": 0,
}

# (period in ms, amplitude in log-price)
_OCTAVES = ((MINUTE, 0.0007), (15 * MINUTE, 0.0025), (4 * HOUR, 0.009), (3 * DAY, 0.035), (60 * DAY, 0.12))
_MASK = (1 << 64) - 1
_UNIT = 2.0 / (1 << 53)


def _mix(x: int) -> int:
    """splitmix64 finaliser: a fast, well-spread integer hash."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def unit(seed: int, *parts: int) -> float:
    """Deterministic uniform value in [-1, 1) for the given integers."""
    h = seed & _MASK
    for p in parts:
        h = _mix(h ^ (p & _MASK))
    return (h >> 11) * (2.0 / (1 << 53)) - 1.0


def symbol_key(symbol: str) -> int:
    h = 1469598103934665603
    for ch in symbol.encode():
        h = ((h ^ ch) * 1099511628211) & _MASK
    return h


def now_ms() -> int:
    return int(time.time() * 1000)


def quantize(value: Decimal, step: Decimal) -> Decimal:
    return ((value / step).to_integral_value(ROUND_HALF_EVEN) * step).quantize(step)


class Market:
    """Prices for every symbol at the market clock. Not thread-safe; used from the event loop."""

    def __init__(self, seed: int, clock_offset_ms: int = 0):
        self.seed = seed
        self.offset = clock_offset_ms
        self.pins: dict[str, Decimal] = {}
        self._keys = {s: symbol_key(s) for s in SYMBOLS}
        self._base = {s: float(spec.base_price) for s, spec in SYMBOLS.items()}
        # per symbol and octave: the hash state after (seed, symbol, octave), so each noise node
        # costs one more mix round
        self._octaves = {
            s: [(_mix(_mix(seed & _MASK ^ k) ^ n), period, amp) for n, (period, amp) in enumerate(_OCTAVES)]
            for s, k in self._keys.items()
        }
        self._cache: dict[str, tuple[int, Decimal]] = {}
        self._kcache: dict[tuple[str, str, int], list[object]] = {}

    # --- clock -----------------------------------------------------------------------------
    def now(self) -> int:
        """Market time in ms (wall clock + the offset that /_paper/clock/advance accumulated)."""
        return int(time.time() * 1000) + self.offset

    def shift_clock(self, ms: int) -> None:
        """Move the market clock by `ms` (forward) and forget cached prices of the old time."""
        self.offset += ms
        self._cache.clear()

    # --- the walk --------------------------------------------------------------------------
    def walk(self, symbol: str, t: int) -> float:
        """Walk price (float, unrounded) of `symbol` at market time t."""
        s = 0.0
        for prefix, period, amp in self._octaves[symbol]:
            x = t / period
            i = math.floor(x)
            f = x - i
            f = f * f * (3.0 - 2.0 * f)
            a = (_mix(prefix ^ (i & _MASK)) >> 11) * _UNIT - 1.0
            b = (_mix(prefix ^ ((i + 1) & _MASK)) >> 11) * _UNIT - 1.0
            s += amp * (a + (b - a) * f)
        return self._base[symbol] * math.exp(s)

    def walk_price(self, symbol: str, t: int) -> Decimal:
        spec = SYMBOLS[symbol]
        return quantize(Decimal(repr(self.walk(symbol, t))), spec.tick)

    def price(self, symbol: str, t: int | None = None) -> Decimal:
        """Current mark (= last) price, tick-rounded. Pinned prices win over the walk."""
        pin = self.pins.get(symbol)
        if pin is not None:
            return pin
        if t is None:
            t = self.now()
        bucket = t // 100
        hit = self._cache.get(symbol)
        if hit is not None and hit[0] == bucket:
            return hit[1]
        p = self.walk_price(symbol, bucket * 100)
        self._cache[symbol] = (bucket, p)
        return p

    # --- funding ---------------------------------------------------------------------------
    def funding_rate(self, symbol: str, funding_time: int) -> Decimal:
        """Deterministic funding rate for the settlement at `funding_time`, mostly around +0.01 %."""
        u = unit(self.seed, self._keys[symbol], 991, funding_time // FUNDING_INTERVAL)
        r = 0.0001 + 0.00018 * u
        return Decimal(f"{r:.8f}")

    @staticmethod
    def next_funding_time(t: int) -> int:
        return (t // FUNDING_INTERVAL + 1) * FUNDING_INTERVAL

    # --- klines ----------------------------------------------------------------------------
    def klines(
        self, spec: SymbolSpec, interval: str, start: int | None, end: int | None, limit: int
    ) -> list[list[object]]:
        now = self.now()
        opens = _open_times(interval, start, end, limit, now)
        out: list[list[object]] = []
        sym = spec.symbol
        tick = spec.tick
        current = self.price(sym, now)
        cache = self._kcache
        if len(cache) > 60_000:  # ~50 MB; rebuilt on demand
            cache.clear()
        for o, c in opens:
            last = c >= now
            if not last:
                # a closed candle is a pure function of (seed, symbol, interval, open time)
                hit = cache.get((sym, interval, o))
                if hit is not None:
                    out.append(hit)
                    continue
            stop = now if last else c + 1
            samples = 6
            pts = [self.walk(sym, o + (stop - o) * j // samples) for j in range(samples + 1)]
            op = quantize(Decimal(repr(pts[0])), tick)
            cl = current if last else quantize(Decimal(repr(pts[-1])), tick)
            hi = max(quantize(Decimal(repr(max(pts))), tick), op, cl)
            lo = min(quantize(Decimal(repr(min(pts))), tick), op, cl)
            minutes = max(1, (stop - o) // MINUTE)
            vol_f = spec.minute_volume * minutes * (1.0 + 0.6 * unit(self.seed, self._keys[sym], 7, o))
            vol = Decimal(f"{vol_f:.{spec.qty_precision}f}")
            mid = (hi + lo) / 2
            qv = (vol * mid).quantize(Decimal("0.00001"))
            trades = int(vol_f * 3 / max(float(spec.min_qty) * 50, 1e-9)) % 900_000 + minutes * 40
            tb = (vol * Decimal("0.49")).quantize(Decimal(1).scaleb(-spec.qty_precision))
            tbq = (tb * mid).quantize(Decimal("0.00001"))
            row: list[object] = [
                o,
                str(op),
                str(hi),
                str(lo),
                str(cl),
                str(vol),
                c,
                str(qv),
                trades,
                str(tb),
                str(tbq),
                "0",
            ]
            if not last:
                cache[(sym, interval, o)] = row
            out.append(row)
        return out


def _month_start(t: int) -> tuple[int, int]:
    d = datetime.fromtimestamp(t / 1000, tz=UTC)
    return d.year, d.month


def _month_ms(y: int, m: int) -> int:
    return calendar.timegm((y, m, 1, 0, 0, 0)) * 1000


def _add_months(y: int, m: int, n: int) -> tuple[int, int]:
    idx = y * 12 + (m - 1) + n
    return idx // 12, idx % 12 + 1


_WEEK_SHIFT = 4 * DAY  # 1970-01-01 was a Thursday; Binance weeks open on Monday


def _align(interval: str, t: int) -> int:
    step = INTERVALS[interval]
    if interval == "1w":
        return (t - _WEEK_SHIFT) // step * step + _WEEK_SHIFT
    return t // step * step


def _open_times(interval: str, start: int | None, end: int | None, limit: int, now: int) -> list[tuple[int, int]]:
    """(openTime, closeTime) pairs, oldest first, as Binance selects them."""
    hi = now if end is None else min(end, now)
    if interval == "1M":
        if start is not None:
            y, m = _month_start(start)
            if _month_ms(y, m) < start:
                y, m = _add_months(y, m, 1)
            res: list[tuple[int, int]] = []
            while len(res) < limit:
                o = _month_ms(y, m)
                if o > hi:
                    break
                ny, nm = _add_months(y, m, 1)
                res.append((o, _month_ms(ny, nm) - 1))
                y, m = ny, nm
            return res
        y, m = _month_start(hi)
        res = []
        while len(res) < limit:
            ny, nm = _add_months(y, m, 1)
            res.append((_month_ms(y, m), _month_ms(ny, nm) - 1))
            y, m = _add_months(y, m, -1)
        res.reverse()
        return res
    step = INTERVALS[interval]
    if start is not None:
        first = _align(interval, start)
        if first < start:
            first += step
        res = []
        o = first
        while len(res) < limit and o <= hi:
            res.append((o, o + step - 1))
            o += step
        return res
    last = _align(interval, hi)
    first = last - (limit - 1) * step
    return [(o, o + step - 1) for o in range(first, last + 1, step)]
