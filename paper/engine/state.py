"""The engine's state: accounts, their orders, algo orders, trades and income, id counters, and
loading them back from SQLite.

Everything lives in memory and is written behind to SQLite through :class:`~paper.store.Store`.
Single-threaded by design: the ASGI app calls it from the event loop only. The other engine
modules are layers on top of this one (margin → fills → algo orders → orders → …), each adding
the behaviour of one noun.
"""

from __future__ import annotations

import logging
import random
import secrets
import string
from decimal import Decimal

from .. import params
from ..errors import err
from ..market import FUNDING_INTERVAL, Market
from ..models import Account, Algo, Income, Order, Position, Trade
from ..store import Store
from ..symbols import DEFAULT_LEVERAGE
from .events import EngineEvent, Listener

log = logging.getLogger("paper.engine")

_ALNUM = string.ascii_letters + string.digits


class EngineState:
    """All accounts of one paper exchange, and the helpers every layer above needs."""

    def __init__(self, market: Market, store: Store, starting_balance: Decimal):
        self.market = market
        self.store = store
        self.starting_balance = starting_balance
        self.accounts: dict[str, Account] = {}
        self.orders: dict[int, Order] = {}
        self.algos: dict[int, Algo] = {}
        self.next_order_id = 4_100_000_001
        self.next_algo_id = 1_000_000_001
        self.next_trade_id = 260_000_001
        self.next_tran_id = 9_000_000_001
        self.funding_marks: dict[str, dict[str, object]] = {}  # "SYMBOL:time" -> {rate, mark}
        self.last_funding = 0
        self.rng = random.Random()
        self.listeners: list[Listener] = []
        self.margin_called: set[str] = set()  # accounts told MARGIN_CALL since their ratio last fell

    def emit(self, event: EngineEvent) -> None:
        """Tell every listener about a change (synchronously; a failing listener is logged)."""
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                log.exception("engine listener failed on %s", type(event).__name__)

    # ------------------------------------------------------------------ persistence ----------
    def load(self) -> None:
        st = self.store
        for r in st.load("meta"):
            if r.get("key") == "clock":
                self.market.offset = int(r["offset"])
                self.last_funding = int(r["last_funding"])
        for r in st.load("accounts"):
            loaded = Account.from_row(r)
            self.accounts[loaded.api_key] = loaded
        acc: Account | None
        for r in st.load("orders"):
            o = Order.from_row(r)
            acc = self.accounts.get(o.api_key)
            if acc is None:
                continue
            self.orders[o.order_id] = o
            self._index_order(acc, o)
            self.next_order_id = max(self.next_order_id, o.order_id + 1)
        for r in st.load("algos"):
            a = Algo.from_row(r)
            acc = self.accounts.get(a.api_key)
            if acc is None:
                continue
            self.algos[a.algo_id] = a
            acc.algos[a.algo_id] = a
            if a.is_open:
                acc.open_algos[a.algo_id] = a
            self.next_algo_id = max(self.next_algo_id, a.algo_id + 1)
        for r in st.load("trades"):
            t = Trade.from_row(r)
            acc = self.accounts.get(t.api_key)
            if acc is not None:
                acc.trades.append(t)
            self.next_trade_id = max(self.next_trade_id, t.trade_id + 1)
        for r in st.load("income"):
            i = Income.from_row(r)
            acc = self.accounts.get(i.api_key)
            if acc is not None:
                acc.income.append(i)
            self.next_tran_id = max(self.next_tran_id, i.tran_id + 1)
        for r in st.load("funding"):
            self.funding_marks[str(r["key"])] = r
        if not self.last_funding:
            self.last_funding = self.market.now() // FUNDING_INTERVAL * FUNDING_INTERVAL
            self.save_clock()

    def save_clock(self) -> None:
        self.store.put(
            "meta", "clock", {"key": "clock", "offset": self.market.offset, "last_funding": self.last_funding}
        )

    def _index_order(self, acc: Account, o: Order) -> None:
        acc.orders.append(o)
        acc.by_client.setdefault(o.client_id, []).append(o)
        if o.is_open:
            acc.open_orders[o.order_id] = o
            acc.open_by_client[o.client_id] = o

    def _save_acc(self, acc: Account) -> None:
        self.store.put("accounts", acc.api_key, acc)

    # ------------------------------------------------------------------ accounts -------------
    def create_account(self, api_key: str, api_secret: str, name: str, balance: Decimal | None) -> Account:
        bal = self.starting_balance if balance is None else balance
        acc = Account(api_key, api_secret, name, bal, bal, update_time=self.market.now())
        acc.secret_bytes = api_secret.encode()
        self.accounts[api_key] = acc
        self._save_acc(acc)
        return acc

    def new_key(self) -> str:
        return "".join(self.rng.choices(_ALNUM, k=64))

    def reset(self) -> None:
        """Wipe orders, positions, income; balances back to each account's starting balance."""
        self.orders.clear()
        self.algos.clear()
        self.funding_marks.clear()
        self.margin_called.clear()
        self.store.wipe(("orders", "algos", "trades", "income", "funding"))
        for acc in self.accounts.values():
            acc.balance = acc.starting_balance
            acc.dual = False
            acc.leverage.clear()
            acc.margin.clear()
            acc.positions.clear()
            acc.orders.clear()
            acc.open_orders.clear()
            acc.open_by_client.clear()
            acc.by_client.clear()
            acc.algos.clear()
            acc.open_algos.clear()
            acc.trades.clear()
            acc.income.clear()
            self._save_acc(acc)
        self.market.pins.clear()

    # ------------------------------------------------------------------ helpers --------------
    @staticmethod
    def lev(acc: Account, sym: str) -> int:
        return acc.leverage.get(sym, DEFAULT_LEVERAGE)

    @staticmethod
    def isolated(acc: Account, sym: str) -> bool:
        return acc.margin.get(sym) == "ISOLATED"

    def _pos(self, acc: Account, sym: str, side: str) -> Position:
        p = acc.positions.get((sym, side))
        if p is None:
            p = Position(sym, side)
            acc.positions[(sym, side)] = p
        return p

    @staticmethod
    def _client_id() -> str:
        return secrets.token_hex(11)  # 22 characters, inside Binance's client-id alphabet

    def _income(
        self, acc: Account, sym: str, typ: str, amount: Decimal, t: int, trade_id: str = "", info: str = ""
    ) -> None:
        inc = Income(self.next_tran_id, acc.api_key, sym, typ, amount, t, info, trade_id)
        self.next_tran_id += 1
        acc.income.append(inc)
        self.store.put("income", inc.tran_id, inc)

    def _position_side(self, acc: Account, p: params.Params) -> str:
        ps = p.get("positionSide") or "BOTH"
        if ps not in ("BOTH", "LONG", "SHORT"):
            raise err(-4060, "Invalid position side.")
        if (acc.dual and ps == "BOTH") or (not acc.dual and ps != "BOTH"):
            raise err(-4061, "Order's position side does not match user's setting.")
        return ps

    def _reduce_only_param(self, acc: Account, p: params.Params) -> bool:
        ro = params.boolean(p, "reduceOnly")
        if acc.dual and "reduceOnly" in p and ro:
            raise err(-1106, "Parameter 'reduceonly' sent when not required.")
        return ro
