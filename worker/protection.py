"""Stop loss and take profit of an entry, and what to do when they cannot be placed.

The riskiest moment of `order.open_market`: the entry has filled and its protection has not. That
is never left silent. The account's policy (`AIQT_PROTECTION_POLICY`) decides:

- `close`: unwind the entry with a market order (client id leg X, so a rerun finds it), and only
  once the position is closed cancel the leg that did get placed. Cancelling first and then failing
  to close would leave the position with less protection than it had. If the close fails too, the
  answer says the position is open and UNPROTECTED (policy reported as `keep`).
- `keep`: keep the position open, and say loudly that it is unprotected.

Either way the reply carries a `protection` block (status FAILED, or UNKNOWN when a leg's outcome is
unknown), the `aiqt_unprotected_entries_total` counter goes up and an error is logged.

Also here: once a side is flat, its closePosition stops would close the *next* position opened on
that side, so `cancel_stale_protection` removes them.
"""

from __future__ import annotations

import contextlib
import logging
from decimal import Decimal

from schemas import commands as cmd
from schemas import errors
from schemas import replies as r
from schemas.enums import Side
from worker import ids, metrics
from worker.binance.endpoints import ClosePositionOrder, Exchange, Json, MarketOrder
from worker.binance.errors import ExchangeError, ExchangeNotFound, ExchangeRejected, OrderStatusUnknown
from worker.context import AccountContext, Run
from worker.orders import place_algo_order, place_order
from worker.outcome import Outcome
from worker.views import algo_view, order_view

log = logging.getLogger("aiqt.worker.protection")

PROTECTION_NAMES = {ids.STOP_LOSS: "stopLoss", ids.TAKE_PROFIT: "takeProfit"}
#: Algo order states in which a stop loss / take profit protects nothing and never will.
DEAD_ALGO_STATUSES = frozenset({"CANCELED", "REJECTED"})


def closing_side(side: Side) -> Side:
    return Side.SELL if side == Side.BUY else Side.BUY


async def place_protection(
    ctx: AccountContext, run: Run, symbol: str, side: Side, position_side: str, leg: str, kind: str, trigger: Decimal
) -> r.Order:
    """Place one closePosition leg (stop loss or take profit) at most once."""
    order = ClosePositionOrder(
        symbol=symbol,
        side=side.value,
        position_side=position_side,
        kind=kind,
        trigger=trigger,
        client_id=ids.client_order_id(ctx.name, run.command_id, leg),
    )
    if ctx.record_leg is not None:
        await ctx.record_leg(ctx.name, order.client_id, run.command_id, leg)
    algo, existed = await place_algo_order(
        ctx.exchange, order, redelivered=run.redelivered, looked_up=run.first_attempt
    )
    status = algo.get("algoStatus", "NEW")
    if existed and status in DEAD_ALGO_STATUSES:
        # Found from an earlier run, but cancelled or refused since: it protects nothing.
        raise ExchangeRejected(f"the {PROTECTION_NAMES[leg]} order {algo.get('algoId')} is {status}")
    return algo_view(algo)


def already_unwound(market: r.Order, unwind: Json, legs: list[str]) -> Outcome:
    """A rerun of an entry that an earlier run already unwound (policy close): report that."""
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


async def protection_failed(
    ctx: AccountContext,
    run: Run,
    p: cmd.OpenMarket,
    market: r.Order,
    position_side: str,
    placed: dict[str, r.Order],
    failures: dict[str, BaseException],
) -> Outcome:
    """The entry filled but a stop loss / take profit could not be placed: apply the policy, and say so."""
    first = next(iter(failures.values()))
    unknown = any(isinstance(e, OrderStatusUnknown) for e in failures.values())
    code = first.code if isinstance(first, ExchangeRejected) and first.code is not None else errors.INTERNAL
    reason = first.msg if isinstance(first, ExchangeError) else "internal error"
    failed = [PROTECTION_NAMES[leg] for leg in failures]
    policy: str = ctx.protection_policy
    metrics.UNPROTECTED.labels(policy=policy).inc()
    log.error("entry %s filled but %s failed (%s); policy=%s", market.clientOrderId, ", ".join(failed), reason, policy)
    close_order = None
    if policy == "close":
        try:
            close_order = await _unwind(ctx, run, p, market, position_side, placed)
            outcome = "the position was closed (policy=close)"
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


async def _unwind(
    ctx: AccountContext, run: Run, p: cmd.OpenMarket, market: r.Order, position_side: str, placed: dict[str, r.Order]
) -> r.Order:
    """Policy close: close what the entry opened, then cancel the legs that were placed. Raises
    ExchangeError if the close fails (a failed cancel is only logged: the position is closed)."""
    one_way = position_side == "BOTH"
    order = MarketOrder(
        symbol=p.symbol,
        side=closing_side(p.side).value,
        quantity=market.executedQty or p.quantity,
        client_id=ids.client_order_id(ctx.name, run.command_id, ids.UNWIND),
        position_side=None if one_way else position_side,
        reduce_only=one_way,
    )
    unwind, _ = await place_order(ctx.exchange, order, redelivered=run.redelivered)
    close_order = order_view(unwind)
    # Only now, with the position closed, is a lone leg noise: cancel it.
    for leg in placed.values():
        try:
            await ctx.exchange.cancel_algo_order(leg.orderId)
        except ExchangeError as exc:
            log.warning("could not cancel leg %s: %s", leg.clientOrderId, exc)
    return close_order


async def cancel_stale_protection(exchange: Exchange, symbol: str, close_side: str, position_side: str) -> None:
    """Once a side is flat, its closePosition stop loss / take profit would close the *next* position
    opened on that side: cancel them. A failure here is logged, not reported: the close succeeded."""
    try:
        for algo in await exchange.open_algo_orders(symbol):
            if (
                algo.get("closePosition")
                and algo.get("side") == close_side
                and algo.get("positionSide") == position_side
            ):
                with contextlib.suppress(ExchangeNotFound):  # fired or cancelled meanwhile
                    await exchange.cancel_algo_order(algo["algoId"])
    except ExchangeError as exc:
        log.warning("position %s %s closed, but its stop orders could not be cancelled: %s", symbol, position_side, exc)
