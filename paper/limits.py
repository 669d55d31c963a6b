"""Binance's rate limits: request weight per IP per minute, order counts per account per 10 s and
per minute, 429 with Retry-After, and a 418 ban for a client that keeps going after 429s."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BinanceError

BAN_AFTER = 5  # requests sent after a 429 inside the same window before the IP is banned
BAN_MS = 120_000


@dataclass(slots=True)
class _Ip:
    minute: int = -1
    used: int = 0
    over: int = 0
    banned_until: int = 0
    #: How many 429 and 418 answers this IP got since start (for GET /_paper/limits).
    count_429: int = 0
    count_418: int = 0


class Limiter:
    """Fixed windows aligned to the wall clock, as Binance counts them."""

    def __init__(self, enforce: bool, weight_1m: int, orders_10s: int, orders_1m: int):
        self.enforce = enforce
        self.weight_1m = weight_1m
        self.orders_10s = orders_10s
        self.orders_1m = orders_1m
        self._ips: dict[str, _Ip] = {}
        self._orders: dict[str, list[int]] = {}

    def reset(self) -> None:
        self._ips.clear()
        self._orders.clear()

    def weight(self, ip: str, w: int, now: int) -> int:
        """Count `w` for `ip`; return the weight used this minute, or raise 429/418."""
        st = self._ips.get(ip)
        if st is None:
            st = self._ips[ip] = _Ip()
        minute = now // 60_000
        if st.minute != minute:
            st.minute, st.used, st.over = minute, 0, 0
        if self.enforce:
            if st.banned_until > now:
                secs = max(1, -(-(st.banned_until - now) // 1000))
                raise BinanceError(
                    -1003,
                    f"Way too many requests; IP({ip}) banned until {st.banned_until}. "
                    "Please use the websocket for live updates to avoid bans.",
                    418,
                    {"Retry-After": str(secs), "x-mbx-used-weight-1m": str(st.used)},
                )
            if st.used + w > self.weight_1m:
                st.over += 1
                if st.over > BAN_AFTER:
                    st.banned_until = now + BAN_MS
                    raise BinanceError(
                        -1003,
                        f"Way too many requests; IP({ip}) banned until {st.banned_until}. "
                        "Please use the websocket for live updates to avoid bans.",
                        418,
                        {"Retry-After": str(BAN_MS // 1000), "x-mbx-used-weight-1m": str(st.used)},
                    )
                secs = max(1, -(-((minute + 1) * 60_000 - now) // 1000))
                raise BinanceError(
                    -1003,
                    f"Too many requests; current limit is {self.weight_1m} requests per "
                    "minute. Please use the websocket for live updates to avoid polling the API.",
                    429,
                    {"Retry-After": str(secs), "x-mbx-used-weight-1m": str(st.used)},
                )
        st.used += w
        return st.used

    def refused(self, ip: str, status: int) -> None:
        """Count a 429 or 418 the limits gave `ip` (injected faults are not counted)."""
        st = self._ips.setdefault(ip, _Ip())
        if status == 429:
            st.count_429 += 1
        elif status == 418:
            st.count_418 += 1

    def snapshot(self, now: int, names: dict[str, str]) -> dict[str, object]:
        """GET /_paper/limits: per IP the weight used this minute and the 429/418 answers since start;
        per account (by name; `names` maps API keys to names) its orders in this 10 s and 1 min window."""
        w10, w60 = now // 10_000, now // 60_000
        return {
            "enforced": self.enforce,
            "limits": {"weight1m": self.weight_1m, "orders10s": self.orders_10s, "orders1m": self.orders_1m},
            "ips": {
                ip: {"usedWeight1m": self.used(ip, now), "count429": st.count_429, "count418": st.count_418}
                for ip, st in self._ips.items()
            },
            "accounts": {
                names.get(key, key): {
                    "orders10s": counts[1] if counts[0] == w10 else 0,
                    "orders1m": counts[3] if counts[2] == w60 else 0,
                }
                for key, counts in self._orders.items()
            },
        }

    def used(self, ip: str, now: int) -> int:
        st = self._ips.get(ip)
        return st.used if st is not None and st.minute == now // 60_000 else 0

    def order(self, key: str, now: int) -> tuple[int, int]:
        """Count one order for account `key`; return (count 10s, count 1m) or raise 429 -1015."""
        st = self._orders.get(key)
        w10, w60 = now // 10_000, now // 60_000
        if st is None:
            st = self._orders[key] = [w10, 0, w60, 0]
        if st[0] != w10:
            st[0], st[1] = w10, 0
        if st[2] != w60:
            st[2], st[3] = w60, 0
        if self.enforce:
            if st[1] + 1 > self.orders_10s:
                secs = max(1, -(-((w10 + 1) * 10_000 - now) // 1000))
                raise BinanceError(
                    -1015,
                    f"Too many new orders; current limit is {self.orders_10s} orders per 10 SECOND.",
                    429,
                    {"Retry-After": str(secs)},
                )
            if st[3] + 1 > self.orders_1m:
                secs = max(1, -(-((w60 + 1) * 60_000 - now) // 1000))
                raise BinanceError(
                    -1015,
                    f"Too many new orders; current limit is {self.orders_1m} orders per MINUTE.",
                    429,
                    {"Retry-After": str(secs)},
                )
        st[1] += 1
        st[3] += 1
        return st[1], st[3]
