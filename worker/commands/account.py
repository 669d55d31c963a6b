"""account.summary: balances, positions and open orders (plain and algo) in one answer.

Five reads in parallel; every field mapping lives in worker.views.
"""

from __future__ import annotations

from schemas import commands as cmd
from schemas import errors
from schemas import replies as r
from worker.context import AccountContext, Run
from worker.outcome import Outcome
from worker.views import account_info, active_algo_order, active_order, balance_view, position_view


async def account_summary(ctx: AccountContext, p: cmd.AccountSummary, run: Run) -> Outcome:
    ex = ctx.exchange
    account, risk, open_orders, algo_orders, config = await ex.account_snapshot(p.symbol)
    balances = [balance_view(a) for a in account.get("assets", [])]
    if not p.showZero:
        balances = [b for b in balances if b.balance or b.available or b.unrealizedPnl]
    positions = [position_view(row) for row in risk]
    if not p.showZero:
        positions = [pos for pos in positions if pos.quantity]
    active = [active_order(o) for o in open_orders] + [active_algo_order(a) for a in algo_orders]
    data = r.AccountSummaryData(
        accountInfo=account_info(account, config), balances=balances, positions=positions, activeOrders=active
    )
    return Outcome(errors.OK, "Success", data)
