"""The trading engine: accounts, orders, algo orders, positions, margin, funding, liquidation.

Everything lives in memory and is written behind to SQLite through :class:`~paper.store.Store`.
Single-threaded by design: the ASGI app calls it from the event loop only.
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
import string
import sys
from collections.abc import Iterable
from decimal import Decimal

from . import params as P
from .errors import MSG_ALGO_SWITCH, MSG_NO_ORDER, MSG_UNKNOWN_ORDER, BinanceError, bad_value, err
from .margin import liquidation_price, maint_margin
from .market import DAY, FUNDING_INTERVAL, Market
from .models import E8, ZERO, Account, Algo, Income, Order, Position, Trade, fmt
from .store import Store
from .symbols import ASSETS, DEFAULT_LEVERAGE, LIQUIDATION_FEE, MAKER_FEE, SYMBOLS, TAKER_FEE, SymbolSpec

log = logging.getLogger("paper.engine")

_ALNUM = string.ascii_letters + string.digits
ONE = Decimal(1)
CONDITIONAL = ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")
SIDES = ("BUY", "SELL")
TIFS = ("GTC", "IOC", "FOK", "GTX", "GTD", "RPI")
MSG_4509 = (
    "Time in Force (TIF) GTE can only be used with open positions or open orders. "
    "Please ensure that positions are available."
)


def _bad_precision() -> BinanceError:
    return err(-1111, "Precision is over the maximum defined for this asset.")


def check_price(spec: SymbolSpec, price: Decimal) -> None:
    """PRICE_FILTER (and precision) checks of a price, in Binance's order."""
    if price <= 0:
        raise err(-4001, "Price less than 0.")
    if price.normalize().as_tuple().exponent < -spec.price_precision:  # type: ignore[operator]
        raise _bad_precision()
    if price < spec.min_price:
        raise err(-4013, "Price less than min price.")
    if price > spec.max_price:
        raise err(-4002, "Price greater than max price.")
    if price % spec.tick != 0:
        raise err(-4014, "Price not increased by tick size.")


def check_qty(spec: SymbolSpec, qty: Decimal, market: bool) -> None:
    """LOT_SIZE / MARKET_LOT_SIZE (and precision) checks of a quantity."""
    if qty <= 0:
        raise err(-4003, "Quantity less than zero.")
    if qty.normalize().as_tuple().exponent < -spec.qty_precision:  # type: ignore[operator]
        raise _bad_precision()
    lo, hi, step = (
        (spec.market_min_qty, spec.market_max_qty, spec.market_step)
        if market
        else (spec.min_qty, spec.max_qty, spec.step)
    )
    if qty < lo:
        raise err(-4004, "Quantity less than min quantity.")
    if qty > hi:
        raise err(-4005, "Quantity greater than max quantity.")
    if qty % step != 0:
        raise err(-4023, "Qty not increased by step size.")


def check_notional(spec: SymbolSpec, notional: Decimal) -> None:
    if notional < spec.min_notional:
        raise err(
            -4164, f"Order's notional must be no smaller than {spec.min_notional} (unless you choose reduce only)"
        )


def check_percent_price(spec: SymbolSpec, price: Decimal, mark: Decimal) -> None:
    if price > mark * spec.multiplier_up:
        raise err(-4016, "Price is higher than mark price multiplier cap.")
    if price < mark * spec.multiplier_down:
        raise err(-4024, "Price is lower than mark price multiplier floor.")


