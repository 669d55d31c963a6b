"""One handler per command. Each takes the account's exchange client and a validated payload."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from schemas import commands as cmd
from schemas import errors
from schemas import replies as r
from schemas.enums import CommandType, PositionDirection, Side
from worker import ids, metrics
from worker.binance.client import FapiClient
from worker.binance.errors import ExchangeError, ExchangeNotFound, ExchangeRejected, OrderStatusUnknown
from worker.orders import find_algo_order, find_order, place_once
from worker.outcome import Outcome, Refusal

log = logging.getLogger("aiqt.worker.handlers")

ZERO = Decimal(0)
HEDGE_MODE_TTL = 30.0
PROTECTION_NAMES = {ids.STOP_LOSS: "stopLoss", ids.TAKE_PROFIT: "takeProfit"}
#: Algo order states in which a stop loss / take profit protects nothing and never will.
DEAD_ALGO_STATUSES = frozenset({"CANCELED", "REJECTED"})


@dataclass
class AccountContext:
    """What a handler needs for one account."""

    name: str
    client: FapiClient
    protection_policy: str
    _hedge: tuple[bool, float] | None = None

    async def hedge_mode(self, *, fresh: bool = False) -> bool:
        now = time.monotonic()
        if fresh or self._hedge is None or now - self._hedge[1] > HEDGE_MODE_TTL:
            body = await self.client.call("GET", "/fapi/v1/positionSide/dual")
            self._hedge = (bool(body["dualSidePosition"]), now)
        return self._hedge[0]


@dataclass(frozen=True)
class Run:
    """One execution of a command."""

    command_id: str
    redelivered: bool
    #: Expired in the queue after an earlier run crashed: only finish what that run started.
    complete_only: bool = False


EXPIRED_REASON = "deadline exceeded before execution; not executed"


def _not_executed(run: Run) -> Refusal:
    return Refusal(
        errors.TIMEOUT,
        f"Command {run.command_id} expired in the queue; it was not executed",
        dead_letter=EXPIRED_REASON,
    )


async def _started_by_earlier_run(client: FapiClient, lookup: Any) -> dict[str, Any] | None:
    """For an expired, redelivered command: did the crashed run send this order? Waits out the
    recvWindow of anything it may still have in flight before trusting "no"."""
    found: dict[str, Any] | None = await lookup()
    if found is None:
        await asyncio.sleep((client.recv_window + 1000) / 1000)
        found = await lookup()
    return found


def _dec(value: Any) -> Decimal:
    if value is None or value == "":
        return ZERO
    return value if isinstance(value, Decimal) else Decimal(str(value))


def order_view(o: dict[str, Any]) -> r.Order:
    """A Binance order object (from POST/GET/PUT/DELETE order) in the document's shape."""
    executed = o.get("executedQty", "0")
    return r.Order(
        orderId=int(o["orderId"]),
        symbol=o["symbol"],
        status=o["status"],
        clientOrderId=o.get("clientOrderId", ""),
        price=_dec(o.get("price")),
        avgPrice=_dec(o.get("avgPrice")),
        origQty=_dec(o.get("origQty")),
        executedQty=_dec(executed),
        cumQty=_dec(o.get("cumQty", executed)),
        cumQuote=_dec(o.get("cumQuote")),
        timeInForce=o.get("timeInForce", "GTC"),
        type=o["type"],
        reduceOnly=bool(o.get("reduceOnly", False)),
        closePosition=bool(o.get("closePosition", False)),
        side=o["side"],
        positionSide=o.get("positionSide", "BOTH"),
        stopPrice=_dec(o.get("stopPrice")),
        workingType=o.get("workingType", "CONTRACT_PRICE"),
        priceProtect=bool(o.get("priceProtect", False)),
        origType=o.get("origType", o["type"]),
        priceMatch=o.get("priceMatch", "NONE"),
        selfTradePreventionMode=o.get("selfTradePreventionMode", "NONE"),
        goodTillDate=int(o.get("goodTillDate") or 0),
        updateTime=int(o.get("updateTime") or o.get("time") or 0),
    )


