"""order.open_market, order.close_market, order.cancel, order.modify.

Every order is placed at most once (worker.orders): its client id is derived from the command id
(worker.ids), so a rerun finds what an earlier run placed and reports it instead of placing it
again. A rerun of a cancel or a modify that already happened answers as the first run did.

What happens when an entry fills but its stop loss / take profit does not is the protection
policy's business (worker.protection), kept out of this module on purpose.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal

from schemas import commands as cmd
from schemas import errors
from schemas import replies as r
from schemas.enums import CommandType, PositionDirection, Side
from schemas.registry import COMMANDS
from worker import ids
from worker.binance.endpoints import Json, MarketOrder
from worker.binance.errors import ExchangeNotFound, ExchangeRejected
from worker.commands.guard import check_opening_order
from worker.context import AccountContext, Run, not_executed
from worker.orders import place_order, started_by_earlier_run
from worker.outcome import Outcome, Refusal
from worker.protection import (
    already_unwound,
    cancel_stale_protection,
    closing_side,
    place_protection,
    protection_failed,
)
from worker.views import ZERO, dec, order_view

#: Binance's "Unknown order sent.": the order is not open.
UNKNOWN_ORDER = -2011
#: Binance's "Order's position side does not match user's setting.": our hedge-mode cache is stale.
POSITION_SIDE_MISMATCH = -4061
#: Binance's "No need to modify the order.": it already is as asked (e.g. a retry).
NO_NEED_TO_MODIFY = -5027

# --- order.cancel / order.modify ---------------------------------------------------------------

#: The API document's `msg` for an order that was placed (its example reply).
OPENED = COMMANDS[CommandType.ORDER_OPEN_MARKET].success_msg


async def cancel_order(ctx: AccountContext, p: cmd.CancelOrder, run: Run) -> Outcome:
    ex = ctx.exchange
    try:
        order = await ex.cancel_order(p.symbol, p.orderId)
        return Outcome(errors.OK, "Order canceled", r.CancelData(orderId=int(order["orderId"]), status=order["status"]))
    except ExchangeNotFound:
        pass
    try:
        await ex.cancel_algo_order(p.orderId)
        return Outcome(errors.OK, "Order canceled", r.CancelData(orderId=p.orderId, status="CANCELED"))
    except ExchangeNotFound:
        pass
    # Neither is open. Already cancelled (a retry of this very command) is a success; anything
    # else that exists is final and cannot be cancelled.
    status = await _final_status(ctx, p.symbol, p.orderId)
    if status is None:
        raise Refusal(errors.NOT_FOUND, "Order does not exist")
    if status in ("CANCELED", "EXPIRED"):
        return Outcome(errors.OK, "Order canceled", r.CancelData(orderId=p.orderId, status=status))
    raise Refusal(
        UNKNOWN_ORDER,
        f"Unknown order sent. (the order is {status} and cannot be canceled)",
        {"orderId": p.orderId, "status": status},
    )


async def _final_status(ctx: AccountContext, symbol: str, order_id: int) -> str | None:
    """The status of an order or algo order of this symbol that is no longer open; None if none exists."""
    ex = ctx.exchange
    try:
        order = await ex.query_order(symbol, order_id)
        status: str = order["status"]
        return status
    except ExchangeNotFound:
        pass
    try:
        algo = await ex.query_algo_order(order_id)
    except ExchangeNotFound:
        return None
    if algo.get("symbol") != symbol:
        return None
    algo_status: str = algo.get("algoStatus", "")
    return algo_status


async def modify_order(ctx: AccountContext, p: cmd.ModifyOrder, run: Run) -> Outcome:
    ex = ctx.exchange
    try:
        order = await ex.modify_order(p.symbol, p.orderId, p.side.value, p.quantity, p.price)
    except ExchangeNotFound as exc:
        raise Refusal(errors.NOT_FOUND, "Order does not exist") from exc
    except ExchangeRejected as exc:
        if exc.code != NO_NEED_TO_MODIFY:
            raise
        order = await ex.query_order(p.symbol, p.orderId)
    return Outcome(errors.OK, "Order updated", order_view(order))


# --- order.open_market -------------------------------------------------------------------------


async def open_market(ctx: AccountContext, p: cmd.OpenMarket, run: Run) -> Outcome:
    hedge = await ctx.hedge_mode()
    if hedge:
        # BUY opens a long, SELL a short; reduce-only means the opposite position.
        long_side = (p.side == Side.BUY) != p.reduceOnly
        position_side = "LONG" if long_side else "SHORT"
    else:
        position_side = "BOTH"
    entry = MarketOrder(
        symbol=p.symbol,
        side=p.side.value,
        quantity=p.quantity,
        client_id=ids.client_order_id(ctx.name, run.command_id, ids.ENTRY),
        position_side=position_side if hedge else None,
        reduce_only=p.reduceOnly and not hedge,
    )
    ex = ctx.exchange
    # A proven first run (bus/marker.py) has nothing to look up: nothing of it can exist yet.
    looked_up = run.first_attempt
    if run.complete_only:
        started = await started_by_earlier_run(ex.client, lambda: ex.find_order(p.symbol, entry.client_id))
        if started is None:
            raise not_executed(run)
    elif not p.reduceOnly and (run.first_attempt or await ex.find_order(p.symbol, entry.client_id) is None):
        # An opening order not placed yet: the kill switch and the risk limits first. (One that an
        # earlier run placed is reported below, halt or no halt: it is history, not a new order.)
        await check_opening_order(ctx, p, position_side)
        looked_up = True
    try:
        filled, existed = await place_order(ex, entry, redelivered=run.redelivered, looked_up=looked_up)
    except ExchangeRejected as exc:
        if exc.code == POSITION_SIDE_MISMATCH:  # the account's position mode changed under our cache
            await ctx.hedge_mode(fresh=True)
        raise
    return await _protect(ctx, run, p, order_view(filled), position_side, existed=existed)


async def _protect(
    ctx: AccountContext, run: Run, p: cmd.OpenMarket, market: r.Order, position_side: str, *, existed: bool
) -> Outcome:
    """Place the stop loss and take profit the entry asked for, both at once."""
    legs = [(ids.STOP_LOSS, "STOP_MARKET", p.stopLoss), (ids.TAKE_PROFIT, "TAKE_PROFIT_MARKET", p.takeProfit)]
    wanted = [(leg, kind, price) for leg, kind, price in legs if price is not None]
    if not wanted:
        return Outcome(errors.OK, OPENED, r.OpenMarketData(market=market, stopLoss=None, takeProfit=None))

    if existed:
        # A rerun. If an earlier run already unwound this entry (policy close), report that; never
        # protect (or re-protect) a position this command has already closed.
        unwind_id = ids.client_order_id(ctx.name, run.command_id, ids.UNWIND)
        unwind = await ctx.exchange.find_order(p.symbol, unwind_id)
        if unwind is not None:
            return already_unwound(market, unwind, [leg for leg, _, _ in wanted])

    close_side = closing_side(p.side) if not p.reduceOnly else p.side
    results = await asyncio.gather(
        *(
            place_protection(ctx, run, p.symbol, close_side, position_side, leg, kind, price)
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
    if failures:
        return await protection_failed(ctx, run, p, market, position_side, placed, failures)
    data = r.OpenMarketData(market=market, stopLoss=placed.get(ids.STOP_LOSS), takeProfit=placed.get(ids.TAKE_PROFIT))
    return Outcome(errors.OK, OPENED, data)


# --- order.close_market ------------------------------------------------------------------------


@dataclass(frozen=True)
class Held:
    """What the position to close holds, read from positionRisk before the close."""

    hedge: bool
    quantity: Decimal
    mark_price: Decimal

    @property
    def mode(self) -> str:
        return "HEDGE" if self.hedge else "ONE-WAY"


def _held(rows: list[Json], direction: PositionDirection) -> Held:
    hedge = any(row.get("positionSide") in ("LONG", "SHORT") for row in rows)
    if hedge:
        row = next((x for x in rows if x.get("positionSide") == direction.value), None)
        held = abs(dec(row.get("positionAmt"))) if row else ZERO
    else:
        row = next((x for x in rows if x.get("positionSide", "BOTH") == "BOTH"), None)
        amt = dec(row.get("positionAmt")) if row else ZERO
        held = max(amt if direction == PositionDirection.LONG else -amt, ZERO)
    return Held(hedge=hedge, quantity=held, mark_price=dec(row.get("markPrice")) if row else ZERO)


async def close_market(ctx: AccountContext, p: cmd.CloseMarket, run: Run) -> Outcome:
    ex = ctx.exchange
    close_id = ids.client_order_id(ctx.name, run.command_id, ids.CLOSE)
    existing: Json | None
    if run.complete_only:
        existing = await started_by_earlier_run(ex.client, lambda: ex.find_order(p.symbol, close_id))
        if existing is None:
            raise not_executed(run)
        rows = await ex.position_risk(p.symbol)
    else:
        existing, rows = await asyncio.gather(ex.find_order(p.symbol, close_id), ex.position_risk(p.symbol))
    held = _held(rows, p.positionSide)

    if existing is None:
        order = await _send_close(ctx, run, p, held, close_id)
        remaining = held.quantity - dec(order.get("executedQty"))
    else:
        order = existing  # a re-run: the close already happened; report it and what is left now
        remaining = held.quantity
    view = order_view(order)
    executed = view.avgPrice
    if held.mark_price and executed and existing is None:
        diff = (executed - held.mark_price) / held.mark_price * 100
        slip = diff if view.side == "BUY" else -diff
        slippage = f"{slip.quantize(Decimal('0.0001'))}%"
    else:
        slippage = "0%"
    closed = remaining <= 0
    if closed and existing is None:
        await cancel_stale_protection(ex, p.symbol, view.side, view.positionSide)
    data = r.CloseMarketData(
        **view.model_dump(),
        mode=held.mode,
        executedPrice=executed,
        slippage=slippage,
        remainingPosition=format(max(remaining, ZERO), "f"),
        positionClosed=closed,
    )
    return Outcome(errors.OK, "Position closed" if closed else "Position partially closed", data)


async def _send_close(ctx: AccountContext, run: Run, p: cmd.CloseMarket, held: Held, close_id: str) -> Json:
    """Check the close against the position, then place it (already looked up by the caller)."""
    if not held.quantity:
        raise Refusal(
            errors.BAD_REQUEST,
            "No active position found",
            {"symbol": p.symbol, "positionSide": p.positionSide.value, "mode": held.mode},
        )
    qty = p.quantity if p.quantity is not None else held.quantity
    if qty > held.quantity:
        raise Refusal(errors.BAD_REQUEST, f"Quantity exceeds position (max: {held.quantity})")
    order = MarketOrder(
        symbol=p.symbol,
        side=(Side.SELL if p.positionSide == PositionDirection.LONG else Side.BUY).value,
        quantity=qty,
        client_id=close_id,
        position_side=p.positionSide.value if held.hedge else None,
        reduce_only=not held.hedge,
    )
    placed, _ = await place_order(ctx.exchange, order, redelivered=run.redelivered, looked_up=True)
    return placed