class Engine:
    """All accounts of one paper exchange."""

    def __init__(self, market: Market, store: Store, starting_balance: Decimal):
        self.market = market
        self.store = store
        self.starting_balance = starting_balance
        self.accounts: dict[str, Account] = {}
        self.orders: dict[int, Order] = {}
        self.algos: dict[int, Algo] = {}
        self.next_order_id = 4_100_000_001
        self.next_algo_id = 1_000_000_001
        self.next_trade_id = 260_000_001
        self.next_tran_id = 9_000_000_001
        self.funding_marks: dict[str, dict[str, object]] = {}  # "SYMBOL:time" -> {rate, mark}
        self.last_funding = 0
        self.rng = random.Random()
        self._accounts_with_activity: set[str] = set()

    # ------------------------------------------------------------------ persistence ----------
    def load(self) -> None:
        st = self.store
        for r in st.load("meta"):
            if r.get("key") == "clock":
                self.market.offset = int(r["offset"])
                self.last_funding = int(r["last_funding"])
        for r in st.load("accounts"):
            loaded = Account.from_row(r)
            self.accounts[loaded.api_key] = loaded
        acc: Account | None
        for r in st.load("orders"):
            o = Order.from_row(r)
            acc = self.accounts.get(o.api_key)
            if acc is None:
                continue
            self.orders[o.order_id] = o
            self._index_order(acc, o)
            self.next_order_id = max(self.next_order_id, o.order_id + 1)
        for r in st.load("algos"):
            a = Algo.from_row(r)
            acc = self.accounts.get(a.api_key)
            if acc is None:
                continue
            self.algos[a.algo_id] = a
            acc.algos[a.algo_id] = a
            if a.is_open:
                acc.open_algos[a.algo_id] = a
            self.next_algo_id = max(self.next_algo_id, a.algo_id + 1)
        for r in st.load("trades"):
            t = Trade.from_row(r)
            acc = self.accounts.get(t.api_key)
            if acc is not None:
                acc.trades.append(t)
            self.next_trade_id = max(self.next_trade_id, t.trade_id + 1)
        for r in st.load("income"):
            i = Income.from_row(r)
            acc = self.accounts.get(i.api_key)
            if acc is not None:
                acc.income.append(i)
            self.next_tran_id = max(self.next_tran_id, i.tran_id + 1)
        for r in st.load("funding"):
            self.funding_marks[str(r["key"])] = r
        if not self.last_funding:
            self.last_funding = self.market.now() // FUNDING_INTERVAL * FUNDING_INTERVAL
            self.save_clock()

    def save_clock(self) -> None:
        self.store.put(
            "meta", "clock", {"key": "clock", "offset": self.market.offset, "last_funding": self.last_funding}
        )

    def _index_order(self, acc: Account, o: Order) -> None:
        acc.orders.append(o)
        acc.by_client.setdefault(o.client_id, []).append(o)
        if o.is_open:
            acc.open_orders[o.order_id] = o
            acc.open_by_client[o.client_id] = o

    def _save_acc(self, acc: Account) -> None:
        self.store.put("accounts", acc.api_key, acc)

    # ------------------------------------------------------------------ accounts -------------
    def create_account(self, api_key: str, api_secret: str, name: str, balance: Decimal | None) -> Account:
        bal = self.starting_balance if balance is None else balance
        acc = Account(api_key, api_secret, name, bal, bal, update_time=self.market.now())
        acc.secret_bytes = api_secret.encode()
        self.accounts[api_key] = acc
        self._save_acc(acc)
        return acc

    def new_key(self) -> str:
        return "".join(self.rng.choices(_ALNUM, k=64))

    def reset(self) -> None:
        """Wipe orders, positions, income; balances back to each account's starting balance."""
        self.orders.clear()
        self.algos.clear()
        self.funding_marks.clear()
        self.store.wipe(("orders", "algos", "trades", "income", "funding"))
        for acc in self.accounts.values():
            acc.balance = acc.starting_balance
            acc.dual = False
            acc.leverage.clear()
            acc.margin.clear()
            acc.positions.clear()
            acc.orders.clear()
            acc.open_orders.clear()
            acc.open_by_client.clear()
            acc.by_client.clear()
            acc.algos.clear()
            acc.open_algos.clear()
            acc.trades.clear()
            acc.income.clear()
            self._save_acc(acc)
        self.market.pins.clear()

    # ------------------------------------------------------------------ helpers --------------
    @staticmethod
    def lev(acc: Account, sym: str) -> int:
        return acc.leverage.get(sym, DEFAULT_LEVERAGE)

    @staticmethod
    def isolated(acc: Account, sym: str) -> bool:
        return acc.margin.get(sym) == "ISOLATED"

    def _pos(self, acc: Account, sym: str, side: str) -> Position:
        p = acc.positions.get((sym, side))
        if p is None:
            p = Position(sym, side)
            acc.positions[(sym, side)] = p
        return p

    @staticmethod
    def _client_id() -> str:
        return secrets.token_hex(11)  # 22 characters, inside Binance's client-id alphabet

    def _income(
        self, acc: Account, sym: str, typ: str, amount: Decimal, t: int, trade_id: str = "", info: str = ""
    ) -> None:
        inc = Income(self.next_tran_id, acc.api_key, sym, typ, amount, t, info, trade_id)
        self.next_tran_id += 1
        acc.income.append(inc)
        self.store.put("income", inc.tran_id, inc)

    def _position_side(self, acc: Account, p: P.Params) -> str:
        ps = p.get("positionSide") or "BOTH"
        if ps not in ("BOTH", "LONG", "SHORT"):
            raise err(-4060, "Invalid position side.")
        if (acc.dual and ps == "BOTH") or (not acc.dual and ps != "BOTH"):
            raise err(-4061, "Order's position side does not match user's setting.")
        return ps

    def _reduce_only_param(self, acc: Account, p: P.Params) -> bool:
        ro = P.boolean(p, "reduceOnly")
        if acc.dual and "reduceOnly" in p and ro:
            raise err(-1106, "Parameter 'reduceonly' sent when not required.")
        return ro

    # ------------------------------------------------------------------ margin ---------------
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

    # ------------------------------------------------------------------ fills ----------------
    def _fill(self, acc: Account, o: Order, price: Decimal, qty: Decimal, maker: bool, t: int) -> None:
        sym = o.symbol
        pos = self._pos(acc, sym, o.position_side)
        signed = qty if o.side == "BUY" else -qty
        amt = pos.amt
        realized = ZERO
        iso = self.isolated(acc, sym)
        lev = self.lev(acc, sym)
        if amt == 0 or (amt > 0) == (signed > 0):
            new_amt = amt + signed
            pos.entry = ((abs(amt) * pos.entry + qty * price) / abs(new_amt)).quantize(E8)
            pos.amt = new_amt
            if iso:
                pos.isolated_wallet += (qty * price / lev).quantize(E8)
        else:
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

    def _set_final(self, acc: Account, o: Order, status: str) -> None:
        o.status = status
        acc.open_orders.pop(o.order_id, None)
        if acc.open_by_client.get(o.client_id) is o:
            del acc.open_by_client[o.client_id]

    # ------------------------------------------------------------------ orders ---------------
    def new_order(self, acc: Account, p: P.Params, test: bool = False) -> dict[str, object]:
        """POST /fapi/v1/order (and /order/test with `test`: validate, place nothing)."""
        spec = P.symbol(p)
        assert spec is not None
        side = P.enum(p, "side", SIDES, -1117, "Invalid side.")
        typ = P.req(p, "type")
        if typ in CONDITIONAL:
            raise err(-4120, MSG_ALGO_SWITCH)
        if typ not in ("LIMIT", "MARKET"):
            raise err(-1116, "Invalid orderType.")
        pside = self._position_side(acc, p)
        reduce_only = self._reduce_only_param(acc, p)
        if "closePosition" in p and P.boolean(p, "closePosition"):
            raise err(-4120, MSG_ALGO_SWITCH)
        resp_type = P.enum(
            p, "newOrderRespType", ("ACK", "RESULT"), -1136, "Invalid newOrderRespType.", required=False, default="ACK"
        )
        cid = p.get("newClientOrderId")
        if cid is not None:
            if cid == "":
                raise err(-1118, "New client order ID was empty.")
            if len(cid) > 36:
                raise err(-4015, "Client order id length should not be more than 36 chars")
            if not P.CLIENT_ID.match(cid):
                raise err(-4015, "Client order id is not valid.")
        qty = P.dec(p, "quantity")
        assert qty is not None
        assert side is not None
        stp = P.enum(
            p,
            "selfTradePreventionMode",
            ("NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"),
            -5039,
            "Invalid self trade prevention mode.",
            required=False,
            default="EXPIRE_MAKER",
        )
        mark = self.market.price(spec.symbol)
        t = self.market.now()
        gtd = 0
        if typ == "LIMIT":
            tif = P.enum(p, "timeInForce", TIFS, -1115, "Invalid timeInForce.")
            price = P.dec(p, "price")
            assert price is not None
            assert tif is not None
            check_price(spec, price)
            check_qty(spec, qty, market=False)
            check_percent_price(spec, price, mark)
            if tif == "GTD":
                gtd = P.integer(p, "goodTillDate", required=True) or 0
                if gtd <= t + 600_000:
                    raise err(
                        -5040,
                        "goodTillDate must be greater than current time plus 600 seconds "
                        "and smaller than 253402300799000",
                    )
            notional_price = price
        else:
            tif = "GTC"
            price = ZERO
            check_qty(spec, qty, market=True)
            notional_price = mark
        closing = acc.dual and self._increase_qty(acc, spec.symbol, pside, side, qty) == 0
        if not reduce_only and not closing:
            check_notional(spec, qty * notional_price)
        if cid is not None and cid in acc.open_by_client:
            raise err(-4116, "clientOrderId is duplicated")
        if reduce_only or closing:
            cap = self._reduce_capacity(acc, spec.symbol, pside, side)
            if cap == 0 or (acc.dual and qty > cap):
                raise err(-2022, "ReduceOnly Order is rejected.")
        else:
            self._check_margin(acc, spec, pside, side, qty, notional_price)
        if (
            typ == "LIMIT"
            and sum(1 for o in acc.open_orders.values() if o.symbol == spec.symbol) >= spec.max_num_orders
        ):
            raise err(-2025, "Reach max open order limit.")
        if test:
            return {}
        # interned: the state keeps one copy of "BUY", "MARKET", … instead of one per order
        intern = sys.intern
        o = Order(
            self.next_order_id,
            acc.api_key,
            spec.symbol,
            cid or self._client_id(),
            intern(side),
            intern(typ),
            intern(tif),
            price,
            qty,
            intern(pside),
            reduce_only,
            t,
            t,
            stp=intern(stp or "EXPIRE_MAKER"),
            gtd=gtd,
        )
        self.next_order_id += 1
        self.orders[o.order_id] = o
        self._index_order(acc, o)
        ack = o.json(with_time=False) if resp_type == "ACK" else None
        if typ == "MARKET":
            self._execute_market(acc, o, mark, t)
        else:
            self._place_limit(acc, o, mark, t)
        self.store.put("orders", o.order_id, o)
        return ack if ack is not None else o.json(with_time=False)

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

    def _find_order(self, acc: Account, p: P.Params, spec: SymbolSpec, open_only: bool = False) -> Order | None:
        oid = P.integer(p, "orderId")
        if oid is not None:
            o = self.orders.get(oid)
            if o is None or o.api_key != acc.api_key or o.symbol != spec.symbol:
                return None
            return o
        cid = p.get("origClientOrderId")
        if not cid:
            raise err(-1102, "Param 'orderId' or 'origClientOrderId' must be sent, but both were empty/null!")
        if open_only:
            o = acc.open_by_client.get(cid)
            return o if o is not None and o.symbol == spec.symbol else None
        for o in reversed(acc.by_client.get(cid, ())):
            if o.symbol == spec.symbol:
                return o
        return None

    def _order_or_raise(self, acc: Account, p: P.Params, code: int, msg: str, *, open_only: bool) -> Order:
        spec = P.symbol(p)
        assert spec is not None
        o = self._find_order(acc, p, spec)
        if o is None or (open_only and not o.is_open):
            raise err(code, msg)
        return o

    def query_order(self, acc: Account, p: P.Params) -> dict[str, object]:
        return self._order_or_raise(acc, p, -2013, MSG_NO_ORDER, open_only=False).json()

    def open_order(self, acc: Account, p: P.Params) -> dict[str, object]:
        return self._order_or_raise(acc, p, -2013, MSG_NO_ORDER, open_only=True).json()

    def cancel_order(self, acc: Account, p: P.Params) -> dict[str, object]:
        o = self._order_or_raise(acc, p, -2011, MSG_UNKNOWN_ORDER, open_only=True)
        o.update_time = self.market.now()
        self._set_final(acc, o, "CANCELED")
        self.store.put("orders", o.order_id, o)
        return o.json(with_time=False)

    def cancel_all(self, acc: Account, p: P.Params) -> dict[str, object]:
        spec = P.symbol(p)
        assert spec is not None
        t = self.market.now()
        for o in list(acc.open_orders.values()):
            if o.symbol == spec.symbol:
                o.update_time = t
                self._set_final(acc, o, "CANCELED")
                self.store.put("orders", o.order_id, o)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def modify_order(self, acc: Account, p: P.Params) -> dict[str, object]:
        spec = P.symbol(p)
        assert spec is not None
        side = P.enum(p, "side", SIDES, -1117, "Invalid side.")
        qty = P.dec(p, "quantity")
        price = P.dec(p, "price")
        assert qty is not None
        assert price is not None
        o = self._find_order(acc, p, spec)
        if o is None:
            raise err(-2013, MSG_NO_ORDER)
        if not o.is_open:
            raise err(-2013, MSG_NO_ORDER)
        if o.type != "LIMIT":
            raise err(-5025, "Only limit order is supported.")
        if side != o.side:
            raise bad_value("side")
        check_price(spec, price)
        check_qty(spec, qty, market=False)
        mark = self.market.price(spec.symbol)
        check_percent_price(spec, price, mark)
        if qty == o.orig_qty and price == o.price:
            raise err(-5027, "No need to modify the order.")
        if not o.reduce_only:
            check_notional(spec, qty * price)
            extra = (qty * price - o.orig_qty * o.price) / self.lev(acc, spec.symbol)
            if (
                extra > 0
                and self._increase_qty(acc, spec.symbol, o.position_side, o.side, qty) > 0
                and extra > self.summary(acc)["available"]
            ):
                raise err(-2019, "Margin is insufficient.")
        t = self.market.now()
        o.update_time = t
        if qty <= o.executed_qty:
            o.orig_qty = qty
            self._set_final(acc, o, "CANCELED")
        else:
            o.orig_qty = qty
            o.price = price
            o.stp = "NONE"
            if self._crosses(o, mark):
                if o.tif == "GTX":
                    self._set_final(acc, o, "CANCELED")
                else:
                    self._fill(acc, o, mark, o.orig_qty - o.executed_qty, False, t)
        self.store.put("orders", o.order_id, o)
        d = o.json(with_time=False)
        d["pair"] = spec.symbol
        d["cumBase"] = d["cumQty"]
        return d

    def open_orders(self, acc: Account, p: P.Params) -> list[dict[str, object]]:
        spec = P.symbol(p, required=False)
        return [o.json() for o in acc.open_orders.values() if spec is None or o.symbol == spec.symbol]

    def all_orders(self, acc: Account, p: P.Params) -> list[dict[str, object]]:
        spec = P.symbol(p)
        assert spec is not None
        oid = P.integer(p, "orderId")
        start = P.integer(p, "startTime")
        end = P.integer(p, "endTime")
        lim = P.limit(p, 500, 1000)
        rows = [o for o in acc.orders if o.symbol == spec.symbol]
        if oid is not None:
            rows = [o for o in rows if o.order_id >= oid][:lim]
        elif start is not None:
            rows = [o for o in rows if o.time >= start and (end is None or o.time <= end)][:lim]
        else:
            if end is not None:
                rows = [o for o in rows if o.time <= end]
            rows = rows[-lim:]
        return [o.json() for o in rows]

    def user_trades(self, acc: Account, p: P.Params) -> list[dict[str, object]]:
        spec = P.symbol(p)
        assert spec is not None
        oid = P.integer(p, "orderId")
        from_id = P.integer(p, "fromId")
        start = P.integer(p, "startTime")
        end = P.integer(p, "endTime")
        lim = P.limit(p, 500, 1000)
        rows = [t for t in acc.trades if t.symbol == spec.symbol]
        if oid is not None:
            rows = [t for t in rows if t.order_id == oid]
        if from_id is not None:
            rows = [t for t in rows if t.trade_id >= from_id][:lim]
        elif start is not None:
            rows = [t for t in rows if t.time >= start and (end is None or t.time <= end)][:lim]
        else:
            if end is not None:
                rows = [t for t in rows if t.time <= end]
            rows = rows[-lim:]
        return [t.json() for t in rows]

    # ------------------------------------------------------------------ algo orders ----------
    def new_algo(self, acc: Account, p: P.Params) -> dict[str, object]:
        algo_type = P.req(p, "algoType")
        if algo_type != "CONDITIONAL":
            raise bad_value("algoType")
        spec = P.symbol(p)
        assert spec is not None
        side = P.enum(p, "side", SIDES, -1117, "Invalid side.")
        typ = P.req(p, "type")
        if typ not in CONDITIONAL:
            raise err(-1116, "Invalid orderType.")
        assert side is not None
        pside = self._position_side(acc, p)
        reduce_only = self._reduce_only_param(acc, p)
        close_position = P.boolean(p, "closePosition")
        working = P.enum(
            p,
            "workingType",
            ("MARK_PRICE", "CONTRACT_PRICE"),
            -4031,
            "Invalid parameter working type",
            required=False,
            default="CONTRACT_PRICE",
        )
        price_protect = P.boolean(p, "priceProtect")
        tif = P.enum(
            p,
            "timeInForce",
            ("GTC", "IOC", "FOK", "GTX", "GTD"),
            -1115,
            "Invalid timeInForce.",
            required=False,
            default="GTC",
        )
        cid = p.get("clientAlgoId")
        if cid is not None and (len(cid) > 36 or not P.CLIENT_ID.match(cid)):
            raise err(-4015, "Client order id is not valid.")
        mark = self.market.price(spec.symbol)
        activate: Decimal | None = None
        callback: Decimal | None = None
        trigger = ZERO
        if typ == "TRAILING_STOP_MARKET":
            callback = P.dec(p, "callbackRate")
            assert callback is not None
            if callback < Decimal("0.1") or callback > 20:
                raise err(-4136 if close_position else -1130, "Invalid callBack rate.")
            activate = P.dec(p, "activatePrice", required=False)
            if activate is not None:
                check_price(spec, activate)
            if close_position:
                raise err(-4136, "Target strategy invalid for orderType TRAILING_STOP_MARKET,closePosition true")
        else:
            trig = P.dec(p, "triggerPrice")
            assert trig is not None
            check_price(spec, trig)
            trigger = trig
        price = ZERO
        if typ in ("STOP", "TAKE_PROFIT"):
            limit_price = P.dec(p, "price")
            assert limit_price is not None
            check_price(spec, limit_price)
            price = limit_price
            if close_position:
                raise err(-4136, f"Target strategy invalid for orderType {typ},closePosition true")
        if close_position:
            if p.get("quantity"):
                raise err(-4137, "Quantity must be zero with closePosition equals true")
            if "reduceOnly" in p and reduce_only:
                raise err(-4138, "Reduce only must be true with closePosition equals true")
            if acc.dual and ((side == "BUY" and pside == "LONG") or (side == "SELL" and pside == "SHORT")):
                raise err(-4061, "Order's position side does not match user's setting.")
            if self._reduce_capacity(acc, spec.symbol, pside, side) == 0:
                raise err(-4509, MSG_4509)
            qty = ZERO
        else:
            qty = P.dec(p, "quantity")  # type: ignore[assignment]
            assert qty is not None
            check_qty(spec, qty, market=typ.endswith("MARKET"))
            ref = price if price else (trigger if trigger else mark)
            if not reduce_only:
                check_notional(spec, qty * ref)
        if typ != "TRAILING_STOP_MARKET" and self._should_trigger(typ, side, trigger, mark):
            raise err(-2021, "Order would immediately trigger.")
        if cid is not None and any(a.client_algo_id == cid for a in acc.open_algos.values()):
            raise err(-4116, "clientOrderId is duplicated")
        if len(acc.open_algos) >= 200:
            raise err(-4045, "Reach max stop order limit.")
        t = self.market.now()
        a = Algo(
            self.next_algo_id,
            acc.api_key,
            cid or self._client_id(),
            spec.symbol,
            side,
            pside,
            typ,
            tif or "GTC",
            qty,
            trigger,
            price,
            working or "CONTRACT_PRICE",
            close_position,
            price_protect,
            reduce_only or close_position or (acc.dual and self._increase_qty(acc, spec.symbol, pside, side, ONE) == 0),
            t,
            t,
            activate_price=activate,
            callback_rate=callback,
        )
        if activate is None and typ == "TRAILING_STOP_MARKET":
            a.activated = True
            a.extreme = mark
        self.next_algo_id += 1
        self.algos[a.algo_id] = a
        acc.algos[a.algo_id] = a
        acc.open_algos[a.algo_id] = a
        self.store.put("algos", a.algo_id, a)
        return a.json()

    @staticmethod
    def _should_trigger(typ: str, side: str, trigger: Decimal, price: Decimal) -> bool:
        if typ in ("STOP", "STOP_MARKET"):
            return price >= trigger if side == "BUY" else price <= trigger
        return price <= trigger if side == "BUY" else price >= trigger

    def _find_algo(self, acc: Account, p: P.Params) -> Algo | None:
        aid = P.integer(p, "algoId")
        if aid is not None:
            a = acc.algos.get(aid)
            return a
        cid = p.get("clientAlgoId")
        if not cid:
            raise err(-1102, "Param 'algoId' or 'clientAlgoId' must be sent, but both were empty/null!")
        best = None
        for a in acc.algos.values():
            if a.client_algo_id == cid and (best is None or a.algo_id > best.algo_id):
                best = a
        return best

    def query_algo(self, acc: Account, p: P.Params) -> dict[str, object]:
        a = self._find_algo(acc, p)
        if a is None:
            raise err(-2013, MSG_NO_ORDER)
        return a.json(query=True)

    def cancel_algo(self, acc: Account, p: P.Params) -> dict[str, object]:
        a = self._find_algo(acc, p)
        if a is None or not a.is_open:
            raise err(-2011, MSG_UNKNOWN_ORDER)
        self._end_algo(acc, a, "CANCELED")
        return {"algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "code": "200", "msg": "success"}

    def _end_algo(self, acc: Account, a: Algo, status: str) -> None:
        a.status = status
        a.update_time = self.market.now()
        acc.open_algos.pop(a.algo_id, None)
        self.store.put("algos", a.algo_id, a)

    def cancel_all_algo(self, acc: Account, p: P.Params) -> dict[str, object]:
        spec = P.symbol(p)
        assert spec is not None
        for a in list(acc.open_algos.values()):
            if a.symbol == spec.symbol:
                self._end_algo(acc, a, "CANCELED")
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def open_algos(self, acc: Account, p: P.Params) -> list[dict[str, object]]:
        spec = P.symbol(p, required=False)
        aid = P.integer(p, "algoId")
        return [
            a.json(query=True)
            for a in acc.open_algos.values()
            if (spec is None or a.symbol == spec.symbol) and (aid is None or a.algo_id == aid)
        ]

    def all_algos(self, acc: Account, p: P.Params) -> list[dict[str, object]]:
        spec = P.symbol(p)
        assert spec is not None
        aid = P.integer(p, "algoId")
        start = P.integer(p, "startTime")
        end = P.integer(p, "endTime")
        lim = P.limit(p, 500, 1000)
        rows = [a for a in acc.algos.values() if a.symbol == spec.symbol]
        if aid is not None:
            rows = [a for a in rows if a.algo_id >= aid][:lim]
        else:
            now = self.market.now()
            lo = start if start is not None else (end if end is not None else now) - 7 * DAY
            hi = end if end is not None else now
            rows = [a for a in rows if lo <= a.create_time <= hi][-lim:]
        return [a.json(query=True) for a in rows]

    # ------------------------------------------------------------------ settings -------------
    def set_leverage(self, acc: Account, p: P.Params) -> dict[str, object]:
        spec = P.symbol(p)
        assert spec is not None
        raw = P.req(p, "leverage")
        if not raw.isdigit():
            raise err(-4028, f"Leverage {raw} is not valid")
        lev = int(raw)
        if lev < 1 or lev > spec.max_leverage:
            raise err(-4028, f"Leverage {lev} is not valid")
        acc.leverage[spec.symbol] = lev
        acc.update_time = self.market.now()
        self._save_acc(acc)
        return {"leverage": lev, "maxNotionalValue": str(spec.max_notional(lev)), "symbol": spec.symbol}

    def _has_position(self, acc: Account, sym: str | None = None) -> bool:
        return any(pos.amt != 0 for pos in acc.positions.values() if sym is None or pos.symbol == sym)

    def set_margin_type(self, acc: Account, p: P.Params) -> dict[str, object]:
        spec = P.symbol(p)
        assert spec is not None
        mt = P.req(p, "marginType").upper()
        if mt == "CROSS":
            mt = "CROSSED"
        if mt not in ("CROSSED", "ISOLATED"):
            raise bad_value("marginType")
        current = acc.margin.get(spec.symbol, "CROSSED")
        if mt == current:
            raise err(-4046, "No need to change margin type.")
        if any(o.symbol == spec.symbol for o in acc.open_orders.values()) or any(
            a.symbol == spec.symbol for a in acc.open_algos.values()
        ):
            raise err(-4047, "Margin type cannot be changed if there exists open orders.")
        if self._has_position(acc, spec.symbol):
            raise err(-4048, "Margin type cannot be changed if there exists position.")
        acc.margin[spec.symbol] = mt
        acc.update_time = self.market.now()
        self._save_acc(acc)
        return {"code": 200, "msg": "success"}

    def set_dual(self, acc: Account, p: P.Params) -> dict[str, object]:
        v = P.req(p, "dualSidePosition").lower()
        if v not in ("true", "false"):
            raise bad_value("dualSidePosition")
        dual = v == "true"
        if dual == acc.dual:
            raise err(-4059, "No need to change position side.")
        if acc.open_orders or acc.open_algos:
            raise err(-4067, "Position side cannot be changed if there exists open orders.")
        if self._has_position(acc):
            raise err(-4068, "Position side cannot be changed if there exists position.")
        acc.dual = dual
        acc.update_time = self.market.now()
        self._save_acc(acc)
        return {"code": 200, "msg": "success"}

    # ------------------------------------------------------------------ views ----------------
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

    def _visible_positions(self, acc: Account, only_active: bool, sym: str | None) -> Iterable[Position]:
        sides = ("LONG", "SHORT") if acc.dual else ("BOTH",)
        active = {o.symbol for o in acc.open_orders.values()} | {a.symbol for a in acc.open_algos.values()}
        for s in SYMBOLS:
            if sym is not None and s != sym:
                continue
            for side in sides:
                pos = acc.positions.get((s, side))
                if pos is None:
                    if only_active and s not in active:
                        continue
                    pos = Position(s, side)
                elif only_active and pos.amt == 0 and s not in active:
                    continue
                yield pos

    def position_risk(self, acc: Account, p: P.Params, v3: bool) -> list[dict[str, object]]:
        spec = P.symbol(p, required=False)
        out = []
        for pos in self._visible_positions(acc, v3, spec.symbol if spec else None):
            s = SYMBOLS[pos.symbol]
            n = self._pos_numbers(acc, pos)
            pp = s.price_precision
            iso = self.isolated(acc, pos.symbol)
            iso_margin = pos.isolated_wallet + n["upnl"] if iso else ZERO
            lev = self.lev(acc, pos.symbol)
            be = pos.entry * (ONE + TAKER_FEE) if pos.amt > 0 else pos.entry * (ONE - TAKER_FEE)
            d: dict[str, object] = {
                "symbol": pos.symbol,
                "positionSide": pos.side,
                "positionAmt": fmt(pos.amt, s.qty_precision),
                "entryPrice": fmt(pos.entry, 8).rstrip("0").rstrip(".") if pos.entry else "0.0",
                "breakEvenPrice": fmt(be, 8).rstrip("0").rstrip(".") if pos.entry else "0.0",
                "markPrice": fmt(n["mark"], 8),
                "unRealizedProfit": fmt(n["upnl"], 8),
                "liquidationPrice": fmt(n["liq"], 8) if n["liq"] else "0",
                "isolatedMargin": fmt(iso_margin, 8),
                "notional": fmt(n["notional"], 8),
                "isolatedWallet": fmt(pos.isolated_wallet, 8) if iso else "0",
                "updateTime": pos.update_time,
            }
            if v3:
                d.update(
                    {
                        "marginAsset": "USDT",
                        "initialMargin": fmt(n["im"], 8),
                        "maintMargin": fmt(n["mm"], 8),
                        "positionInitialMargin": fmt(n["im"], 8),
                        "openOrderInitialMargin": "0",
                        "adl": 0 if pos.amt == 0 else 2,
                        "bidNotional": "0",
                        "askNotional": "0",
                    }
                )
            else:
                d.update(
                    {
                        "leverage": str(lev),
                        "maxNotionalValue": str(s.max_notional(lev)),
                        "marginType": "isolated" if iso else "cross",
                        "isAutoAddMargin": "false",
                    }
                )
            del pp
            out.append(d)
        return out

    def account(self, acc: Account, v3: bool) -> dict[str, object]:
        sm = self.summary(acc)
        t = acc.update_time
        assets = []
        for asset in ASSETS:
            usdt = asset == "USDT"
            z = "0.00000000"

            def f(key: str, usdt: bool = usdt, z: str = z) -> str:
                return fmt(sm[key], 8) if usdt else z

            assets.append(
                {
                    "asset": asset,
                    "walletBalance": f("wallet"),
                    "unrealizedProfit": f("upnl"),
                    "marginBalance": fmt(sm["wallet"] + sm["upnl"], 8) if usdt else z,
                    "maintMargin": f("maint"),
                    "initialMargin": fmt(sm["position_im"] + sm["open_order_im"], 8) if usdt else z,
                    "positionInitialMargin": f("position_im"),
                    "openOrderInitialMargin": f("open_order_im"),
                    "crossWalletBalance": f("cross_wallet"),
                    "crossUnPnl": f("cross_upnl"),
                    "availableBalance": f("available"),
                    "maxWithdrawAmount": f("max_withdraw"),
                    "updateTime": t if usdt else 0,
                    **({} if v3 else {"marginAvailable": True}),
                }
            )
        top = {
            "totalInitialMargin": fmt(sm["position_im"] + sm["open_order_im"], 8),
            "totalMaintMargin": fmt(sm["maint"], 8),
            "totalWalletBalance": fmt(sm["wallet"], 8),
            "totalUnrealizedProfit": fmt(sm["upnl"], 8),
            "totalMarginBalance": fmt(sm["wallet"] + sm["upnl"], 8),
            "totalPositionInitialMargin": fmt(sm["position_im"], 8),
            "totalOpenOrderInitialMargin": fmt(sm["open_order_im"], 8),
            "totalCrossWalletBalance": fmt(sm["cross_wallet"], 8),
            "totalCrossUnPnl": fmt(sm["cross_upnl"], 8),
            "availableBalance": fmt(sm["available"], 8),
            "maxWithdrawAmount": fmt(sm["max_withdraw"], 8),
        }
        positions = []
        for pos in self._visible_positions(acc, v3, None):
            n = self._pos_numbers(acc, pos)
            s = SYMBOLS[pos.symbol]
            iso = self.isolated(acc, pos.symbol)
            d: dict[str, object] = {
                "symbol": pos.symbol,
                "positionSide": pos.side,
                "positionAmt": fmt(pos.amt, s.qty_precision),
                "unrealizedProfit": fmt(n["upnl"], 8),
                "isolatedMargin": fmt(pos.isolated_wallet + n["upnl"], 8) if iso else "0",
                "notional": fmt(n["notional"], 8),
                "isolatedWallet": fmt(pos.isolated_wallet, 8) if iso else "0",
                "initialMargin": fmt(n["im"], 8),
                "maintMargin": fmt(n["mm"], 8),
                "updateTime": pos.update_time,
            }
            if not v3:
                lev = self.lev(acc, pos.symbol)
                d.update(
                    {
                        "positionInitialMargin": fmt(n["im"], 8),
                        "openOrderInitialMargin": "0",
                        "leverage": str(lev),
                        "isolated": iso,
                        "entryPrice": fmt(pos.entry, 8).rstrip("0").rstrip(".") if pos.entry else "0.0",
                        "breakEvenPrice": "0.0",
                        "maxNotional": str(s.max_notional(lev)),
                        "bidNotional": "0",
                        "askNotional": "0",
                    }
                )
            positions.append(d)
        if v3:
            return {**top, "assets": assets, "positions": positions}
        return {
            "feeTier": 0,
            "feeBurn": False,
            "canTrade": True,
            "canDeposit": True,
            "canWithdraw": True,
            "updateTime": 0,
            "multiAssetsMargin": False,
            "tradeGroupId": -1,
            **top,
            "assets": assets,
            "positions": positions,
        }

    def balances(self, acc: Account) -> list[dict[str, object]]:
        sm = self.summary(acc)
        alias = acc.api_key[:4]
        out = []
        for asset in ASSETS:
            usdt = asset == "USDT"
            z = "0.00000000"
            out.append(
                {
                    "accountAlias": alias,
                    "asset": asset,
                    "balance": fmt(sm["wallet"], 8) if usdt else z,
                    "crossWalletBalance": fmt(sm["cross_wallet"], 8) if usdt else z,
                    "crossUnPnl": fmt(sm["cross_upnl"], 8) if usdt else z,
                    "availableBalance": fmt(sm["available"], 8) if usdt else z,
                    "maxWithdrawAmount": fmt(sm["max_withdraw"], 8) if usdt else z,
                    "marginAvailable": True,
                    "updateTime": acc.update_time if usdt else 0,
                }
            )
        return out

    def symbol_config(self, acc: Account, p: P.Params) -> list[dict[str, object]]:
        spec = P.symbol(p, required=False)
        out = []
        for s in SYMBOLS.values():
            if spec is not None and s is not spec:
                continue
            lev = self.lev(acc, s.symbol)
            out.append(
                {
                    "symbol": s.symbol,
                    "marginType": acc.margin.get(s.symbol, "CROSSED"),
                    "isAutoAddMargin": False,
                    "leverage": lev,
                    "maxNotionalValue": str(s.max_notional(lev)),
                }
            )
        return out

    def account_config(self, acc: Account) -> dict[str, object]:
        return {
            "feeTier": 0,
            "canTrade": True,
            "canDeposit": True,
            "canWithdraw": True,
            "dualSidePosition": acc.dual,
            "updateTime": acc.update_time,
            "multiAssetsMargin": False,
            "tradeGroupId": -1,
        }

    def income(self, acc: Account, p: P.Params) -> list[dict[str, object]]:
        spec = P.symbol(p, required=False)
        typ = p.get("incomeType") or None
        start = P.integer(p, "startTime")
        end = P.integer(p, "endTime")
        page = P.integer(p, "page", default=1) or 1
        lim = P.limit(p, 100, 1000)
        if start is None and end is None:
            start = self.market.now() - 7 * DAY
        rows = [
            i
            for i in acc.income
            if (spec is None or i.symbol == spec.symbol)
            and (typ is None or i.income_type == typ)
            and (start is None or i.time >= start)
            and (end is None or i.time <= end)
        ]
        rows.sort(key=lambda i: (i.time, i.tran_id))
        lo = (page - 1) * lim
        return [i.json() for i in rows[lo : lo + lim]]

    # ------------------------------------------------------------------ simulation -----------
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

    def _finish_algo_for(self, acc: Account, o: Order) -> None:
        if o.is_open:
            return
        for a in acc.algos.values():
            if a.actual_order_id == o.order_id and a.status == "TRIGGERED":
                a.status = "FINISHED"
                a.actual_qty = o.executed_qty
                a.actual_price = o.avg_price
                a.update_time = o.update_time
                self.store.put("algos", a.algo_id, a)

    def _algo_fires(self, a: Algo, price: Decimal) -> bool:
        if a.order_type != "TRAILING_STOP_MARKET":
            return self._should_trigger(a.order_type, a.side, a.trigger_price, price)
        changed = False
        if not a.activated:
            ap = a.activate_price or ZERO
            if (a.side == "SELL" and price >= ap) or (a.side == "BUY" and price <= ap):
                a.activated = True
                a.extreme = price
                changed = True
        fires = False
        if a.activated:
            rate = (a.callback_rate or ZERO) / 100
            ext = a.extreme if a.extreme is not None else price
            if a.side == "SELL":
                if price > ext:
                    a.extreme, changed = price, True
                fires = price <= (a.extreme or price) * (ONE - rate)
            else:
                if price < ext:
                    a.extreme, changed = price, True
                fires = price >= (a.extreme or price) * (ONE + rate)
        if changed:
            self.store.put("algos", a.algo_id, a)
        return fires

    def _trigger(self, acc: Account, a: Algo, price: Decimal, t: int) -> None:
        a.trigger_time = t
        a.update_time = t
        acc.open_algos.pop(a.algo_id, None)
        spec = SYMBOLS[a.symbol]
        cap = self._reduce_capacity(acc, a.symbol, a.position_side, a.side)
        if a.close_position:
            qty = cap
        elif a.reduce_only:
            qty = min(a.quantity, cap)
        else:
            qty = a.quantity
        if qty <= 0:
            a.status = "EXPIRED"
            self.store.put("algos", a.algo_id, a)
            return
        limit = a.order_type in ("STOP", "TAKE_PROFIT")
        if not (a.reduce_only or a.close_position):
            try:
                self._check_margin(acc, spec, a.position_side, a.side, qty, a.price if limit else price)
            except BinanceError:
                a.status = "REJECTED"
                self.store.put("algos", a.algo_id, a)
                return
        o = Order(
            self.next_order_id,
            acc.api_key,
            a.symbol,
            self._client_id(),
            a.side,
            "LIMIT" if limit else "MARKET",
            a.tif if limit else "GTC",
            a.price if limit else ZERO,
            qty,
            a.position_side,
            a.reduce_only or a.close_position,
            t,
            t,
            close_position=a.close_position,
            working_type=a.working_type,
            stop_price=a.trigger_price,
            price_protect=a.price_protect,
        )
        self.next_order_id += 1
        self.orders[o.order_id] = o
        self._index_order(acc, o)
        a.actual_order_id = o.order_id
        a.status = "TRIGGERED"
        if limit:
            self._place_limit_quiet(acc, o, price, t)
        else:
            self._execute_market(acc, o, price, t)
        self.store.put("orders", o.order_id, o)
        if not o.is_open:
            a.status = "FINISHED"
            a.actual_qty = o.executed_qty
            a.actual_price = o.avg_price
        self.store.put("algos", a.algo_id, a)

    def _place_limit_quiet(self, acc: Account, o: Order, price: Decimal, t: int) -> None:
        with contextlib.suppress(BinanceError):
            self._place_limit(acc, o, price, t)

    def _check_liquidation(self, acc: Account, t: int) -> list[dict[str, object]]:
        """Liquidate isolated positions at or below their maintenance margin, then the whole cross
        account if its margin balance is at or below the cross maintenance margin."""
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
        if cross_positions and cross_mb <= cross_mm:
            for pos in cross_positions:
                out.append(self._liquidate(acc, pos, price(pos.symbol), t, isolated=False))
            if acc.balance < 0:
                self._income(acc, "", "INSURANCE_CLEAR", -acc.balance, t, info="INSURANCE_CLEAR")
                acc.balance = ZERO
        if out:
            self._save_acc(acc)
        return out

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
            f"autoclose-{t}{self.next_order_id % 1000:03d}",
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
                if changed:
                    acc.update_time = max(acc.update_time, ft)
                    self._save_acc(acc)

    def funding_history(self, p: P.Params) -> list[dict[str, object]]:
        spec = P.symbol(p, required=False)
        start = P.integer(p, "startTime")
        end = P.integer(p, "endTime")
        lim = P.limit(p, 100, 1000)
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

    # ------------------------------------------------------------------ admin view -----------
    def state(self, acc: Account) -> dict[str, object]:
        positions = []
        for pos in acc.positions.values():
            s = SYMBOLS[pos.symbol]
            n = self._pos_numbers(acc, pos)
            positions.append(
                {
                    "symbol": pos.symbol,
                    "positionSide": pos.side,
                    "positionAmt": fmt(pos.amt, s.qty_precision),
                    "entryPrice": format(pos.entry.normalize(), "f") if pos.entry else "0",
                    "marginType": "ISOLATED" if self.isolated(acc, pos.symbol) else "CROSSED",
                    "leverage": self.lev(acc, pos.symbol),
                    "isolatedWallet": fmt(pos.isolated_wallet, 8),
                    "markPrice": str(n["mark"]),
                    "unRealizedProfit": fmt(n["upnl"], 8),
                    "liquidationPrice": fmt(n["liq"], 8),
                    "updateTime": pos.update_time,
                }
            )
        algos = []
        for a in acc.algos.values():
            d = a.json(query=True)
            d["actualOrderId"] = a.actual_order_id
            algos.append(d)
        return {
            "name": acc.name,
            "balances": self.balances(acc),
            "positions": positions,
            "orders": [o.json() for o in acc.orders],
            "algoOrders": algos,
            "income": [i.json() for i in acc.income],
            "trades": [t.json() for t in acc.trades],
            "dualSidePosition": acc.dual,
            "leverage": {s: self.lev(acc, s) for s in SYMBOLS},
            "marginType": {s: acc.margin.get(s, "CROSSED") for s in SYMBOLS},
        }


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