def algo_view(a: dict[str, Any]) -> r.Order:
    """An algo (conditional) order mapped onto the order object, as the document's SL/TP show."""
    return r.Order(
        orderId=int(a["algoId"]),
        symbol=a["symbol"],
        status=a.get("algoStatus", "NEW"),
        clientOrderId=a.get("clientAlgoId", ""),
        price=_dec(a.get("price")),
        avgPrice=_dec(a.get("actualPrice")),
        origQty=_dec(a.get("quantity")),
        executedQty=_dec(a.get("actualQty")),
        cumQty=_dec(a.get("actualQty")),
        cumQuote=ZERO,
        timeInForce=a.get("timeInForce", "GTC"),
        type=a.get("orderType", a.get("type", "")),
        reduceOnly=bool(a.get("reduceOnly", False)) or bool(a.get("closePosition", False)),
        closePosition=bool(a.get("closePosition", False)),
        side=a["side"],
        positionSide=a.get("positionSide", "BOTH"),
        stopPrice=_dec(a.get("triggerPrice")),
        workingType=a.get("workingType", "CONTRACT_PRICE"),
        priceProtect=bool(a.get("priceProtect", False)),
        origType=a.get("orderType", a.get("type", "")),
        priceMatch=a.get("priceMatch", "NONE"),
        selfTradePreventionMode=a.get("selfTradePreventionMode", "NONE"),
        goodTillDate=int(a.get("goodTillDate") or 0),
        updateTime=int(a.get("updateTime") or a.get("createTime") or 0),
    )


def _rejected(exc: ExchangeError) -> Refusal:
    return Refusal(exc.code if exc.code is not None else errors.BAD_REQUEST, exc.msg)


# --- account.summary ---------------------------------------------------------------------------


async def account_summary(ctx: AccountContext, p: cmd.AccountSummary, run: Run) -> Outcome:
    sym = {"symbol": p.symbol} if p.symbol else None
    c = ctx.client
    account, risk, open_orders, algo_orders, config = await asyncio.gather(
        c.call("GET", "/fapi/v2/account"),
        c.call("GET", "/fapi/v2/positionRisk", sym),
        c.call("GET", "/fapi/v1/openOrders", sym),
        c.call("GET", "/fapi/v1/openAlgoOrders", sym),
        c.call("GET", "/fapi/v1/accountConfig"),
    )
    assets = account.get("assets", [])
    info = r.AccountInfo(
        totalWalletBalance=_dec(account.get("totalWalletBalance")),
        totalUnrealizedProfit=_dec(account.get("totalUnrealizedProfit")),
        totalMarginBalance=_dec(account.get("totalMarginBalance")),
        totalPositionInitialMargin=_dec(account.get("totalPositionInitialMargin")),
        totalOpenOrderInitialMargin=_dec(account.get("totalOpenOrderInitialMargin")),
        availableBalance=_dec(account.get("availableBalance")),
        maxWithdrawAmount=_dec(account.get("maxWithdrawAmount")),
        isHedgeMode=bool(config.get("dualSidePosition", False)),
        updateTime=max([int(a.get("updateTime") or 0) for a in assets] or [0]),
    )
    balances = [
        r.Balance(
            currency=a["asset"],
            balance=_dec(a.get("walletBalance")),
            available=_dec(a.get("availableBalance")),
            unrealizedPnl=_dec(a.get("unrealizedProfit")),
        )
        for a in assets
    ]
    if not p.showZero:
        balances = [b for b in balances if b.balance or b.available or b.unrealizedPnl]

    positions = [_position_view(row) for row in risk]
    if not p.showZero:
        positions = [pos for pos in positions if pos.quantity]

    active = [
        r.ActiveOrder(
            orderId=int(o["orderId"]),
            symbol=o["symbol"],
            positionSide=o.get("positionSide", "BOTH"),
            price=_dec(o.get("price")),
            origQty=_dec(o.get("origQty")),
            executedQty=_dec(o.get("executedQty")),
            status=o["status"],
            type=o["type"],
            side=o["side"],
            time=int(o.get("time") or o.get("updateTime") or 0),
            stopPrice=_dec(o.get("stopPrice")),
            workingType=o.get("workingType", "CONTRACT_PRICE"),
        )
        for o in open_orders
    ]
    active += [
        r.ActiveOrder(
            orderId=int(a["algoId"]),
            symbol=a["symbol"],
            positionSide=a.get("positionSide", "BOTH"),
            price=_dec(a.get("price")),
            origQty=_dec(a.get("quantity")),
            executedQty=ZERO,
            status=a.get("algoStatus", "NEW"),
            type=a.get("orderType", ""),
            side=a["side"],
            time=int(a.get("createTime") or a.get("updateTime") or 0),
            stopPrice=_dec(a.get("triggerPrice")),
            workingType=a.get("workingType", "CONTRACT_PRICE"),
        )
        for a in algo_orders
    ]
    data = r.AccountSummaryData(accountInfo=info, balances=balances, positions=positions, activeOrders=active)
    return Outcome(errors.OK, "Success", data)


