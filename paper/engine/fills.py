"""Fills: executing an order against the simulated market, updating the position, the wallet,
trades and income, and the final states of an order (FILLED, EXPIRED, CANCELED).
"""

from __future__ import annotations

import contextlib
from decimal import Decimal

from ..errors import BinanceError, err
from ..models import E8, ZERO, Account, Order, Position, Trade
from ..symbols import MAKER_FEE, TAKER_FEE
from .events import BalanceChanged, OrderChanged
from .margin import MarginRules

ONE = Decimal(1)
# client order ids of the orders the liquidation engine places, as on Binance
LIQUIDATION_PREFIX = "autoclose-"


class Fills(MarginRules):
    """Order execution on top of the margin rules."""

    def _fill(self, acc: Account, o: Order, price: Decimal, qty: Decimal, maker: bool, t: int) -> None:
        """Execute `qty` of `o` at `price`: position, wallet, trade, income, order status, events."""
        sym = o.symbol
        pos = self._pos(acc, sym, o.position_side)
        realized = self._move_position(acc, pos, qty if o.side == "BUY" else -qty, price)
        pos.update_time = t
        fee = (qty * price * (MAKER_FEE if maker else TAKER_FEE)).quantize(E8)
        acc.balance += realized - fee
        acc.update_time = t
        tr = Trade(
            self.next_trade_id,
            acc.api_key,
            o.order_id,
            sym,
            o.side,
            o.position_side,
            price,
            qty,
            fee,
            realized,
            maker,
            t,
        )
        self.next_trade_id += 1
        acc.trades.append(tr)
        self.store.put("trades", tr.trade_id, tr)
        if realized:
            self._income(acc, sym, "REALIZED_PNL", realized, t, str(tr.trade_id))
        if fee:
            self._income(acc, sym, "COMMISSION", -fee, t, str(tr.trade_id))
        o.executed_qty += qty
        o.cum_quote += qty * price
        o.update_time = t
        if o.executed_qty >= o.orig_qty:
            self._set_final(acc, o, "FILLED")
        else:
            o.status = "PARTIALLY_FILLED"
        self._save_acc(acc)
        liquidation = o.client_id.startswith(LIQUIDATION_PREFIX)
        self.emit(OrderChanged(acc, o, "CALCULATED" if liquidation else "TRADE", t, tr))
        self.emit(BalanceChanged(acc, "ORDER", t, (pos,)))

    def _move_position(self, acc: Account, pos: Position, signed: Decimal, price: Decimal) -> Decimal:
        """Add a signed quantity at `price` to a position; returns the realised PnL."""
        amt = pos.amt
        qty = abs(signed)
        iso = self.isolated(acc, pos.symbol)
        lev = self.lev(acc, pos.symbol)
        if amt == 0 or (amt > 0) == (signed > 0):
            new_amt = amt + signed
            pos.entry = ((abs(amt) * pos.entry + qty * price) / abs(new_amt)).quantize(E8)
            pos.amt = new_amt
            if iso:
                pos.isolated_wallet += (qty * price / lev).quantize(E8)
            return ZERO
        close = min(qty, abs(amt))
        realized = (close * (price - pos.entry) * (ONE if amt > 0 else -ONE)).quantize(E8)
        if iso:
            pos.isolated_wallet -= (pos.isolated_wallet * close / abs(amt)).quantize(E8)
        pos.amt = amt + signed
        rest = qty - close
        if pos.amt == 0:
            pos.entry = ZERO
            if iso:
                pos.isolated_wallet = ZERO
        elif rest > 0:
            pos.entry = price
            if iso:
                pos.isolated_wallet = (rest * price / lev).quantize(E8)
        return realized

    def _set_final(self, acc: Account, o: Order, status: str) -> None:
        """End an order (FILLED, CANCELED, EXPIRED); the last two are events of their own."""
        o.status = status
        acc.open_orders.pop(o.order_id, None)
        if acc.open_by_client.get(o.client_id) is o:
            del acc.open_by_client[o.client_id]
        if status != "FILLED":
            self.emit(OrderChanged(acc, o, status, o.update_time))

    def _execute_market(self, acc: Account, o: Order, price: Decimal, t: int) -> None:
        qty = o.orig_qty
        if o.reduce_only:
            qty = min(qty, self._reduce_capacity(acc, o.symbol, o.position_side, o.side))
        if qty > 0:
            self._fill(acc, o, price, qty, False, t)
        if o.is_open:
            self._set_final(acc, o, "EXPIRED")

    def _crosses(self, o: Order, last: Decimal) -> bool:
        return last <= o.price if o.side == "BUY" else last >= o.price

    def _place_limit(self, acc: Account, o: Order, last: Decimal, t: int) -> None:
        if self._crosses(o, last):
            if o.tif == "GTX":
                self._set_final(acc, o, "EXPIRED")
                self.store.put("orders", o.order_id, o)
                raise err(
                    -5022, "Due to the order could not be executed as maker, the Post Only order will be rejected."
                )
            qty = o.orig_qty
            if o.reduce_only:
                qty = min(qty, self._reduce_capacity(acc, o.symbol, o.position_side, o.side))
            if qty > 0:
                self._fill(acc, o, last, qty, False, t)
            if o.is_open and o.reduce_only:
                self._set_final(acc, o, "EXPIRED")
            return
        if o.tif == "FOK":
            self._set_final(acc, o, "EXPIRED")
            self.store.put("orders", o.order_id, o)
            raise err(-5021, "Due to the order could not be filled immediately, the FOK order has been rejected.")
        if o.tif == "IOC":
            self._set_final(acc, o, "EXPIRED")

    def _place_limit_quiet(self, acc: Account, o: Order, price: Decimal, t: int) -> None:
        with contextlib.suppress(BinanceError):
            self._place_limit(acc, o, price, t)
