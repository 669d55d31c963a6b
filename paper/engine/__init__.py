"""The trading engine: accounts, orders, algo orders, positions, margin, funding, liquidation.

Cut by noun into layers, each a class that builds on the one below:

- :mod:`.state` — accounts, id counters, persistence (loading back from SQLite)
- :mod:`.margin` — available balance, margin needed, position numbers
- :mod:`.fills` — executing orders, positions, fees, realised PnL
- :mod:`.algos` — conditional orders and their firing
- :mod:`.orders` — plain LIMIT / MARKET orders
- :mod:`.history` — one pager for every history query
- :mod:`.account_settings` — leverage, margin type, position mode
- :mod:`.views` — Binance JSON of accounts, balances, positions
- :mod:`.simulation` — triggers, resting fills, liquidation, funding, the clock advance

:mod:`.filters` holds Binance's symbol filters as plain functions. All state lives in memory,
written behind to SQLite; single-threaded, called from the event loop only.
"""

from __future__ import annotations

from .filters import check_notional, check_percent_price, check_price, check_qty
from .simulation import Simulation

__all__ = ["Engine", "check_notional", "check_percent_price", "check_price", "check_qty"]


class Engine(Simulation):
    """All accounts of one paper exchange."""