def _position_view(row: dict[str, Any]) -> r.Position:
    amt = _dec(row.get("positionAmt"))
    side = row.get("positionSide", "BOTH")
    if side == "LONG" or (side == "BOTH" and amt > 0):
        direction = "LONG" if amt else "NEUTRAL"
    elif side == "SHORT" or amt < 0:
        direction = "SHORT" if amt else "NEUTRAL"
    else:
        direction = "NEUTRAL"
    leverage = int(_dec(row.get("leverage", 1)))
    isolated = str(row.get("marginType", "cross")).lower() == "isolated"
    notional = abs(_dec(row.get("notional")))
    if not notional:
        notional = abs(amt) * _dec(row.get("markPrice"))
    margin = _dec(row.get("isolatedMargin")) if isolated else (notional / leverage if leverage else ZERO)
    pnl = _dec(row.get("unRealizedProfit"))
    roe = (pnl / margin * 100).quantize(Decimal("0.01")) if margin else ZERO
    return r.Position(
        symbol=row["symbol"],
        positionSide=side,
        direction=direction,
        marginType="ISOLATED" if isolated else "CROSS",
        leverage=leverage,
        quantity=abs(amt),
        entryPrice=_dec(row.get("entryPrice")),
        markPrice=_dec(row.get("markPrice")),
        liquidationPrice=_dec(row.get("liquidationPrice")),
        marginUsed=margin.quantize(Decimal("0.00000001")) if margin else ZERO,
        unrealizedPnl=pnl,
        roe=roe,
    )


# --- market ------------------------------------------------------------------------------------


async def klines(ctx: AccountContext, p: cmd.Klines, run: Run) -> Outcome:
    rows = await ctx.client.call(
        "GET", "/fapi/v1/klines", {"symbol": p.symbol, "interval": p.interval.value, "limit": p.limit}, signed=False
    )
    data = r.KlinesData(
        symbol=p.symbol,
        interval=p.interval.value,
        klines=[
            r.Kline(
                time=int(k[0]),
                open=_dec(k[1]),
                high=_dec(k[2]),
                low=_dec(k[3]),
                close=_dec(k[4]),
                volume=_dec(k[5]),
                closeTime=int(k[6]),
                quoteVolume=_dec(k[7]),
            )
            for k in rows
        ],
    )
    return Outcome(errors.OK, "Success", data)


#: A funding fee is booked within this distance of its funding time.
FUNDING_MATCH_MS = 60_000


async def funding_rate(ctx: AccountContext, p: cmd.FundingRate, run: Run) -> Outcome:
    c = ctx.client
    try:
        premium = await c.call("GET", "/fapi/v1/premiumIndex", {"symbol": p.symbol}, signed=False)
    except ExchangeRejected as exc:
        if exc.code == -1121:
            raise Refusal(errors.BAD_REQUEST, "Invalid symbol") from exc
        raise
    current = r.CurrentRate(
        rate=_dec(premium.get("lastFundingRate")),
        time=int(premium.get("time") or 0),
        nextFundingTime=int(premium.get("nextFundingTime") or 0),
    )
    history = None
    if p.limit is not None:
        rows = await c.call("GET", "/fapi/v1/fundingRate", {"symbol": p.symbol, "limit": p.limit}, signed=False)
        fees: list[dict[str, Any]] = []
        if rows:
            start = min(int(row["fundingTime"]) for row in rows) - FUNDING_MATCH_MS
            fees = await c.call(
                "GET",
                "/fapi/v1/income",
                {"symbol": p.symbol, "incomeType": "FUNDING_FEE", "startTime": start, "limit": 1000},
            )
        history = []
        for row in rows:
            t = int(row["fundingTime"])
            realized = sum((_dec(f["income"]) for f in fees if abs(int(f["time"]) - t) <= FUNDING_MATCH_MS), ZERO)
            history.append(r.HistoryRate(rate=_dec(row["fundingRate"]), time=t, realized=realized))
    return Outcome(errors.OK, "Success", r.FundingRateData(symbol=p.symbol, currentRate=current, historyRates=history))


