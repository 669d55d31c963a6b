"""Guard rails: the kill switch (account.halt, account.resume), the check every opening order passes
(halt state and risk limits), and command.status.

The kill switch, in this order (agents-and-guardrails.md, "Kill switch"):

1. Record the halt on the bus (bus.halts) before touching the exchange, so that no worker starts an
   opening order from then on. If it cannot be recorded, nothing else happens: the caller retries.
2. Cancel every open regular order and every open SL/TP (algo) order of the account, per symbol
   (`allOpenOrders`, `algoOpenOrders`); list again and repeat while something is still open (an
   order placed by a command that passed its check just before the halt).
3. With `flatten`: close every position with a reduce-only market order (client id derived from the
   halt's command id, the symbol and the side, so a rerun of the halt finds its own closes), and
   read the positions again until none is left.

While halted, opening orders (order.open_market without reduceOnly) are refused; closes, cancels,
reduce-only orders, reads and settings stay allowed. A worker that cannot read the halt state
refuses opening orders (fail closed, 503: retry).

command.status never executes anything: it asks the exchange for the orders a command would have
placed, by the client ids derived from its command id (worker.ids): the entry (M), its stop loss
(SL) and take profit (TP), a close (C), an unwind (X). The SL/TP are found by id alone; regular
orders need their symbol, given or else searched among the account's recent symbols.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from bus.halts import HaltUnknown
from schemas import commands as cmd
from schemas import errors
from schemas import replies as r
from worker import ids
from worker.binance.endpoints import Exchange, Json, MarketOrder
from worker.context import AccountContext, Run
from worker.orders import place_order
from worker.outcome import Outcome, Refusal
from worker.risk import DAY_MS, OpeningOrder, RiskRefused, Trade, check_leverage, check_opening, check_static
from worker.views import ZERO, algo_view, dec, order_view

#: Rounds of "list, cancel (or close), list again" before the halt reports what is still left.
SWEEPS = 3
#: Pages of 1000 rows read from the income and trade histories for one check.
MAX_PAGES = 20
PAGE = 1000
#: How far back command.status looks for the symbols an account traded (Binance's income default).
STATUS_LOOKBACK_MS = 7 * DAY_MS

HALTED_MSG = (
    "Account is halted: opening orders are refused until POST /api/account/resume. "
    "Closes, cancels and reduce-only orders are allowed."
)


# --- the check before an opening order -----------------------------------------------------------


async def refuse_if_halted(ctx: AccountContext) -> None:
    """Raise a Refusal if the account is halted, or if that cannot be known (fail closed)."""
    if ctx.halts is None:
        return  # no bus at all (unit tests): no kill switch either
    try:
        halted = await ctx.halts.is_halted(ctx.name)
    except HaltUnknown as exc:
        raise Refusal(
            errors.UNAVAILABLE,
            f"The account's halt state cannot be read ({exc}); opening orders are refused until it can. Retry.",
        ) from exc
    if halted:
        raise Refusal(errors.BAD_REQUEST, HALTED_MSG, {"halted": True})


async def check_opening_order(ctx: AccountContext, p: cmd.OpenMarket, position_side: str) -> None:
    """The halt state, then the account's risk limits, for an order that may open or add to a position."""
    await refuse_if_halted(ctx)
    limits = ctx.risk
    if limits is None:
        return
    try:
        check_static(limits, p.symbol)  # before any exchange call
    except RiskRefused as exc:
        raise Refusal(exc.code, exc.msg, {"limit": exc.limit}) from exc
    ex = ctx.exchange
    mark: Decimal | None = None
    position = ZERO
    leverage: int | None = None
    if limits.needs_position or limits.maxDailyNotional is not None:
        rows = await ex.position_risk(p.symbol)
        row = next((x for x in rows if x.get("positionSide", "BOTH") == position_side), None)
        if row is not None:
            mark = dec(row.get("markPrice")) or None
            position = dec(row.get("positionAmt"))
            leverage = int(row["leverage"]) if row.get("leverage") else None
        if mark is None:
            mark = dec((await ex.premium_index(p.symbol)).get("markPrice")) or None
    order = OpeningOrder(
        symbol=p.symbol,
        quantity=p.quantity,
        direction=1 if p.side.value == "BUY" else -1,
        mark_price=mark,
        position=position,
        leverage=leverage,
    )
    trades: list[Trade] = []
    now = ctx.client.clock.now_ms()
    try:
        if limits.needs_trades:
            trades = await recent_trades(ex, now - DAY_MS, also=p.symbol)
        check_opening(limits, order, trades, now_ms=now)
    except RiskRefused as exc:
        raise Refusal(exc.code, exc.msg, {"limit": exc.limit}) from exc


