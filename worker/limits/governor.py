"""The fleet-wide governor of the exchange's budget: request weight per IP, orders per account.

Binance counts request weight per egress IP per minute and orders per account per 10 s and per
minute, across every process and host (binance-limits.md §1.1). Several AIQT workers, possibly on
several hosts, share both. Each worker runs one `Governor` in front of every exchange call:

- **Pre-debit.** A request is admitted only if it fits in this worker's *share* of the budget,
  `limit × safety / live workers` (the live worker count is the command queue's consumer count,
  read by `bus.fleet`), and in the *fleet's* budget as the exchange last reported it. The header
  only tells usage after the fact, so the pre-debit is what stops concurrent bursts.
- **The exchange's count is the truth.** After every response the `X-MBX-USED-WEIGHT-1M` and
  `X-MBX-ORDER-COUNT-10S/1M` headers raise our estimate of the window to what the exchange counted
  (it also counts traffic AIQT did not send: other bots on the IP, a human with the same key).
- **Priority.** Reads may use only `1 - reserve` of the budget, new orders and settings
  `1 - reserve/2`, and cancels, closes, reduce-only orders and stops all of it: when the budget is
  short a stop can still be placed. Heavy reads (weight ≥ `heavy_weight`, such as open orders of
  every symbol at 40) stop `light_reserve` earlier still, so that polling account summaries cannot
  starve the cheap market-data refreshes. A read made of several requests (the account summary)
  asks for all of them at once first (`preflight`), so it is refused whole instead of spending
  weight on the parts that fit, and stops `composite_reserve` earlier than single heavy reads.
- **Freeze.** A 429 or 418 freezes this worker at once until Retry-After (or the end of the ban
  named in the -1003 message, or the window boundary), and `on_freeze` broadcasts it to the fleet
  (`bus.fleet`): no worker sends one more request into a ban, which Binance escalates from 2
  minutes to 3 days. An order-count 429 (-1015) freezes only that account's orders.
- **Refusal.** What cannot be admitted is refused with `GovernorRefused` (an `ExchangeRateLimited`,
  so callers get AIQT's own 429 with Retry-After); reads are refused at once, writes wait a little
  for the next window, critical orders wait longest.

Windows are fixed and aligned to the exchange clock's minute (and 10 s), as Binance counts them.
Everything here is synchronous arithmetic on an injected clock, so `tests/unit/test_governor.py`
checks it without a broker or an exchange.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from prometheus_client import Counter, Gauge

from worker.binance.errors import ExchangeRateLimited
from worker.binance.weights import Cost, Params, cost

REFUSED = Counter("aiqt_governor_refused_total", "Requests AIQT did not send (budget spent or frozen)", ["priority"])
FREEZES = Counter("aiqt_governor_freezes_total", "Freezes on the exchange's 429/418", ["status", "scope", "source"])
WORKERS = Gauge("aiqt_governor_live_workers", "Workers sharing the exchange budget")

Clock = Callable[[], int]
Sleep = Callable[[float], Awaitable[None]]

#: "Way too many requests; IP(…) banned until 1659761931230."
_BANNED_UNTIL = re.compile(r"banned until (\d{12,14})")
_ORDERS_PER = re.compile(r"orders per (\d+)?\s*(SECOND|MINUTE)", re.IGNORECASE)


class Priority(IntEnum):
    """Who goes first when the budget is short (lower value first)."""

    CRITICAL = 0  # cancels, closes, reduce-only orders, stops / take-profits (closePosition)
    WRITE = 1  # new orders and account settings
    READ = 2  # everything that only reads


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def classify(method: str, path: str, params: Params | None) -> Priority:
    """The priority of one request, from what it does."""
    p = params or {}
    if method == "DELETE":
        return Priority.CRITICAL
    if _truthy(p.get("reduceOnly")) or _truthy(p.get("closePosition")):
        return Priority.CRITICAL
    if method == "GET":
        return Priority.READ
    return Priority.WRITE


@dataclass(frozen=True)
class Policy:
    #: The fraction of each exchange limit the fleet may use (binance-limits.md §0.3: 80-90 %).
    safety: float = 0.9
    #: The fraction of that kept free for critical requests (reads never use it; writes use half).
    reserve: float = 0.2
    #: How long a request of each priority may wait for budget before it is refused (seconds).
    wait_read: float = 0.0
    wait_write: float = 1.0
    wait_critical: float = 5.0
    #: Reads at least this heavy stop `light_reserve` (of the limit) before other reads.
    heavy_weight: int = 10
    light_reserve: float = 0.3
    #: Reads made of several requests (the polled account summary) stop this much earlier still, so
    #: that a single heavy read needed once in a while (the funding fees, weight 30) gets through.
    composite_reserve: float = 0.1

    def fraction(self, priority: Priority, weight: int = 0) -> float:
        if priority is Priority.CRITICAL:
            return self.safety
        if priority is Priority.WRITE:
            return self.safety * (1 - self.reserve / 2)
        read = self.safety * (1 - self.reserve)
        return max(read - self.light_reserve, 0.0) if weight >= self.heavy_weight else read

    def wait(self, priority: Priority) -> float:
        return (self.wait_critical, self.wait_write, self.wait_read)[priority]


@dataclass
class Window:
    """One fixed window of one pool: what this worker admitted and what the exchange reported."""

    span_ms: int
    limit: int
    start: int = -1
    #: Admitted by this worker in this window.
    own: int = 0
    #: The highest count the exchange reported in this window (fleet-wide and beyond).
    seen: int = 0
    #: Admitted and not answered yet: not in any header so far.
    in_flight: int = 0

    def roll(self, now: int) -> None:
        start = now - now % self.span_ms
        if start != self.start:
            # What is still in flight was counted in the old window (and the exchange's header
            # corrects us if it counted it in this one); a request that never settles cannot leak.
            self.start, self.own, self.seen, self.in_flight = start, 0, 0, 0

    def end(self) -> int:
        return self.start + self.span_ms

    def estimate(self) -> int:
        """The fleet's usage in this window as best known: the exchange's count plus what is in flight."""
        return max(self.own, self.seen + self.in_flight)

    def fits(self, amount: int, fraction: float, workers: int) -> bool:
        if amount <= 0:
            return True
        cap = self.limit * fraction
        share = cap / max(workers, 1)
        if self.estimate() + amount > cap:
            return False
        return self.own + amount <= share or (self.own == 0 and amount > share)

    def debit(self, amount: int) -> None:
        self.own += amount
        self.in_flight += amount

    def observe(self, count: int) -> None:
        self.seen = max(self.seen, count)


@dataclass(frozen=True)
class Freeze:
    """No request (scope "ip") or no order of one account (scope "orders") before `until_ms`."""

    scope: str
    until_ms: int
    status: int
    reason: str
    account: str | None = None
    origin: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "until_ms": self.until_ms,
            "status": self.status,
            "reason": self.reason,
            "account": self.account,
            "origin": self.origin,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Freeze:
        account = raw.get("account")
        return cls(
            scope=str(raw["scope"]),
            until_ms=int(raw["until_ms"]),
            status=int(raw.get("status") or 429),
            reason=str(raw.get("reason") or ""),
            account=str(account) if account is not None else None,
            origin=str(raw.get("origin") or ""),
        )


class GovernorRefused(ExchangeRateLimited):
    """AIQT did not send the request: the budget is spent or the fleet is frozen. Nothing was sent."""

    #: Nothing was sent, and the governor already waited as long as the request's priority allows:
    #: `FapiClient.call` does not retry it.
    not_sent = True

    def __init__(self, msg: str, retry_after: float) -> None:
        super().__init__(msg, status=429, code=None, retry_after=float(max(1, math.ceil(retry_after))))


@dataclass
class Ticket:
    """An admitted request: what was debited, to be settled with its response."""

    account: str
    cost: Cost
    priority: Priority
    window_starts: tuple[int, int, int]
    settled: bool = False


@dataclass
class _Orders:
    ten_s: Window
    minute: Window


@dataclass
class Limits:
    weight_1m: int = 2400
    orders_10s: int = 300
    orders_1m: int = 1200


def parse_rate_limits(rows: Sequence[Mapping[str, Any]], base: Limits | None = None) -> Limits:
    """Binance's `rateLimits` rows (exchangeInfo, or GET /fapi/v1/rateLimit/order) applied to `base`."""
    limits = Limits(**vars(base)) if base is not None else Limits()
    for row in rows:
        kind = str(row.get("rateLimitType", ""))
        interval = str(row.get("interval", ""))
        num = int(row.get("intervalNum") or 1)
        value = int(row.get("limit") or 0)
        if value <= 0:
            continue
        span = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}.get(interval, 0) * num
        if kind == "REQUEST_WEIGHT" and span == 60:
            limits.weight_1m = value
        elif kind == "ORDERS" and span == 10:
            limits.orders_10s = value
        elif kind == "ORDERS" and span == 60:
            limits.orders_1m = value
    return limits