# --- orders ------------------------------------------------------------------------------------


async def cancel_order(ctx: AccountContext, p: cmd.CancelOrder, run: Run) -> Outcome:
    c = ctx.client
    try:
        order = await c.call("DELETE", "/fapi/v1/order", {"symbol": p.symbol, "orderId": p.orderId})
        return Outcome(errors.OK, "Order canceled", r.CancelData(orderId=int(order["orderId"]), status=order["status"]))
    except ExchangeNotFound:
        pass
    try:
        await c.call("DELETE", "/fapi/v1/algoOrder", {"algoId": p.orderId})
        return Outcome(errors.OK, "Order canceled", r.CancelData(orderId=p.orderId, status="CANCELED"))
    except ExchangeNotFound:
        pass
    # Neither is open. Already cancelled (a retry of this very command) is a success; anything
    # else that exists is final and cannot be cancelled.
    existing: dict[str, Any] | None
    try:
        existing = await c.call("GET", "/fapi/v1/order", {"symbol": p.symbol, "orderId": p.orderId})
        status = existing["status"]
    except ExchangeNotFound:
        try:
            existing = await c.call("GET", "/fapi/v1/algoOrder", {"algoId": p.orderId})
            status = existing.get("algoStatus", "")
            if existing.get("symbol") != p.symbol:
                existing = None
        except ExchangeNotFound:
            existing = None
    if existing is None:
        raise Refusal(errors.NOT_FOUND, "Order does not exist")
    if status in ("CANCELED", "EXPIRED"):
        return Outcome(errors.OK, "Order canceled", r.CancelData(orderId=p.orderId, status=status))
    raise Refusal(
        -2011,
        f"Unknown order sent. (the order is {status} and cannot be canceled)",
        {"orderId": p.orderId, "status": status},
    )


async def modify_order(ctx: AccountContext, p: cmd.ModifyOrder, run: Run) -> Outcome:
    params = {"symbol": p.symbol, "orderId": p.orderId, "side": p.side.value, "quantity": p.quantity, "price": p.price}
    try:
        order = await ctx.client.call("PUT", "/fapi/v1/order", params)
    except ExchangeNotFound as exc:
        raise Refusal(errors.NOT_FOUND, "Order does not exist") from exc
    except ExchangeRejected as exc:
        if exc.code != -5027:  # "No need to modify the order.": already as asked (e.g. a retry)
            raise
        order = await ctx.client.call("GET", "/fapi/v1/order", {"symbol": p.symbol, "orderId": p.orderId})
    return Outcome(errors.OK, "Order updated", order_view(order))


def _closing_side(side: Side) -> Side:
    return Side.SELL if side == Side.BUY else Side.BUY


