"""In-memory state objects and their JSON (Binance shapes; SQLite rows via :mod:`paper.rows`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import rows
from .symbols import SYMBOLS

ZERO = Decimal(0)
E8 = Decimal("0.00000001")


def fmt(d: Decimal, places: int) -> str:
    return f"{d:.{places}f}"


def fmt_avg(d: Decimal, places: int) -> str:
    """At least `places` decimals, more (up to 8) when the average needs them."""
    s = f"{d:.8f}".rstrip("0")
    head, _, tail = s.partition(".")
    if len(tail) < places:
        tail = tail + "0" * (places - len(tail))
    return head + ("." + tail if tail else "")


_LEGACY_POSITION = {"iw": "isolated_wallet", "ut": "update_time"}


@dataclass(slots=True)
class Position:
    symbol: str
    side: str  # BOTH / LONG / SHORT
    amt: Decimal = ZERO  # signed for BOTH; LONG > 0; SHORT < 0 (Binance shows SHORT negative)
    entry: Decimal = ZERO
    isolated_wallet: Decimal = ZERO
    update_time: int = 0

    def row(self) -> dict[str, object]:
        return rows.to_row(self)

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Position:
        return rows.from_row(cls, r, _LEGACY_POSITION)


_LEGACY_ORDER = {
    "id": "order_id",
    "k": "api_key",
    "s": "symbol",
    "c": "client_id",
    "S": "side",
    "t": "type",
    "f": "tif",
    "p": "price",
    "q": "orig_qty",
    "ps": "position_side",
    "R": "reduce_only",
    "T": "time",
    "u": "update_time",
    "X": "status",
    "z": "executed_qty",
    "Z": "cum_quote",
    "cp": "close_position",
    "V": "stp",
    "wt": "working_type",
    "pP": "price_protect",
    "sp": "stop_price",
}


@dataclass(slots=True)
class Order:
    order_id: int
    api_key: str
    symbol: str
    client_id: str
    side: str
    type: str
    tif: str
    price: Decimal
    orig_qty: Decimal
    position_side: str
    reduce_only: bool
    time: int
    update_time: int
    status: str = "NEW"
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    close_position: bool = False
    stp: str = "EXPIRE_MAKER"
    gtd: int = 0
    working_type: str = "CONTRACT_PRICE"
    price_protect: bool = False
    stop_price: Decimal = ZERO

    @property
    def is_open(self) -> bool:
        return self.status == "NEW" or self.status == "PARTIALLY_FILLED"

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.executed_qty if self.executed_qty else ZERO

    def json(self, with_time: bool = True) -> dict[str, object]:
        spec = SYMBOLS[self.symbol]
        pp = spec.price_precision
        qp = spec.qty_precision
        ex = fmt(self.executed_qty, qp)
        d: dict[str, object] = {
            "orderId": self.order_id,
            "symbol": self.symbol,
            "status": self.status,
            "clientOrderId": self.client_id,
            "price": fmt(self.price, pp),
            "avgPrice": fmt_avg(self.avg_price, pp),
            "origQty": fmt(self.orig_qty, qp),
            "executedQty": ex,
            "cumQty": ex,
            "cumQuote": fmt(self.cum_quote, pp + qp),
            "timeInForce": self.tif,
            "type": self.type,
            "reduceOnly": self.reduce_only,
            "closePosition": self.close_position,
            "side": self.side,
            "positionSide": self.position_side,
            "stopPrice": fmt(self.stop_price, pp),
            "workingType": self.working_type,
            "priceProtect": self.price_protect,
            "origType": self.type,
            "priceMatch": "NONE",
            "selfTradePreventionMode": self.stp,
            "goodTillDate": self.gtd,
            "updateTime": self.update_time,
        }
        if with_time:
            d["time"] = self.time
        return d

    def row(self) -> dict[str, object]:
        return rows.to_row(self)

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Order:
        return rows.from_row(cls, r, _LEGACY_ORDER)


_LEGACY_ALGO = {
    "id": "algo_id",
    "k": "api_key",
    "c": "client_algo_id",
    "s": "symbol",
    "S": "side",
    "ps": "position_side",
    "o": "order_type",
    "f": "tif",
    "q": "quantity",
    "tp": "trigger_price",
    "p": "price",
    "wt": "working_type",
    "cp": "close_position",
    "pP": "price_protect",
    "R": "reduce_only",
    "ct": "create_time",
    "ut": "update_time",
    "X": "status",
    "tt": "trigger_time",
    "ai": "actual_order_id",
    "ap": "actual_price",
    "aq": "actual_qty",
    "V": "stp",
    "act": "activate_price",
    "cr": "callback_rate",
    "ia": "activated",
    "ex": "extreme",
}


@dataclass(slots=True)
class Algo:
    algo_id: int
    api_key: str
    client_algo_id: str
    symbol: str
    side: str
    position_side: str
    order_type: str
    tif: str
    quantity: Decimal
    trigger_price: Decimal
    price: Decimal
    working_type: str
    close_position: bool
    price_protect: bool
    reduce_only: bool
    create_time: int
    update_time: int
    status: str = "NEW"
    trigger_time: int = 0
    actual_order_id: int | None = None
    actual_price: Decimal = ZERO
    actual_qty: Decimal = ZERO
    stp: str = "EXPIRE_MAKER"
    gtd: int = 0
    activate_price: Decimal | None = None
    callback_rate: Decimal | None = None
    activated: bool = False
    extreme: Decimal | None = None  # trailing: best price seen since activation

    @property
    def is_open(self) -> bool:
        return self.status == "NEW"

    def json(self, query: bool = False) -> dict[str, object]:
        spec = SYMBOLS[self.symbol]
        pp = spec.price_precision
        qp = spec.qty_precision
        d: dict[str, object] = {
            "algoId": self.algo_id,
            "clientAlgoId": self.client_algo_id,
            "algoType": "CONDITIONAL",
            "orderType": self.order_type,
            "symbol": self.symbol,
            "side": self.side,
            "positionSide": self.position_side,
            "timeInForce": self.tif,
            "quantity": fmt(self.quantity, qp),
            "algoStatus": self.status,
            "triggerPrice": fmt(self.trigger_price, pp),
            "price": fmt(self.price, pp),
            "icebergQuantity": None,
            "selfTradePreventionMode": self.stp,
            "workingType": self.working_type,
            "priceMatch": "NONE",
            "closePosition": self.close_position,
            "priceProtect": self.price_protect,
            "reduceOnly": self.reduce_only,
            "createTime": self.create_time,
            "updateTime": self.update_time,
            "triggerTime": self.trigger_time,
            "goodTillDate": self.gtd,
        }
        if self.order_type == "TRAILING_STOP_MARKET":
            d["activatePrice"] = fmt(self.activate_price or ZERO, pp)
            d["callbackRate"] = str(self.callback_rate or ZERO)
        if query:
            d["actualOrderId"] = "" if self.actual_order_id is None else str(self.actual_order_id)
            d["actualPrice"] = fmt_avg(self.actual_price, pp) if self.actual_order_id else ""
            d["actualType"] = (
                ("LIMIT" if self.order_type in ("STOP", "TAKE_PROFIT") else "MARKET") if self.actual_order_id else ""
            )
            d["actualQty"] = fmt(self.actual_qty, qp) if self.actual_order_id else ""
            d["tpOrderType"] = ""
        return d

    def row(self) -> dict[str, object]:
        return rows.to_row(self)

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Algo:
        return rows.from_row(cls, r, _LEGACY_ALGO)


_LEGACY_TRADE = {
    "id": "trade_id",
    "k": "api_key",
    "o": "order_id",
    "s": "symbol",
    "S": "side",
    "ps": "position_side",
    "p": "price",
    "q": "qty",
    "n": "commission",
    "rp": "realized_pnl",
    "m": "maker",
    "T": "time",
}


@dataclass(slots=True)
class Trade:
    trade_id: int
    api_key: str
    order_id: int
    symbol: str
    side: str
    position_side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    realized_pnl: Decimal
    maker: bool
    time: int

    def json(self) -> dict[str, object]:
        spec = SYMBOLS[self.symbol]
        pp, qp = spec.price_precision, spec.qty_precision
        return {
            "buyer": self.side == "BUY",
            "commission": fmt(self.commission, 8),
            "commissionAsset": "USDT",
            "id": self.trade_id,
            "maker": self.maker,
            "orderId": self.order_id,
            "price": fmt(self.price, pp),
            "qty": fmt(self.qty, qp),
            "quoteQty": fmt(self.price * self.qty, pp + qp),
            "realizedPnl": fmt(self.realized_pnl, 8),
            "side": self.side,
            "positionSide": self.position_side,
            "symbol": self.symbol,
            "time": self.time,
        }

    def row(self) -> dict[str, object]:
        return rows.to_row(self)

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Trade:
        return rows.from_row(cls, r, _LEGACY_TRADE)


_LEGACY_INCOME = {
    "id": "tran_id",
    "k": "api_key",
    "s": "symbol",
    "t": "income_type",
    "i": "income",
    "T": "time",
    "tr": "trade_id",
    "a": "asset",
}


@dataclass(slots=True)
class Income:
    tran_id: int
    api_key: str
    symbol: str
    income_type: str
    income: Decimal
    time: int
    info: str = ""
    trade_id: str = ""
    asset: str = "USDT"

    def json(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "incomeType": self.income_type,
            "income": fmt(self.income, 8),
            "asset": self.asset,
            "info": self.info,
            "time": self.time,
            "tranId": self.tran_id,
            "tradeId": self.trade_id,
        }

    def row(self) -> dict[str, object]:
        return rows.to_row(self)

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Income:
        return rows.from_row(cls, r, _LEGACY_INCOME)


_LEGACY_ACCOUNT = {
    "k": "api_key",
    "sec": "api_secret",
    "start": "starting_balance",
    "bal": "balance",
    "lev": "leverage",
    "mt": "margin",
    "ut": "update_time",
}
# not persisted in the account's row: positions are nested separately, the rest is rebuilt on load
_ACCOUNT_RUNTIME = frozenset(
    {
        "positions",
        "secret_bytes",
        "orders",
        "open_orders",
        "open_by_client",
        "by_client",
        "algos",
        "open_algos",
        "trades",
        "income",
    }
)


@dataclass(slots=True)
class Account:
    api_key: str
    api_secret: str
    name: str
    starting_balance: Decimal
    balance: Decimal
    dual: bool = False
    leverage: dict[str, int] = field(default_factory=dict)
    margin: dict[str, str] = field(default_factory=dict)  # symbol -> CROSSED / ISOLATED
    positions: dict[tuple[str, str], Position] = field(default_factory=dict)
    update_time: int = 0
    secret_bytes: bytes = b""
    # runtime indexes (rebuilt on load, not persisted here)
    orders: list[Order] = field(default_factory=list)
    open_orders: dict[int, Order] = field(default_factory=dict)
    open_by_client: dict[str, Order] = field(default_factory=dict)
    by_client: dict[str, list[Order]] = field(default_factory=dict)
    algos: dict[int, Algo] = field(default_factory=dict)
    open_algos: dict[int, Algo] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    income: list[Income] = field(default_factory=list)

    def row(self) -> dict[str, object]:
        out = rows.to_row(self, _ACCOUNT_RUNTIME)
        out["positions"] = [p.row() for p in self.positions.values()]
        return out

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Account:
        acc = rows.from_row(cls, r, _LEGACY_ACCOUNT, _ACCOUNT_RUNTIME)
        acc.leverage = {k: int(v) for k, v in acc.leverage.items()}
        for pr in r.get("positions", r.get("pos", ())):
            p = Position.from_row(pr)
            acc.positions[(p.symbol, p.side)] = p
        acc.secret_bytes = acc.api_secret.encode()
        return acc
