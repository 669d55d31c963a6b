"""The worker's command handlers, one module per command family, and the table that routes to them.

Each handler takes the account (`AccountContext`), the payload already validated against its
command's model (schemas.validation), and the `Run`; it returns an `Outcome` or raises a `Refusal`
or an `ExchangeError`, which worker.service turns into the reply envelope.

`system.ping` is not in `HANDLERS`: it needs no account (worker.service answers it before looking
the account up). Everything else about a command (its payload, reply, route, whether it mutates, whether
it may be completed after a crashed attempt) is in the registry, schemas.registry.COMMANDS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from schemas.enums import CommandType
from worker.commands import account, guard, market, orders, positions
from worker.context import AccountContext, Run
from worker.outcome import Outcome

#: A handler. The payload is the command's own pydantic model (schemas.commands), hence `Any` here.
Handler = Callable[[AccountContext, Any, Run], Awaitable[Outcome]]

HANDLERS: dict[CommandType, Handler] = {
    CommandType.ACCOUNT_SUMMARY: account.account_summary,
    CommandType.MARKET_KLINES: market.klines,
    CommandType.MARKET_FUNDING_RATE: market.funding_rate,
    CommandType.ORDER_CANCEL: orders.cancel_order,
    CommandType.ORDER_MODIFY: orders.modify_order,
    CommandType.ORDER_OPEN_MARKET: orders.open_market,
    CommandType.ORDER_CLOSE_MARKET: orders.close_market,
    CommandType.POSITION_LEVERAGE: positions.set_leverage,
    CommandType.POSITION_MARGIN_MODE: positions.set_margin_mode,
    CommandType.ACCOUNT_HALT: guard.halt,
    CommandType.ACCOUNT_RESUME: guard.resume,
    CommandType.COMMAND_STATUS: guard.command_status,
}