async def open_market(ctx: AccountContext, p: cmd.OpenMarket, run: Run) -> Outcome:
    c = ctx.client
    hedge = await ctx.hedge_mode()
    if hedge:
        # BUY opens a long, SELL a short; reduce-only means the opposite position.
        long_side = (p.side == Side.BUY) != p.reduceOnly
        position_side = "LONG" if long_side else "SHORT"
    else:
        position_side = "BOTH"
    entry_id = ids.client_order_id(ctx.name, run.command_id, ids.ENTRY)
    params: dict[str, Any] = {
        "symbol": p.symbol,
        "side": p.side.value,
        "type": "MARKET",
        "quantity": p.quantity,
        "newClientOrderId": entry_id,
        "newOrderRespType": "RESULT",
    }
    if hedge:
        params["positionSide"] = position_side
    elif p.reduceOnly:
        params["reduceOnly"] = True
    if run.complete_only:
        started = await _started_by_earlier_run(c, lambda: find_order(c, p.symbol, entry_id))
        if started is None:
            raise _not_executed(run)
    try:
        entry, existed = await place_once(
            c, "/fapi/v1/order", params, lambda: find_order(c, p.symbol, entry_id), redelivered=run.redelivered
        )
    except ExchangeRejected as exc:
        if exc.code == -4061:  # the account's position mode changed under our cache
            await ctx.hedge_mode(fresh=True)
        raise
    market = order_view(entry)

    legs = [(ids.STOP_LOSS, "STOP_MARKET", p.stopLoss), (ids.TAKE_PROFIT, "TAKE_PROFIT_MARKET", p.takeProfit)]
    wanted = [(leg, kind, price) for leg, kind, price in legs if price is not None]
    if not wanted:
        return Outcome(errors.OK, "Success", r.OpenMarketData(market=market, stopLoss=None, takeProfit=None))

    if existed:
        # A rerun. If an earlier run already unwound this entry (policy close), report that; never
        # protect (or re-protect) a position this command has already closed.
        unwind_id = ids.client_order_id(ctx.name, run.command_id, ids.UNWIND)
        unwind = await find_order(c, p.symbol, unwind_id)
        if unwind is not None:
            return _already_unwound(market, unwind, [leg for leg, _, _ in wanted])

    close_side = _closing_side(p.side) if not p.reduceOnly else p.side
    results = await asyncio.gather(
        *(
            _place_protection(ctx, run, p.symbol, close_side, position_side, leg, kind, price)
            for leg, kind, price in wanted
        ),
        return_exceptions=True,
    )
    placed: dict[str, r.Order] = {}
    failures: dict[str, BaseException] = {}
    for (leg, _, _), result in zip(wanted, results, strict=True):
        if isinstance(result, BaseException):
            failures[leg] = result
        else:
            placed[leg] = result
    if not failures:
        data = r.OpenMarketData(
            market=market, stopLoss=placed.get(ids.STOP_LOSS), takeProfit=placed.get(ids.TAKE_PROFIT)
        )
        return Outcome(errors.OK, "Success", data)
    return await _protection_failed(ctx, run, p, market, position_side, placed, failures)


async def _place_protection(
    ctx: AccountContext, run: Run, symbol: str, side: Side, position_side: str, leg: str, kind: str, trigger: Decimal
) -> r.Order:
    c = ctx.client
    algo_id = ids.client_order_id(ctx.name, run.command_id, leg)
    params: dict[str, Any] = {
        "algoType": "CONDITIONAL",
        "symbol": symbol,
        "side": side.value,
        "positionSide": position_side,
        "type": kind,
        "triggerPrice": trigger,
        "workingType": "MARK_PRICE",
        "closePosition": True,
        "clientAlgoId": algo_id,
        "newOrderRespType": "RESULT",
    }
    order, existed = await place_once(
        c, "/fapi/v1/algoOrder", params, lambda: find_algo_order(c, algo_id), redelivered=run.redelivered
    )
    status = order.get("algoStatus", "NEW")
    if existed and status in DEAD_ALGO_STATUSES:
        # Found from an earlier run, but cancelled or refused since: it protects nothing.
        raise ExchangeRejected(f"the {PROTECTION_NAMES[leg]} order {order.get('algoId')} is {status}")
    return algo_view(order)


def _already_unwound(market: r.Order, unwind: dict[str, Any], legs: list[str]) -> Outcome:
    failed = [PROTECTION_NAMES[leg] for leg in legs]
    msg = (
        f"Entry filled but {' and '.join(failed)} could not be placed (in an earlier run of this command); "
        "the position was closed (policy=close)"
    )
    protection = r.Protection(
        status="FAILED", policy="close", failedLegs=failed, error="earlier run", closeOrder=order_view(unwind)
    )
    data = r.OpenMarketData(market=market, stopLoss=None, takeProfit=None, protection=protection)
    return Outcome(errors.INTERNAL, msg, data)


