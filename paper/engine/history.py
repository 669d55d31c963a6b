"""History queries: allOrders, userTrades, allAlgoOrders and income.

Binance pages all of them the same way: from an id onwards (the first `limit` rows), inside a
time window (the first `limit` rows), or else the newest `limit` rows up to an end time. One
pager, :func:`page`, does that for every history.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from .. import params
from ..market import DAY
from ..models import Account
from .orders import Orders

Row = TypeVar("Row")
ALGO_WINDOW_MS = 7 * DAY
INCOME_WINDOW_MS = 7 * DAY


def page(
    rows: Sequence[Row],
    row_id: Callable[[Row], int],
    row_time: Callable[[Row], int],
    from_id: int | None,
    start: int | None,
    end: int | None,
    limit: int,
) -> list[Row]:
    """Binance's history paging: from an id, else from a start time, else the newest rows."""
    if from_id is not None:
        return [r for r in rows if row_id(r) >= from_id][:limit]
    if start is not None:
        return [r for r in rows if row_time(r) >= start and (end is None or row_time(r) <= end)][:limit]
    if end is not None:
        rows = [r for r in rows if row_time(r) <= end]
    return list(rows[-limit:])


class History(Orders):
    """Read-only history views on top of the order layers."""

    def all_orders(self, acc: Account, p: params.Params) -> list[dict[str, object]]:
        spec = params.symbol(p)
        assert spec is not None
        rows = page(
            [o for o in acc.orders if o.symbol == spec.symbol],
            lambda o: o.order_id,
            lambda o: o.time,
            params.integer(p, "orderId"),
            params.integer(p, "startTime"),
            params.integer(p, "endTime"),
            params.limit(p, 500, 1000),
        )
        return [o.json() for o in rows]

    def user_trades(self, acc: Account, p: params.Params) -> list[dict[str, object]]:
        spec = params.symbol(p)
        assert spec is not None
        order_id = params.integer(p, "orderId")
        from_id = params.integer(p, "fromId")
        start = params.integer(p, "startTime")
        end = params.integer(p, "endTime")
        limit = params.limit(p, 500, 1000)
        rows = [t for t in acc.trades if t.symbol == spec.symbol and (order_id is None or t.order_id == order_id)]
        return [t.json() for t in page(rows, lambda t: t.trade_id, lambda t: t.time, from_id, start, end, limit)]

    def all_algos(self, acc: Account, p: params.Params) -> list[dict[str, object]]:
        """allAlgoOrders: from an algoId, else a window (7 days back from the end by default)."""
        spec = params.symbol(p)
        assert spec is not None
        algo_id = params.integer(p, "algoId")
        start = params.integer(p, "startTime")
        end = params.integer(p, "endTime")
        limit = params.limit(p, 500, 1000)
        rows = [a for a in acc.algos.values() if a.symbol == spec.symbol]
        if algo_id is not None:
            rows = [a for a in rows if a.algo_id >= algo_id][:limit]
        else:
            now = self.market.now()
            lo = start if start is not None else (end if end is not None else now) - ALGO_WINDOW_MS
            hi = end if end is not None else now
            rows = [a for a in rows if lo <= a.create_time <= hi][-limit:]
        return [a.json(query=True) for a in rows]

    def income(self, acc: Account, p: params.Params) -> list[dict[str, object]]:
        """Income history: numbered pages of `limit` rows, oldest first, last 7 days by default."""
        spec = params.symbol(p, required=False)
        income_type = p.get("incomeType") or None
        start = params.integer(p, "startTime")
        end = params.integer(p, "endTime")
        page_number = params.integer(p, "page", default=1) or 1
        limit = params.limit(p, 100, 1000)
        if start is None and end is None:
            start = self.market.now() - INCOME_WINDOW_MS
        rows = [
            i
            for i in acc.income
            if (spec is None or i.symbol == spec.symbol)
            and (income_type is None or i.income_type == income_type)
            and (start is None or i.time >= start)
            and (end is None or i.time <= end)
        ]
        rows.sort(key=lambda i: (i.time, i.tran_id))
        lo = (page_number - 1) * limit
        return [i.json() for i in rows[lo : lo + limit]]
