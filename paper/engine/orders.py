"""Plain orders (LIMIT and MARKET): placing, querying, cancelling and modifying them.

Validation follows Binance's order of checks, so each bad request gets the error code the real
exchange would give. Conditional types are refused with -4120: they go to /fapi/v1/algoOrder.
"""

from __future__ import annotations

import sys
from decimal import Decimal

from .. import params
from ..errors import MSG_ALGO_SWITCH, MSG_NO_ORDER, MSG_UNKNOWN_ORDER, bad_value, err
from ..models import ZERO, Account, Order
from ..symbols import SymbolSpec
from .algos import CONDITIONAL, SIDES, AlgoOrders
from .events import OrderChanged
from .filters import check_notional, check_percent_price, check_price, check_qty

TIFS = ("GTC", "IOC", "FOK", "GTX", "GTD", "RPI")
STP_MODES = ("NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH")
GTD_MIN_AHEAD_MS = 600_000


class Orders(AlgoOrders):
    """Plain orders on top of fills and algo orders."""

    def new_order(self, acc: Account, p: params.Params, test: bool = False) -> dict[str, object]:
        """POST /fapi/v1/order (and /order/test with `test`: validate, place nothing)."""
        spec = params.symbol(p)
        assert spec is not None
        side = params.enum(p, "side", SIDES, -1117, "Invalid side.")
        typ = params.req(p, "type")
        if typ in CONDITIONAL:
            raise err(-4120, MSG_ALGO_SWITCH)
        if typ not in ("LIMIT", "MARKET"):
            raise err(-1116, "Invalid orderType.")
        pside = self._position_side(acc, p)
        reduce_only = self._reduce_only_param(acc, p)
        if "closePosition" in p and params.boolean(p, "closePosition"):
            raise err(-4120, MSG_ALGO_SWITCH)
        resp_type = params.enum(
            p, "newOrderRespType", ("ACK", "RESULT"), -1136, "Invalid newOrderRespType.", required=False, default="ACK"
        )
        cid = _client_order_id(p)
        qty = params.dec(p, "quantity")
        assert qty is not None
        assert side is not None
        stp = params.enum(
            p,
            "selfTradePreventionMode",
            STP_MODES,
            -5039,
            "Invalid self trade prevention mode.",
            required=False,
            default="EXPIRE_MAKER",
        )
        mark = self.market.price(spec.symbol)
        t = self.market.now()
        tif, price, gtd = _price_terms(spec, p, typ, qty, mark, t)
        self._check_new_order(acc, spec, typ, side, pside, qty, price if typ == "LIMIT" else mark, reduce_only, cid)
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
        self.emit(OrderChanged(acc, o, "NEW", t))
        ack = o.json(with_time=False) if resp_type == "ACK" else None
        if typ == "MARKET":
            self._execute_market(acc, o, mark, t)
        else:
            self._place_limit(acc, o, mark, t)
        self.store.put("orders", o.order_id, o)
        return ack if ack is not None else o.json(with_time=False)

    def _check_new_order(
        self,
        acc: Account,
        spec: SymbolSpec,
        typ: str,
        side: str,
        pside: str,
        qty: Decimal,
        notional_price: Decimal,
        reduce_only: bool,
        cid: str | None,
    ) -> None:
        """Notional, duplicate client id, reduce-only capacity or margin, open-order count."""
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

    def _find_order(self, acc: Account, p: params.Params, spec: SymbolSpec, open_only: bool = False) -> Order | None:
        oid = params.integer(p, "orderId")
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

    def _order_or_raise(self, acc: Account, p: params.Params, code: int, msg: str, *, open_only: bool) -> Order:
        spec = params.symbol(p)
        assert spec is not None
        o = self._find_order(acc, p, spec)
        if o is None or (open_only and not o.is_open):
            raise err(code, msg)
        return o

    def query_order(self, acc: Account, p: params.Params) -> dict[str, object]:
        return self._order_or_raise(acc, p, -2013, MSG_NO_ORDER, open_only=False).json()

    def open_order(self, acc: Account, p: params.Params) -> dict[str, object]:
        return self._order_or_raise(acc, p, -2013, MSG_NO_ORDER, open_only=True).json()

    def cancel_order(self, acc: Account, p: params.Params) -> dict[str, object]:
        o = self._order_or_raise(acc, p, -2011, MSG_UNKNOWN_ORDER, open_only=True)
        o.update_time = self.market.now()
        self._set_final(acc, o, "CANCELED")
        self.store.put("orders", o.order_id, o)
        return o.json(with_time=False)

    def cancel_all(self, acc: Account, p: params.Params) -> dict[str, object]:
        spec = params.symbol(p)
        assert spec is not None
        t = self.market.now()
        for o in list(acc.open_orders.values()):
            if o.symbol == spec.symbol:
                o.update_time = t
                self._set_final(acc, o, "CANCELED")
                self.store.put("orders", o.order_id, o)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def modify_order(self, acc: Account, p: params.Params) -> dict[str, object]:
        spec = params.symbol(p)
        assert spec is not None
        side = params.enum(p, "side", SIDES, -1117, "Invalid side.")
        qty = params.dec(p, "quantity")
        price = params.dec(p, "price")
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
            self.emit(OrderChanged(acc, o, "AMENDMENT", t))
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

    def open_orders(self, acc: Account, p: params.Params) -> list[dict[str, object]]:
        spec = params.symbol(p, required=False)
        return [o.json() for o in acc.open_orders.values() if spec is None or o.symbol == spec.symbol]


def _client_order_id(p: params.Params) -> str | None:
    cid = p.get("newClientOrderId")
    if cid is not None:
        if cid == "":
            raise err(-1118, "New client order ID was empty.")
        if len(cid) > 36:
            raise err(-4015, "Client order id length should not be more than 36 chars")
        if not params.CLIENT_ID.match(cid):
            raise err(-4015, "Client order id is not valid.")
    return cid


def _price_terms(
    spec: SymbolSpec, p: params.Params, typ: str, qty: Decimal, mark: Decimal, now: int
) -> tuple[str, Decimal, int]:
    """(timeInForce, price, goodTillDate) of a new order, after the price and quantity filters."""
    if typ != "LIMIT":
        check_qty(spec, qty, market=True)
        return "GTC", ZERO, 0
    tif = params.enum(p, "timeInForce", TIFS, -1115, "Invalid timeInForce.")
    price = params.dec(p, "price")
    assert price is not None
    assert tif is not None
    check_price(spec, price)
    check_qty(spec, qty, market=False)
    check_percent_price(spec, price, mark)
    gtd = 0
    if tif == "GTD":
        gtd = params.integer(p, "goodTillDate", required=True) or 0
        if gtd <= now + GTD_MIN_AHEAD_MS:
            raise err(
                -5040,
                "goodTillDate must be greater than current time plus 600 seconds and smaller than 253402300799000",
            )
    return tif, price, gtd