async def _protection_failed(
    ctx: AccountContext,
    run: Run,
    p: cmd.OpenMarket,
    market: r.Order,
    position_side: str,
    placed: dict[str, r.Order],
    failures: dict[str, BaseException],
) -> Outcome:
    """The entry filled but a stop loss / take profit could not be placed: never leave that silent."""
    names = PROTECTION_NAMES
    first = next(iter(failures.values()))
    unknown = any(isinstance(e, OrderStatusUnknown) for e in failures.values())
    code = first.code if isinstance(first, ExchangeRejected) and first.code is not None else errors.INTERNAL
    reason = first.msg if isinstance(first, ExchangeError) else "internal error"
    failed = [names[leg] for leg in failures]
    policy = ctx.protection_policy
    metrics.UNPROTECTED.labels(policy=policy).inc()
    log.error("entry %s filled but %s failed (%s); policy=%s", market.clientOrderId, ", ".join(failed), reason, policy)
    close_order = None
    if policy == "close":
        c = ctx.client
        unwind_id = ids.client_order_id(ctx.name, run.command_id, ids.UNWIND)
        params: dict[str, Any] = {
            "symbol": p.symbol,
            "side": _closing_side(p.side).value,
            "type": "MARKET",
            "quantity": market.executedQty or p.quantity,
            "newClientOrderId": unwind_id,
            "newOrderRespType": "RESULT",
        }
        if position_side == "BOTH":
            params["reduceOnly"] = True
        else:
            params["positionSide"] = position_side
        try:
            unwind, _ = await place_once(
                c, "/fapi/v1/order", params, lambda: find_order(c, p.symbol, unwind_id), redelivered=run.redelivered
            )
            close_order = order_view(unwind)
            outcome = "the position was closed (policy=close)"
            # Only now, with the position closed, is a lone leg noise: cancel it. (Cancelling first
            # and then failing to close would leave the position with less protection than it had.)
            for order in placed.values():
                try:
                    await c.call("DELETE", "/fapi/v1/algoOrder", {"algoId": order.orderId})
                except ExchangeError as exc:
                    log.warning("could not cancel leg %s: %s", order.clientOrderId, exc)
        except ExchangeError as exc:
            outcome = f"closing the position FAILED too ({exc.msg}): the position is open and UNPROTECTED"
            policy = "keep"
    else:
        outcome = "the position is kept open and UNPROTECTED (policy=keep)"
    msg = f"Entry filled but {' and '.join(failed)} could not be placed ({reason}); {outcome}"
    protection = r.Protection(
        status="UNKNOWN" if unknown else "FAILED",
        policy=policy,
        failedLegs=failed,
        error=reason,
        closeOrder=close_order,
    )
    data = r.OpenMarketData(
        market=market,
        stopLoss=placed.get(ids.STOP_LOSS),
        takeProfit=placed.get(ids.TAKE_PROFIT),
        protection=protection,
    )
    return Outcome(code, msg, data)


async def close_market(ctx: AccountContext, p: cmd.CloseMarket, run: Run) -> Outcome:
    c = ctx.client
    close_id = ids.client_order_id(ctx.name, run.command_id, ids.CLOSE)
    if run.complete_only:
        existing = await _started_by_earlier_run(c, lambda: find_order(c, p.symbol, close_id))
        if existing is None:
            raise _not_executed(run)
        rows = await c.call("GET", "/fapi/v2/positionRisk", {"symbol": p.symbol})
    else:
        existing, rows = await asyncio.gather(
            find_order(c, p.symbol, close_id), c.call("GET", "/fapi/v2/positionRisk", {"symbol": p.symbol})
        )
    hedge = any(row.get("positionSide") in ("LONG", "SHORT") for row in rows)
    mode = "HEDGE" if hedge else "ONE-WAY"
    if hedge:
        row = next((x for x in rows if x.get("positionSide") == p.positionSide.value), None)
        held = abs(_dec(row.get("positionAmt"))) if row else ZERO
    else:
        row = next((x for x in rows if x.get("positionSide", "BOTH") == "BOTH"), None)
        amt = _dec(row.get("positionAmt")) if row else ZERO
        held = amt if p.positionSide == PositionDirection.LONG else -amt
        held = max(held, ZERO)
    mark_before = _dec(row.get("markPrice")) if row else ZERO

    if existing is None:
        if not held:
            raise Refusal(
                errors.BAD_REQUEST,
                "No active position found",
                {"symbol": p.symbol, "positionSide": p.positionSide.value, "mode": mode},
            )
        qty = p.quantity if p.quantity is not None else held
        if qty > held:
            raise Refusal(errors.BAD_REQUEST, f"Quantity exceeds position (max: {held})")
        side = Side.SELL if p.positionSide == PositionDirection.LONG else Side.BUY
        params: dict[str, Any] = {
            "symbol": p.symbol,
            "side": side.value,
            "type": "MARKET",
            "quantity": qty,
            "newClientOrderId": close_id,
            "newOrderRespType": "RESULT",
        }
        if hedge:
            params["positionSide"] = p.positionSide.value
        else:
            params["reduceOnly"] = True
        order, _ = await place_once(
            c,
            "/fapi/v1/order",
            params,
            lambda: find_order(c, p.symbol, close_id),
            redelivered=run.redelivered,
            looked_up=True,
        )
        remaining = held - _dec(order.get("executedQty"))
    else:
        order = existing  # a re-run: the close already happened; report it and what is left now
        remaining = held
    view = order_view(order)
    executed = view.avgPrice
    if mark_before and executed and existing is None:
        diff = (executed - mark_before) / mark_before * 100
        slip = diff if view.side == "BUY" else -diff
        slippage = f"{slip.quantize(Decimal('0.0001'))}%"
    else:
        slippage = "0%"
    closed = remaining <= 0
    if closed and existing is None:
        await _cancel_stale_protection(c, p.symbol, view.side, view.positionSide)
    data = r.CloseMarketData(
        **view.model_dump(),
        mode=mode,
        executedPrice=executed,
        slippage=slippage,
        remainingPosition=format(max(remaining, ZERO), "f"),
        positionClosed=closed,
    )
    return Outcome(errors.OK, "Position closed" if closed else "Position partially closed", data)