async def check_leverage_setting(ctx: AccountContext, p: cmd.SetLeverage) -> None:
    """position.leverage against maxLeverage (lowering is always allowed)."""
    if ctx.risk is None:
        return
    try:
        check_leverage(ctx.risk, p.symbol, p.leverage)
    except RiskRefused as exc:
        raise Refusal(exc.code, exc.msg, {"limit": exc.limit}) from exc


async def traded_symbols(ex: Exchange, since_ms: int) -> set[str]:
    """Every symbol with income since `since_ms` (each trade leaves a commission, each held position
    funding): the symbols whose trades to read, since Binance lists trades per symbol only."""
    symbols: set[str] = set()
    start = since_ms
    for _ in range(MAX_PAGES):
        rows = await ex.income(start_time=start, limit=PAGE)
        symbols |= {row["symbol"] for row in rows if row.get("symbol")}
        if len(rows) < PAGE:
            return symbols
        start = int(rows[-1]["time"])  # pages overlap by the rows of that millisecond: a set absorbs them
    raise RiskRefused("maxDailyNotional", "the account's trade history is too long to check; order refused")


async def recent_trades(ex: Exchange, since_ms: int, *, also: str) -> list[Trade]:
    """The account's trades since `since_ms`, every symbol, read from the exchange."""
    symbols = await traded_symbols(ex, since_ms) | {also}
    per_symbol = await asyncio.gather(*(_symbol_trades(ex, s, since_ms) for s in sorted(symbols)))
    return [t for rows in per_symbol for t in rows]


async def _symbol_trades(ex: Exchange, symbol: str, since_ms: int) -> list[Trade]:
    trades: list[Trade] = []
    rows = await ex.user_trades(symbol, start_time=since_ms, limit=PAGE)
    for _ in range(MAX_PAGES):
        trades += [Trade(int(t["time"]), int(t["orderId"]), dec(t.get("quoteQty"))) for t in rows]
        if len(rows) < PAGE:
            return [t for t in trades if t.time >= since_ms]
        rows = await ex.user_trades(symbol, from_id=int(rows[-1]["id"]) + 1, limit=PAGE)
    raise RiskRefused("maxDailyNotional", f"too many {symbol} trades in 24 h to check; order refused")


# --- account.halt / account.resume ---------------------------------------------------------------


async def halt(ctx: AccountContext, p: cmd.Halt, run: Run) -> Outcome:
    if ctx.halts is None:
        raise Refusal(errors.UNAVAILABLE, "No kill switch store on this worker")
    try:
        await ctx.halts.halt(ctx.name, run.command_id, flatten=p.flatten)
    except HaltUnknown as exc:
        raise Refusal(
            errors.UNAVAILABLE, f"The halt could not be recorded ({exc}); nothing was cancelled. Retry."
        ) from exc
    canceled = await _cancel_everything(ctx.exchange)
    closed = await _flatten(ctx, run) if p.flatten else []
    data = r.HaltData(halted=True, flatten=p.flatten, canceledOrders=canceled, closedPositions=closed)
    return Outcome(errors.OK, "Account halted", data)


async def _cancel_everything(ex: Exchange) -> list[r.CanceledOrder]:
    canceled: dict[tuple[bool, int], r.CanceledOrder] = {}
    for _ in range(SWEEPS):
        orders, algos = await asyncio.gather(ex.open_orders(), ex.open_algo_orders())
        if not orders and not algos:
            break
        for o in orders:
            canceled[(False, int(o["orderId"]))] = r.CanceledOrder(
                orderId=int(o["orderId"]),
                symbol=o["symbol"],
                clientOrderId=o.get("clientOrderId", ""),
                type=o.get("type", ""),
                algo=False,
            )
        for a in algos:
            canceled[(True, int(a["algoId"]))] = r.CanceledOrder(
                orderId=int(a["algoId"]),
                symbol=a["symbol"],
                clientOrderId=a.get("clientAlgoId", ""),
                type=a.get("orderType") or a.get("type", ""),
                algo=True,
            )
        await asyncio.gather(
            *(ex.cancel_all_orders(s) for s in sorted({o["symbol"] for o in orders})),
            *(ex.cancel_all_algo_orders(s) for s in sorted({a["symbol"] for a in algos})),
        )
    return list(canceled.values())


async def _flatten(ctx: AccountContext, run: Run) -> list[r.ClosedPosition]:
    ex = ctx.exchange
    closed: list[r.ClosedPosition] = []
    for sweep in range(SWEEPS):
        rows = [row for row in await ex.position_risk() if dec(row.get("positionAmt"))]
        if not rows:
            break
        closes = [_close_position(ctx, run, row, sweep) for row in rows]
        closed += await asyncio.gather(*closes)
    return closed


