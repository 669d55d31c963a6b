"""Margin: what an account has available, what an order would need, how much it can reduce,
and the numbers (mark, notional, unrealised PnL, margins, liquidation price) of a position.

The formulas themselves live in :mod:`paper.margin`; this layer applies them to an account.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from ..errors import err
from ..margin import liquidation_price, maint_margin
from ..models import ZERO, Account, Position
from ..symbols import SYMBOLS, TAKER_FEE, SymbolSpec
from .state import EngineState


class MarginRules(EngineState):
    """Margin checks and position numbers on top of the engine's state."""

    def _open_order_im(self, acc: Account) -> Decimal:
        total = ZERO
        for o in acc.open_orders.values():
            if o.reduce_only:
                continue
            rem = o.orig_qty - o.executed_qty
            total += self._increase_qty(acc, o.symbol, o.position_side, o.side, rem) * o.price / self.lev(acc, o.symbol)
        return total

    def _increase_qty(self, acc: Account, sym: str, pside: str, side: str, qty: Decimal) -> Decimal:
        pos = acc.positions.get((sym, pside))
        amt = pos.amt if pos is not None else ZERO
        if pside == "BOTH":
            if amt == 0 or (amt > 0) == (side == "BUY"):
                return qty
            return max(ZERO, qty - abs(amt))
        if pside == "LONG":
            return qty if side == "BUY" else ZERO
        return qty if side == "SELL" else ZERO

    def summary(self, acc: Account) -> dict[str, Decimal]:
        """Account-level margin numbers (USDT)."""
        iso_wallet = ZERO
        cross_upnl = ZERO
        iso_upnl = ZERO
        cross_im = ZERO
        iso_im = ZERO
        mm = ZERO
        price = self.market.price
        for pos in acc.positions.values():
            if pos.amt == 0:
                if pos.isolated_wallet:
                    iso_wallet += pos.isolated_wallet
                continue
            mark = price(pos.symbol)
            upnl = pos.amt * (mark - pos.entry)
            notional = abs(pos.amt) * mark
            im = notional / self.lev(acc, pos.symbol)
            mm += maint_margin(SYMBOLS[pos.symbol], notional)
            if self.isolated(acc, pos.symbol):
                iso_wallet += pos.isolated_wallet
                iso_upnl += upnl
                iso_im += im
            else:
                cross_upnl += upnl
                cross_im += im
        ooim = self._open_order_im(acc) if acc.open_orders else ZERO
        cross_wallet = acc.balance - iso_wallet
        available = cross_wallet + cross_upnl - cross_im - ooim
        return {
            "wallet": acc.balance,
            "cross_wallet": cross_wallet,
            "upnl": cross_upnl + iso_upnl,
            "cross_upnl": cross_upnl,
            "position_im": cross_im + iso_im,
            "open_order_im": ooim,
            "maint": mm,
            "available": max(available, ZERO),
            "max_withdraw": max(min(available, cross_wallet), ZERO),
        }

    def _check_margin(
        self, acc: Account, spec: SymbolSpec, pside: str, side: str, qty: Decimal, price: Decimal
    ) -> None:
        inc = self._increase_qty(acc, spec.symbol, pside, side, qty)
        if inc <= 0:
            return
        need = inc * price / self.lev(acc, spec.symbol) + inc * price * TAKER_FEE
        if need > self.summary(acc)["available"]:
            raise err(-2019, "Margin is insufficient.")

    def _reduce_capacity(self, acc: Account, sym: str, pside: str, side: str) -> Decimal:
        """How much an order on `side` can reduce the position (0 if it would not reduce)."""
        pos = acc.positions.get((sym, pside))
        if pos is None or pos.amt == 0:
            return ZERO
        if (pos.amt > 0 and side == "SELL") or (pos.amt < 0 and side == "BUY"):
            return abs(pos.amt)
        return ZERO

    def _pos_numbers(self, acc: Account, pos: Position) -> dict[str, Decimal]:
        spec = SYMBOLS[pos.symbol]
        mark = self.market.price(pos.symbol)
        notional = pos.amt * mark
        upnl = pos.amt * (mark - pos.entry) if pos.amt else ZERO
        im = abs(notional) / self.lev(acc, pos.symbol)
        mm = maint_margin(spec, abs(notional))
        return {
            "mark": mark,
            "notional": notional,
            "upnl": upnl,
            "im": im,
            "mm": mm,
            "liq": self.liq_price(acc, pos) if pos.amt else ZERO,
        }

    def liq_price(self, acc: Account, pos: Position) -> Decimal:
        spec = SYMBOLS[pos.symbol]
        if self.isolated(acc, pos.symbol):
            kw = _legs([pos])
            return liquidation_price(spec, pos.isolated_wallet, **kw)
        legs = [
            q
            for q in acc.positions.values()
            if q.symbol == pos.symbol and q.amt != 0 and not self.isolated(acc, q.symbol)
        ]
        other_mm = ZERO
        other_upnl = ZERO
        iso_wallet = ZERO
        for q in acc.positions.values():
            if self.isolated(acc, q.symbol):
                iso_wallet += q.isolated_wallet
            elif q.symbol != pos.symbol and q.amt != 0:
                m = self.market.price(q.symbol)
                other_mm += maint_margin(SYMBOLS[q.symbol], abs(q.amt) * m)
                other_upnl += q.amt * (m - q.entry)
        return liquidation_price(
            spec, acc.balance - iso_wallet, other_mm=other_mm, other_upnl=other_upnl, **_legs(legs)
        )


def _legs(positions: Iterable[Position]) -> dict[str, Decimal]:
    kw: dict[str, Decimal] = {}
    for pos in positions:
        if pos.side == "BOTH":
            kw["both"], kw["both_entry"] = pos.amt, pos.entry
        elif pos.side == "LONG":
            kw["long"], kw["long_entry"] = abs(pos.amt), pos.entry
        else:
            kw["short"], kw["short_entry"] = abs(pos.amt), pos.entry
    return kw