async def _cancel_stale_protection(c: FapiClient, symbol: str, close_side: str, position_side: str) -> None:
    """Once a side is flat, its closePosition stop loss / take profit would close the *next* position
    opened on that side: cancel them. A failure here is logged, not reported: the close succeeded."""
    try:
        algos = await c.call("GET", "/fapi/v1/openAlgoOrders", {"symbol": symbol})
        for a in algos:
            if a.get("closePosition") and a.get("side") == close_side and a.get("positionSide") == position_side:
                with contextlib.suppress(ExchangeNotFound):  # fired or cancelled meanwhile
                    await c.call("DELETE", "/fapi/v1/algoOrder", {"algoId": a["algoId"]})
    except ExchangeError as exc:
        log.warning("position %s %s closed, but its stop orders could not be cancelled: %s", symbol, position_side, exc)


# --- position ----------------------------------------------------------------------------------


async def set_leverage(ctx: AccountContext, p: cmd.SetLeverage, run: Run) -> Outcome:
    body = await ctx.client.call("POST", "/fapi/v1/leverage", {"symbol": p.symbol, "leverage": p.leverage})
    data = r.LeverageData(
        symbol=body.get("symbol", p.symbol),
        leverage=int(body.get("leverage", p.leverage)),
        maxQty=format(_dec(body.get("maxNotionalValue")), "f"),
    )
    return Outcome(errors.OK, "Leverage updated", data)


async def set_margin_mode(ctx: AccountContext, p: cmd.SetMarginMode, run: Run) -> Outcome:
    msg = "Margin mode updated"
    try:
        await ctx.client.call("POST", "/fapi/v1/marginType", {"symbol": p.symbol, "marginType": p.marginType.value})
    except ExchangeRejected as exc:
        if exc.code != -4046:  # "No need to change margin type.": already so, which is what was asked
            raise
        msg = "Margin mode unchanged"
    return Outcome(errors.OK, msg, r.MarginModeData(symbol=p.symbol, marginType=p.marginType.value, success=True))


HANDLERS: dict[CommandType, Any] = {
    CommandType.ACCOUNT_SUMMARY: account_summary,
    CommandType.MARKET_KLINES: klines,
    CommandType.MARKET_FUNDING_RATE: funding_rate,
    CommandType.ORDER_CANCEL: cancel_order,
    CommandType.ORDER_MODIFY: modify_order,
    CommandType.ORDER_OPEN_MARKET: open_market,
    CommandType.ORDER_CLOSE_MARKET: close_market,
    CommandType.POSITION_LEVERAGE: set_leverage,
    CommandType.POSITION_MARGIN_MODE: set_margin_mode,
}