class Governor:
    """One worker's view of the fleet's budget at one exchange (one egress IP)."""

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        policy: Policy | None = None,
        now_ms: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
        on_freeze: Callable[[Freeze], None] | None = None,
        origin: str = "",
    ) -> None:
        self.limits = limits or Limits()
        self.policy = policy or Policy()
        self._now = now_ms or (lambda: int(time.time() * 1000))
        self._sleep = sleep
        self.on_freeze = on_freeze
        self.origin = origin
        self.workers = 1
        self.weight = Window(60_000, self.limits.weight_1m)
        self._orders: dict[str, _Orders] = {}
        self._account_limits: dict[str, Limits] = {}
        self.freezes: dict[tuple[str, str | None], Freeze] = {}
        #: Counters for metrics and tests.
        self.refused = 0
        self.admitted = 0

    # --- configuration -------------------------------------------------------------------

    def configure(self, limits: Limits) -> None:
        """The exchange's limits (from exchangeInfo `rateLimits`)."""
        self.limits = limits
        self.weight.limit = limits.weight_1m
        for account, pools in self._orders.items():
            if account not in self._account_limits:
                pools.ten_s.limit, pools.minute.limit = limits.orders_10s, limits.orders_1m

    def configure_account(self, account: str, limits: Limits) -> None:
        """One account's own order limits (GET /fapi/v1/rateLimit/order can differ from exchangeInfo)."""
        self._account_limits[account] = limits
        pools = self._pools(account)
        pools.ten_s.limit, pools.minute.limit = limits.orders_10s, limits.orders_1m

    def set_workers(self, count: int) -> None:
        """The number of live workers sharing the budget (never below 1)."""
        self.workers = max(1, int(count))
        WORKERS.set(self.workers)

    def _pools(self, account: str) -> _Orders:
        pools = self._orders.get(account)
        if pools is None:
            limits = self._account_limits.get(account, self.limits)
            pools = self._orders[account] = _Orders(Window(10_000, limits.orders_10s), Window(60_000, limits.orders_1m))
        return pools

    # --- freezes -------------------------------------------------------------------------

    def freeze(self, freeze: Freeze, *, broadcast: bool = True) -> None:
        """Stop sending (everything, or one account's orders) until `freeze.until_ms`."""
        key = (freeze.scope, freeze.account if freeze.scope == "orders" else None)
        current = self.freezes.get(key)
        if current is not None and current.until_ms >= freeze.until_ms:
            return
        self.freezes[key] = freeze
        FREEZES.labels(status=str(freeze.status), scope=freeze.scope, source="own" if broadcast else "fleet").inc()
        if broadcast and self.on_freeze is not None:
            self.on_freeze(freeze)

    def frozen_until(self, account: str | None, *, orders: bool) -> tuple[int, Freeze | None]:
        """The latest end of any freeze that applies, and that freeze (0, None if none)."""
        now = self._now()
        worst: Freeze | None = None
        for (scope, acct), freeze in list(self.freezes.items()):
            if freeze.until_ms <= now:
                del self.freezes[(scope, acct)]
                continue
            applies = scope == "ip" or (scope == "orders" and orders and acct == account)
            if applies and (worst is None or freeze.until_ms > worst.until_ms):
                worst = freeze
        return (worst.until_ms if worst else 0), worst

    # --- admission -----------------------------------------------------------------------

    def try_admit(self, account: str, c: Cost, priority: Priority) -> tuple[Ticket | None, float, str]:
        """Admit now, or say how many seconds until it might fit and why not."""
        now = self._now()
        until, freeze = self.frozen_until(account, orders=c.is_order)
        if freeze is not None:
            what = "orders of this account" if freeze.scope == "orders" else "every request"
            return (
                None,
                (until - now) / 1000,
                f"The exchange rate-limited AIQT (HTTP {freeze.status}: {freeze.reason}); "
                f"{what} paused fleet-wide until {until}",
            )
        fraction = self.policy.fraction(priority, c.weight)
        self.weight.roll(now)
        if not self.weight.fits(c.weight, fraction, self.workers):
            return None, (self.weight.end() - now) / 1000, "AIQT's share of the exchange's request weight is spent"
        pools = self._pools(account)
        if c.is_order:
            for window, amount in ((pools.ten_s, c.orders_10s), (pools.minute, c.orders_1m)):
                window.roll(now)
                if not window.fits(amount, fraction, self.workers):
                    return None, (window.end() - now) / 1000, "AIQT's share of the account's order rate is spent"
        self.weight.debit(c.weight)
        if c.is_order:
            pools.ten_s.debit(c.orders_10s)
            pools.minute.debit(c.orders_1m)
        self.admitted += 1
        ticket = Ticket(account, c, priority, (self.weight.start, pools.ten_s.start, pools.minute.start))
        return ticket, 0.0, ""

    def preflight(self, account: str, calls: Sequence[tuple[str, str, Params | None]]) -> None:
        """Refuse now (GovernorRefused) if these requests together do not fit; debit nothing: each is
        still admitted on its own when sent. For reads made of several requests."""
        total = Cost(sum(cost(m, p, q).weight for m, p, q in calls))
        priority = max(classify(m, p, q) for m, p, q in calls)
        until, freeze = self.frozen_until(account, orders=False)
        now = self._now()
        if freeze is not None:
            self.refused += 1
            REFUSED.labels(priority=priority.name.lower()).inc()
            raise GovernorRefused(
                f"The exchange rate-limited AIQT (HTTP {freeze.status}); paused fleet-wide", (until - now) / 1000
            )
        self.weight.roll(now)
        fraction = self.policy.fraction(priority, total.weight)
        if priority is Priority.READ:
            fraction = max(fraction - self.policy.composite_reserve, 0.0)
        if not self.weight.fits(total.weight, fraction, self.workers):
            self.refused += 1
            REFUSED.labels(priority=priority.name.lower()).inc()
            retry_after = (self.weight.end() - now) / 1000
            raise GovernorRefused(
                f"AIQT's share of the exchange's request weight is spent; retry after {math.ceil(retry_after)}s",
                retry_after,
            )

    async def admit(self, account: str, method: str, path: str, params: Params | None) -> Ticket:
        """Admit one request (waiting as its priority allows) or raise GovernorRefused."""
        c = cost(method, path, params)
        priority = classify(method, path, params)
        wait = self.policy.wait(priority)
        give_up = self._now() + wait * 1000
        while True:
            ticket, retry_after, why = self.try_admit(account, c, priority)
            if ticket is not None:
                return ticket
            left = (give_up - self._now()) / 1000
            if retry_after > left:
                self.refused += 1
                REFUSED.labels(priority=priority.name.lower()).inc()
                raise GovernorRefused(f"{why}; retry after {math.ceil(retry_after)}s", retry_after)
            await self._sleep(max(retry_after, 0.01))

    # --- the exchange's answer -----------------------------------------------------------

    def settle(
        self,
        ticket: Ticket | None,
        status: int | None,
        headers: Mapping[str, str] | None,
        body: str = "",
        *,
        code: int | None = None,
    ) -> None:
        """Correct the estimate with the exchange's counters; freeze on 429/418."""
        now = self._now()
        account = ticket.account if ticket is not None else None
        if ticket is not None and not ticket.settled:
            ticket.settled = True
            pools = self._pools(ticket.account)
            for window, amount, start in (
                (self.weight, ticket.cost.weight, ticket.window_starts[0]),
                (pools.ten_s, ticket.cost.orders_10s, ticket.window_starts[1]),
                (pools.minute, ticket.cost.orders_1m, ticket.window_starts[2]),
            ):
                if window.start == start:
                    window.in_flight = max(0, window.in_flight - amount)
        if headers is not None:
            self.weight.roll(now)
            used = _header_int(headers, "x-mbx-used-weight-1m")
            if used is not None:
                self.weight.observe(used)
            if account is not None:
                pools = self._pools(account)
                for window, name in ((pools.ten_s, "x-mbx-order-count-10s"), (pools.minute, "x-mbx-order-count-1m")):
                    count = _header_int(headers, name)
                    if count is not None:
                        window.roll(now)
                        window.observe(count)
        if status in (418, 429):
            self.freeze(self._freeze_for(status, headers, body, code, account, now))

    def _freeze_for(
        self, status: int, headers: Mapping[str, str] | None, body: str, code: int | None, account: str | None, now: int
    ) -> Freeze:
        retry_after = None
        raw = headers.get("retry-after") if headers is not None else None
        if raw is not None:
            try:
                retry_after = float(raw)
            except ValueError:
                retry_after = None
        orders = code == -1015 or "orders per" in body.lower()
        until: int
        if retry_after is not None and retry_after > 0:
            until = now + int(retry_after * 1000)
        elif (banned := _BANNED_UNTIL.search(body)) is not None:
            until = int(banned.group(1))
        elif orders:
            per = _ORDERS_PER.search(body)
            span = 60_000 if per is not None and per.group(2).upper() == "MINUTE" else 10_000
            until = now - now % span + span
        else:
            until = now - now % 60_000 + 60_000
        if status == 418 and (banned := _BANNED_UNTIL.search(body)) is not None:
            until = max(until, int(banned.group(1)))
        reason = (body or f"HTTP {status}")[:200]
        if orders and status == 429 and account is not None:
            return Freeze("orders", until, status, reason, account, self.origin)
        return Freeze("ip", until, status, reason, None, self.origin)

    def snapshot(self) -> dict[str, Any]:
        """What the governor believes now (for /metrics, logs and tests)."""
        now = self._now()
        self.weight.roll(now)
        return {
            "workers": self.workers,
            "weight": {"limit": self.weight.limit, "own": self.weight.own, "seen": self.weight.seen},
            "orders": {
                a: {"10s": p.ten_s.own, "1m": p.minute.own, "seen10s": p.ten_s.seen, "seen1m": p.minute.seen}
                for a, p in self._orders.items()
            },
            "freezes": [f.to_json() for f in self.freezes.values() if f.until_ms > now],
            "admitted": self.admitted,
            "refused": self.refused,
        }


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    raw = raw.strip()
    return int(raw) if raw.isdigit() else None


@dataclass
class AccountGate:
    """The governor as one account's `FapiClient` sees it."""

    governor: Governor
    account: str

    async def admit(self, method: str, path: str, params: Params | None) -> Ticket:
        return await self.governor.admit(self.account, method, path, params)

    def preflight(self, calls: Sequence[tuple[str, str, Params | None]]) -> None:
        self.governor.preflight(self.account, calls)

    def settle(
        self,
        ticket: Ticket,
        status: int | None,
        headers: Mapping[str, str] | None,
        body: str = "",
        code: int | None = None,
    ) -> None:
        self.governor.settle(ticket, status, headers, body, code=code)
