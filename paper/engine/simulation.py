"""The simulation: what the market's movement does to accounts. Conditional orders fire, resting
LIMIT orders fill, GTD orders expire, positions are liquidated, funding settles every 8 hours,
and the market clock can be advanced with all of that happening in order on the way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from decimal import Decimal

from .. import params
from ..margin import maint_margin
from ..market import FUNDING_INTERVAL
from ..models import E8, ZERO, Account, Order, Position, fmt
from ..symbols import LIQUIDATION_FEE, SYMBOLS
from .events import BalanceChanged, Liquidated, MarginCalled
from .fills import LIQUIDATION_PREFIX
from .views import Views

log = logging.getLogger("paper.engine")

# /_paper/clock/advance walks the skipped interval in steps of at least 5 minutes, at most 500 steps
ADVANCE_MIN_STEP_MS = 300_000
ADVANCE_MAX_STEPS = 500
# MARGIN_CALL when the cross maintenance margin reaches this share of the cross margin balance
MARGIN_CALL_RATIO = Decimal("0.8")


class Simulation(Views):
    """Market-driven changes on top of every account layer."""

    def advance_clock(self, ms: int) -> tuple[int, list[int], list[dict[str, object]]]:
        """Move the market clock forward by `ms`, walking the skipped interval in steps so that a
        stop whose price was crossed on the way fires, and funding settles in order with it.
        Returns (funding settlements, triggered algo ids, liquidations)."""
        market = self.market
        target = market.offset + ms
        step = max(ADVANCE_MIN_STEP_MS, -(-ms // ADVANCE_MAX_STEPS))
        settled = 0
        triggered: list[int] = []
        liquidated: list[dict[str, object]] = []
        while True:
            market.shift_clock(min(step, target - market.offset))
            settled += self.settle_funding(market.now())
            fired, closed = self.evaluate()
            triggered += fired
            liquidated += closed
            if market.offset >= target:
                break
        self.save_clock()
        return settled, triggered, liquidated

    def evaluate(self, symbols: Iterable[str] | None = None) -> tuple[list[int], list[dict[str, object]]]:
        """Fire conditional orders, fill crossed LIMIT orders, expire GTD, liquidate. Returns
        (triggered algo ids, liquidations)."""
        syms = set(SYMBOLS if symbols is None else symbols)
        t = self.market.now()
        triggered: list[int] = []
        liquidated: list[dict[str, object]] = []
        prices = {s: self.market.price(s, t) for s in syms}
        for acc in list(self.accounts.values()):
            if acc.open_algos:
                for a in sorted(acc.open_algos.values(), key=lambda a: a.algo_id):
                    if a.symbol in syms and a.is_open and self._algo_fires(a, prices[a.symbol]):
                        triggered.append(a.algo_id)
                        self._trigger(acc, a, prices[a.symbol], t)
            if acc.open_orders:
                for o in sorted(acc.open_orders.values(), key=lambda o: o.order_id):
                    if o.symbol not in syms or not o.is_open:
                        continue
                    if o.gtd and t >= o.gtd:
                        o.update_time = t
                        self._set_final(acc, o, "EXPIRED")
                        self.store.put("orders", o.order_id, o)
                        continue
                    if self._crosses(o, prices[o.symbol]):
                        self._fill_resting(acc, o, t)
            if any(pos.amt != 0 for pos in acc.positions.values()):
                liquidated.extend(self._check_liquidation(acc, t))
        return triggered, liquidated

    def _fill_resting(self, acc: Account, o: Order, t: int) -> None:
        qty = o.orig_qty - o.executed_qty
        if o.reduce_only or (acc.dual and self._increase_qty(acc, o.symbol, o.position_side, o.side, qty) == 0):
            qty = min(qty, self._reduce_capacity(acc, o.symbol, o.position_side, o.side))
            if qty <= 0:
                o.update_time = t
                self._set_final(acc, o, "EXPIRED")
                self.store.put("orders", o.order_id, o)
                return
        self._fill(acc, o, o.price, qty, True, t)
        if o.is_open and o.reduce_only:
            self._set_final(acc, o, "EXPIRED")
        self.store.put("orders", o.order_id, o)
        self._finish_algo_for(acc, o)

    def _check_liquidation(self, acc: Account, t: int) -> list[dict[str, object]]:
        """Liquidate isolated positions at or below their maintenance margin, then the whole cross
        account if its margin balance is at or below the cross maintenance margin (a margin call
        first, once the maintenance margin reaches MARGIN_CALL_RATIO of the margin balance)."""
        out: list[dict[str, object]] = []
        price = self.market.price
        for pos in list(acc.positions.values()):
            if pos.amt == 0 or not self.isolated(acc, pos.symbol):
                continue
            mark = price(pos.symbol)
            if pos.isolated_wallet + pos.amt * (mark - pos.entry) <= maint_margin(
                SYMBOLS[pos.symbol], abs(pos.amt) * mark
            ):
                out.append(self._liquidate(acc, pos, mark, t, isolated=True))
        cross_positions, cross_mb, cross_mm = self._cross_margin(acc)
        if cross_positions and cross_mb <= cross_mm:
            for pos in cross_positions:
                out.append(self._liquidate(acc, pos, price(pos.symbol), t, isolated=False))
            if acc.balance < 0:
                self._income(acc, "", "INSURANCE_CLEAR", -acc.balance, t, info="INSURANCE_CLEAR")
                acc.balance = ZERO
        else:
            self._margin_call(acc, cross_positions, cross_mb, cross_mm, t)
        if out:
            self._save_acc(acc)
        return out

    def _cross_margin(self, acc: Account) -> tuple[list[Position], Decimal, Decimal]:
        """(open cross positions, cross margin balance, cross maintenance margin)."""
        price = self.market.price
        cross_positions = []
        cross_mb = acc.balance
        cross_mm = ZERO
        for pos in acc.positions.values():
            if self.isolated(acc, pos.symbol):
                cross_mb -= pos.isolated_wallet
            elif pos.amt != 0:
                mark = price(pos.symbol)
                cross_positions.append(pos)
                cross_mb += pos.amt * (mark - pos.entry)
                cross_mm += maint_margin(SYMBOLS[pos.symbol], abs(pos.amt) * mark)
        return cross_positions, cross_mb, cross_mm

    def _margin_call(
        self, acc: Account, positions: list[Position], margin_balance: Decimal, maint: Decimal, t: int
    ) -> None:
        """MARGIN_CALL once when the cross margin ratio reaches the threshold (again after it fell)."""
        calling = bool(positions) and maint >= margin_balance * MARGIN_CALL_RATIO
        if calling and acc.api_key not in self.margin_called:
            self.margin_called.add(acc.api_key)
            iso_wallet = sum((p.isolated_wallet for p in acc.positions.values() if self.isolated(acc, p.symbol)), ZERO)
            self.emit(MarginCalled(acc, tuple(positions), acc.balance - iso_wallet, t))
        elif not calling:
            self.margin_called.discard(acc.api_key)

    def _liquidate(self, acc: Account, pos: Position, mark: Decimal, t: int, isolated: bool) -> dict[str, object]:
        sym = pos.symbol
        amt = pos.amt
        for o in list(acc.open_orders.values()):
            if o.symbol == sym:
                o.update_time = t
                self._set_final(acc, o, "CANCELED")
                self.store.put("orders", o.order_id, o)
        for a in list(acc.open_algos.values()):
            if a.symbol == sym:
                self._end_algo(acc, a, "EXPIRED")
        iso_before = pos.isolated_wallet
        bal_before = acc.balance
        o = Order(
            self.next_order_id,
            acc.api_key,
            sym,
            f"{LIQUIDATION_PREFIX}{t}{self.next_order_id % 1000:03d}",
            "SELL" if amt > 0 else "BUY",
            "MARKET",
            "IOC",
            ZERO,
            abs(amt),
            pos.side,
            True,
            t,
            t,
        )
        self.next_order_id += 1
        self.orders[o.order_id] = o
        self._index_order(acc, o)
        self._fill(acc, o, mark, abs(amt), False, t)
        self.store.put("orders", o.order_id, o)
        self.emit(Liquidated(o, mark, t))
        spent = bal_before - acc.balance  # realised loss + commission
        if isolated:
            remaining = iso_before - spent
            if remaining > 0 or remaining < 0:
                self._income(acc, sym, "INSURANCE_CLEAR", -remaining, t, info="INSURANCE_CLEAR")
                acc.balance -= remaining
        else:
            fee = min((abs(amt) * mark * LIQUIDATION_FEE).quantize(E8), max(acc.balance, ZERO))
            if fee > 0:
                self._income(acc, sym, "INSURANCE_CLEAR", -fee, t, info="INSURANCE_CLEAR")
                acc.balance -= fee
        if acc.balance != bal_before - spent:
            self.emit(BalanceChanged(acc, "INSURANCE_CLEAR", t, (pos,), sym))
        log.info("liquidated %s %s %s %s at %s", acc.name, sym, pos.side, amt, mark)
        return {
            "apiKey": acc.api_key,
            "symbol": sym,
            "positionSide": pos.side,
            "positionAmt": fmt(amt, SYMBOLS[sym].qty_precision),
            "price": str(mark),
            "orderId": o.order_id,
        }

    def settle_funding(self, upto: int) -> int:
        """Settle every 8 h funding boundary in (last_funding, upto]. Returns the count settled."""
        n = 0
        nxt = self.last_funding + FUNDING_INTERVAL
        if upto - nxt > 90 * FUNDING_INTERVAL:  # a long-stopped db: only the last 30 days
            nxt = (upto // FUNDING_INTERVAL - 90) * FUNDING_INTERVAL
        while nxt <= upto:
            self._settle_one(nxt)
            self.last_funding = nxt
            nxt += FUNDING_INTERVAL
            n += 1
        if n:
            self.save_clock()
        return n

    def funding_mark(self, sym: str, ft: int) -> Decimal:
        pin = self.market.pins.get(sym)
        return pin if pin is not None else self.market.walk_price(sym, ft)

    def _settle_one(self, ft: int) -> None:
        for sym in SYMBOLS:
            rate = self.market.funding_rate(sym, ft)
            mark = self.funding_mark(sym, ft)
            key = f"{sym}:{ft}"
            row = {"key": key, "symbol": sym, "rate": str(rate), "mark": str(mark), "time": ft}
            self.funding_marks[key] = row
            self.store.put("funding", key, row)
            for acc in self.accounts.values():
                changed = False
                for pos in acc.positions.values():
                    if pos.symbol != sym or pos.amt == 0:
                        continue
                    pay = (-pos.amt * mark * rate).quantize(E8)
                    acc.balance += pay
                    if self.isolated(acc, sym):
                        pos.isolated_wallet += pay
                    self._income(acc, sym, "FUNDING_FEE", pay, ft, info="FUNDING_FEE")
                    changed = True
                    shown = (pos,) if self.isolated(acc, sym) else ()
                    self.emit(BalanceChanged(acc, "FUNDING_FEE", ft, shown, sym, pay))
                if changed:
                    acc.update_time = max(acc.update_time, ft)
                    self._save_acc(acc)

    def funding_history(self, p: params.Params) -> list[dict[str, object]]:
        spec = params.symbol(p, required=False)
        start = params.integer(p, "startTime")
        end = params.integer(p, "endTime")
        lim = params.limit(p, 100, 1000)
        now = self.market.now()
        hi = min(end if end is not None else now, now) // FUNDING_INTERVAL * FUNDING_INTERVAL
        syms = [spec.symbol] if spec else list(SYMBOLS)
        times: list[int] = []
        if start is not None:
            t = -(-start // FUNDING_INTERVAL) * FUNDING_INTERVAL
            while t <= hi and len(times) < lim:
                times.append(t)
                t += FUNDING_INTERVAL
        else:
            t = hi
            while len(times) < lim:
                times.append(t)
                t -= FUNDING_INTERVAL
            times.reverse()
        out = []
        for ft in times:
            for s in syms:
                row = self.funding_marks.get(f"{s}:{ft}")
                if row is not None:
                    rate, mark = Decimal(str(row["rate"])), Decimal(str(row["mark"]))
                else:
                    rate, mark = self.market.funding_rate(s, ft), self.market.walk_price(s, ft)
                out.append({"symbol": s, "fundingRate": fmt(rate, 8), "fundingTime": ft, "markPrice": fmt(mark, 8)})
        return out[-lim:] if start is None else out[:lim]