async def _close_position(ctx: AccountContext, run: Run, row: Json, sweep: int) -> r.ClosedPosition:
    amount = dec(row.get("positionAmt"))
    symbol, side = row["symbol"], row.get("positionSide", "BOTH")
    hedge = side in ("LONG", "SHORT")
    order = MarketOrder(
        symbol=symbol,
        side="SELL" if amount > 0 else "BUY",
        quantity=abs(amount),
        client_id=ids.client_order_id(ctx.name, f"{run.command_id}.{symbol}.{side}.{sweep}", ids.HALT),
        position_side=side if hedge else None,
        reduce_only=not hedge,
    )
    placed, _ = await place_order(ctx.exchange, order, redelivered=run.redelivered)
    return r.ClosedPosition(
        symbol=symbol,
        positionSide=side,
        quantity=dec(placed.get("executedQty")) or abs(amount),
        orderId=int(placed["orderId"]),
        clientOrderId=placed.get("clientOrderId", order.client_id),
        status=placed.get("status", ""),
    )


async def resume(ctx: AccountContext, p: cmd.Resume, run: Run) -> Outcome:
    if ctx.halts is None:
        raise Refusal(errors.UNAVAILABLE, "No kill switch store on this worker")
    try:
        was = await ctx.halts.resume(ctx.name)
    except HaltUnknown as exc:
        raise Refusal(errors.UNAVAILABLE, f"The halt could not be lifted ({exc}). Retry.") from exc
    msg = "Account resumed" if was else "Account was not halted"
    return Outcome(errors.OK, msg, r.ResumeData(halted=False, wasHalted=was))


# --- command.status ------------------------------------------------------------------------------

#: (leg, name, algo) of every order a command may place.
LEGS = (
    (ids.ENTRY, "entry", False),
    (ids.STOP_LOSS, "stopLoss", True),
    (ids.TAKE_PROFIT, "takeProfit", True),
    (ids.CLOSE, "close", False),
    (ids.UNWIND, "unwind", False),
)


async def command_status(ctx: AccountContext, p: cmd.CommandStatus, run: Run) -> Outcome:
    ex = ctx.exchange
    client_ids = {leg: ids.client_order_id(ctx.name, p.commandId, leg) for leg, _, _ in LEGS}
    algo_legs = [(leg, name) for leg, name, algo in LEGS if algo]
    algos = await asyncio.gather(*(ex.find_algo_order(client_ids[leg]) for leg, _ in algo_legs))
    found: list[r.CommandOrder] = [
        r.CommandOrder(leg=name, algo=True, order=algo_view(a))
        for (_, name), a in zip(algo_legs, algos, strict=True)
        if a is not None
    ]
    if p.symbol is not None:
        symbols = [p.symbol]
    else:
        symbols = sorted(await _recent_symbols(ctx) | {a["symbol"] for a in algos if a is not None})
    order_legs = [(leg, name) for leg, name, algo in LEGS if not algo]
    for symbol in symbols:
        rows = await asyncio.gather(*(ex.find_order(symbol, client_ids[leg]) for leg, _ in order_legs))
        found += [
            r.CommandOrder(leg=name, algo=False, order=order_view(o))
            for (_, name), o in zip(order_legs, rows, strict=True)
            if o is not None
        ]
    order = {name: i for i, (_, name, _) in enumerate(LEGS)}
    found.sort(key=lambda c: order[c.leg])
    data = r.CommandStatusData(
        commandId=p.commandId,
        idempotencyKey=p.idempotencyKey,
        found=bool(found),
        orders=found,
        searchedSymbols=symbols,
    )
    if found:
        return Outcome(errors.OK, "Found at the exchange", data)
    where = ", ".join(symbols) or "no symbol: the account has no recent activity"
    return Outcome(errors.OK, f"Not found at the exchange: this command placed no order (searched {where})", data)


async def _recent_symbols(ctx: AccountContext) -> set[str]:
    """Symbols the account traded (income) in the last 7 days, holds, or has open orders in."""
    ex = ctx.exchange
    since = ctx.client.clock.now_ms() - STATUS_LOOKBACK_MS
    income, positions, orders = await asyncio.gather(
        ex.income(start_time=since, limit=PAGE), ex.position_risk(), ex.open_orders()
    )
    symbols = {row["symbol"] for row in income if row.get("symbol")}
    symbols |= {row["symbol"] for row in positions if dec(row.get("positionAmt")) != 0}
    symbols |= {row["symbol"] for row in orders}
    return symbols
