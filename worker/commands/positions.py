"""position.leverage and position.margin_mode: per-symbol settings.

Setting what a symbol already has is a success, because agents retry and a retry must not look
like a failure: Binance's -4046 "No need to change margin type." becomes "Margin mode unchanged".
"""

from __future__ import annotations

from schemas import commands as cmd
from schemas import errors
from schemas import replies as r
from worker.binance.errors import ExchangeRejected
from worker.commands.guard import check_leverage_setting
from worker.context import AccountContext, Run
from worker.outcome import Outcome
from worker.views import leverage_view

#: Binance's "No need to change margin type."
MARGIN_TYPE_UNCHANGED = -4046


async def set_leverage(ctx: AccountContext, p: cmd.SetLeverage, run: Run) -> Outcome:
    await check_leverage_setting(ctx, p)  # maxLeverage of AIQT_RISK
    body = await ctx.exchange.set_leverage(p.symbol, p.leverage)
    return Outcome(errors.OK, "Leverage updated", leverage_view(body, p.symbol, p.leverage))


async def set_margin_mode(ctx: AccountContext, p: cmd.SetMarginMode, run: Run) -> Outcome:
    msg = "Margin mode updated"
    try:
        await ctx.exchange.set_margin_type(p.symbol, p.marginType.value)
    except ExchangeRejected as exc:
        if exc.code != MARGIN_TYPE_UNCHANGED:
            raise
        msg = "Margin mode unchanged"
    return Outcome(errors.OK, msg, r.MarginModeData(symbol=p.symbol, marginType=p.marginType.value, success=True))
