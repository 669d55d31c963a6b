"""Algo (conditional) orders: STOP, STOP_MARKET, TAKE_PROFIT, TAKE_PROFIT_MARKET and
TRAILING_STOP_MARKET placed through /fapi/v1/algoOrder, and what happens when one fires.

Since 2025 Binance keeps conditional orders apart from plain orders (their own ids, statuses
and endpoints); a fired algo order places a plain MARKET or LIMIT order, linked by
``actualOrderId``.
"""

from __future__ import annotations

from decimal import Decimal

from .. import params
from ..errors import MSG_NO_ORDER, MSG_UNKNOWN_ORDER, BinanceError, bad_value, err
from ..models import ZERO, Account, Algo, Order
from ..symbols import SYMBOLS, SymbolSpec
from .events import AlgoChanged, OrderChanged
from .fills import ONE, Fills
from .filters import check_notional, check_price, check_qty

CONDITIONAL = ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")
SIDES = ("BUY", "SELL")
ALGO_TIFS = ("GTC", "IOC", "FOK", "GTX", "GTD")
MAX_OPEN_ALGOS = 200
MSG_4509 = (
    "Time in Force (TIF) GTE can only be used with open positions or open orders. "
    "Please ensure that positions are available."
)


class AlgoOrders(Fills):
    """Conditional orders on top of fills (a fired one executes through them)."""

    def new_algo(self, acc: Account, p: params.Params) -> dict[str, object]:
        """POST /fapi/v1/algoOrder: validate in Binance's order, then rest the conditional order."""
        algo_type = params.req(p, "algoType")
        if algo_type != "CONDITIONAL":
            raise bad_value("algoType")
        spec = params.symbol(p)
        assert spec is not None
        side = params.enum(p, "side", SIDES, -1117, "Invalid side.")
        typ = params.req(p, "type")
        if typ not in CONDITIONAL:
            raise err(-1116, "Invalid orderType.")
        assert side is not None
        pside = self._position_side(acc, p)
        reduce_only = self._reduce_only_param(acc, p)
        close_position = params.boolean(p, "closePosition")
        working = params.enum(
            p,
            "workingType",
            ("MARK_PRICE", "CONTRACT_PRICE"),
            -4031,
            "Invalid parameter working type",
            required=False,
            default="CONTRACT_PRICE",
        )
        price_protect = params.boolean(p, "priceProtect")
        tif = params.enum(p, "timeInForce", ALGO_TIFS, -1115, "Invalid timeInForce.", required=False, default="GTC")
        cid = p.get("clientAlgoId")
        if cid is not None and (len(cid) > 36 or not params.CLIENT_ID.match(cid)):
            raise err(-4015, "Client order id is not valid.")
        mark = self.market.price(spec.symbol)
        trigger, price, activate, callback = self._algo_prices(spec, p, typ, close_position)
        qty = self._algo_quantity(acc, spec, p, typ, side, pside, reduce_only, close_position, price or trigger or mark)
        if typ != "TRAILING_STOP_MARKET" and self._should_trigger(typ, side, trigger, mark):
            raise err(-2021, "Order would immediately trigger.")
        if cid is not None and any(a.client_algo_id == cid for a in acc.open_algos.values()):
            raise err(-4116, "clientOrderId is duplicated")
        if len(acc.open_algos) >= MAX_OPEN_ALGOS:
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
        self.emit(AlgoChanged(acc, a, t))
        return a.json()

    @staticmethod
    def _algo_prices(
        spec: SymbolSpec, p: params.Params, typ: str, close_position: bool
    ) -> tuple[Decimal, Decimal, Decimal | None, Decimal | None]:
        """(trigger price, limit price, activation price, callback rate) of a new algo order."""
        activate: Decimal | None = None
        callback: Decimal | None = None
        trigger = ZERO
        if typ == "TRAILING_STOP_MARKET":
            callback = params.dec(p, "callbackRate")
            assert callback is not None
            if callback < Decimal("0.1") or callback > 20:
                raise err(-4136 if close_position else -1130, "Invalid callBack rate.")
            activate = params.dec(p, "activatePrice", required=False)
            if activate is not None:
                check_price(spec, activate)
            if close_position:
                raise err(-4136, "Target strategy invalid for orderType TRAILING_STOP_MARKET,closePosition true")
        else:
            trig = params.dec(p, "triggerPrice")
            assert trig is not None
            check_price(spec, trig)
            trigger = trig
        price = ZERO
        if typ in ("STOP", "TAKE_PROFIT"):
            limit_price = params.dec(p, "price")
            assert limit_price is not None
            check_price(spec, limit_price)
            price = limit_price
            if close_position:
                raise err(-4136, f"Target strategy invalid for orderType {typ},closePosition true")
        return trigger, price, activate, callback

    def _algo_quantity(
        self,
        acc: Account,
        spec: SymbolSpec,
        p: params.Params,
        typ: str,
        side: str,
        pside: str,
        reduce_only: bool,
        close_position: bool,
        notional_price: Decimal,
    ) -> Decimal:
        """The quantity of a new algo order (0 for closePosition), checked against the filters."""
        if close_position:
            if p.get("quantity"):
                raise err(-4137, "Quantity must be zero with closePosition equals true")
            if "reduceOnly" in p and reduce_only:
                raise err(-4138, "Reduce only must be true with closePosition equals true")
            if acc.dual and ((side == "BUY" and pside == "LONG") or (side == "SELL" and pside == "SHORT")):
                raise err(-4061, "Order's position side does not match user's setting.")
            if self._reduce_capacity(acc, spec.symbol, pside, side) == 0:
                raise err(-4509, MSG_4509)
            return ZERO
        qty = params.dec(p, "quantity")
        assert qty is not None
        check_qty(spec, qty, market=typ.endswith("MARKET"))
        if not reduce_only:
            check_notional(spec, qty * notional_price)
        return qty

    @staticmethod
    def _should_trigger(typ: str, side: str, trigger: Decimal, price: Decimal) -> bool:
        if typ in ("STOP", "STOP_MARKET"):
            return price >= trigger if side == "BUY" else price <= trigger
        return price <= trigger if side == "BUY" else price >= trigger

    def _find_algo(self, acc: Account, p: params.Params) -> Algo | None:
        aid = params.integer(p, "algoId")
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

    def query_algo(self, acc: Account, p: params.Params) -> dict[str, object]:
        a = self._find_algo(acc, p)
        if a is None:
            raise err(-2013, MSG_NO_ORDER)
        return a.json(query=True)

    def cancel_algo(self, acc: Account, p: params.Params) -> dict[str, object]:
        a = self._find_algo(acc, p)
        if a is None or not a.is_open:
            raise err(-2011, MSG_UNKNOWN_ORDER)
        self._end_algo(acc, a, "CANCELED")
        return {"algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "code": "200", "msg": "success"}

    def _end_algo(self, acc: Account, a: Algo, status: str) -> None:
        a.update_time = self.market.now()
        acc.open_algos.pop(a.algo_id, None)
        self._set_algo_status(acc, a, status, a.update_time)

    def _set_algo_status(self, acc: Account, a: Algo, status: str, t: int, reason: str = "") -> None:
        """Move an algo order to `status`, persist it, and tell the listeners."""
        a.status = status
        self.store.put("algos", a.algo_id, a)
        self.emit(AlgoChanged(acc, a, t, reason))

    def cancel_all_algo(self, acc: Account, p: params.Params) -> dict[str, object]:
        spec = params.symbol(p)
        assert spec is not None
        for a in list(acc.open_algos.values()):
            if a.symbol == spec.symbol:
                self._end_algo(acc, a, "CANCELED")
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def open_algos(self, acc: Account, p: params.Params) -> list[dict[str, object]]:
        spec = params.symbol(p, required=False)
        aid = params.integer(p, "algoId")
        return [
            a.json(query=True)
            for a in acc.open_algos.values()
            if (spec is None or a.symbol == spec.symbol) and (aid is None or a.algo_id == aid)
        ]

    def _finish_algo_for(self, acc: Account, o: Order) -> None:
        if o.is_open:
            return
        for a in acc.algos.values():
            if a.actual_order_id == o.order_id and a.status == "TRIGGERED":
                a.actual_qty = o.executed_qty
                a.actual_price = o.avg_price
                a.update_time = o.update_time
                self._set_algo_status(acc, a, "FINISHED", o.update_time)

    def _algo_fires(self, a: Algo, price: Decimal) -> bool:
        """Whether a resting algo order fires at `price` (a trailing stop tracks its extreme)."""
        if a.order_type != "TRAILING_STOP_MARKET":
            return self._should_trigger(a.order_type, a.side, a.trigger_price, price)
        changed = False
        if not a.activated:
            ap = a.activate_price or ZERO
            if (a.side == "SELL" and price >= ap) or (a.side == "BUY" and price <= ap):
                a.activated = True
                a.extreme = price
                changed = True
                self.emit(AlgoChanged(self.accounts[a.api_key], a, self.market.now()))
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
        """Fire an algo order: TRIGGERING, then EXPIRED (nothing to reduce), REJECTED (margin) or
        TRIGGERED with a plain order placed, FINISHED once that order is done."""
        a.trigger_time = t
        a.update_time = t
        acc.open_algos.pop(a.algo_id, None)
        self._set_algo_status(acc, a, "TRIGGERING", t)
        qty = self._trigger_quantity(acc, a)
        if qty <= 0:
            self._set_algo_status(acc, a, "EXPIRED", t, "Reduce only order is rejected")
            return
        limit = a.order_type in ("STOP", "TAKE_PROFIT")
        if not (a.reduce_only or a.close_position):
            try:
                self._check_margin(acc, SYMBOLS[a.symbol], a.position_side, a.side, qty, a.price if limit else price)
            except BinanceError as e:
                self._set_algo_status(acc, a, "REJECTED", t, e.msg)
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
        self._set_algo_status(acc, a, "TRIGGERED", t)
        self.emit(OrderChanged(acc, o, "NEW", t))
        if limit:
            self._place_limit_quiet(acc, o, price, t)
        else:
            self._execute_market(acc, o, price, t)
        self.store.put("orders", o.order_id, o)
        if not o.is_open:
            a.actual_qty = o.executed_qty
            a.actual_price = o.avg_price
            self._set_algo_status(acc, a, "FINISHED", t)

    def _trigger_quantity(self, acc: Account, a: Algo) -> Decimal:
        cap = self._reduce_capacity(acc, a.symbol, a.position_side, a.side)
        if a.close_position:
            return cap
        if a.reduce_only:
            return min(a.quantity, cap)
        return a.quantity
