"""In-memory state objects and their JSON (Binance shapes and SQLite rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

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


@dataclass(slots=True)
class Position:
    symbol: str
    side: str  # BOTH / LONG / SHORT
    amt: Decimal = ZERO  # signed for BOTH; LONG > 0; SHORT < 0 (Binance shows SHORT negative)
    entry: Decimal = ZERO
    isolated_wallet: Decimal = ZERO
    update_time: int = 0

    def row(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "side": self.side,
            "amt": str(self.amt),
            "entry": str(self.entry),
            "iw": str(self.isolated_wallet),
            "ut": self.update_time,
        }

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Position:
        return cls(
            str(r["symbol"]),
            str(r["side"]),
            Decimal(str(r["amt"])),
            Decimal(str(r["entry"])),
            Decimal(str(r["iw"])),
            int(r["ut"]),
        )


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
        return {
            "id": self.order_id,
            "k": self.api_key,
            "s": self.symbol,
            "c": self.client_id,
            "S": self.side,
            "t": self.type,
            "f": self.tif,
            "p": str(self.price),
            "q": str(self.orig_qty),
            "ps": self.position_side,
            "R": self.reduce_only,
            "T": self.time,
            "u": self.update_time,
            "X": self.status,
            "z": str(self.executed_qty),
            "Z": str(self.cum_quote),
            "cp": self.close_position,
            "V": self.stp,
            "gtd": self.gtd,
            "wt": self.working_type,
            "pP": self.price_protect,
            "sp": str(self.stop_price),
        }

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Order:
        g = r.__getitem__
        return cls(
            int(g("id")),
            str(g("k")),
            str(g("s")),
            str(g("c")),
            str(g("S")),
            str(g("t")),
            str(g("f")),
            Decimal(str(g("p"))),
            Decimal(str(g("q"))),
            str(g("ps")),
            bool(g("R")),
            int(g("T")),
            int(g("u")),
            str(g("X")),
            Decimal(str(g("z"))),
            Decimal(str(g("Z"))),
            bool(g("cp")),
            str(g("V")),
            int(g("gtd")),
            str(g("wt")),
            bool(g("pP")),
            Decimal(str(g("sp"))),
        )


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
        return {
            "id": self.algo_id,
            "k": self.api_key,
            "c": self.client_algo_id,
            "s": self.symbol,
            "S": self.side,
            "ps": self.position_side,
            "o": self.order_type,
            "f": self.tif,
            "q": str(self.quantity),
            "tp": str(self.trigger_price),
            "p": str(self.price),
            "wt": self.working_type,
            "cp": self.close_position,
            "pP": self.price_protect,
            "R": self.reduce_only,
            "ct": self.create_time,
            "ut": self.update_time,
            "X": self.status,
            "tt": self.trigger_time,
            "ai": self.actual_order_id,
            "ap": str(self.actual_price),
            "aq": str(self.actual_qty),
            "V": self.stp,
            "gtd": self.gtd,
            "act": None if self.activate_price is None else str(self.activate_price),
            "cr": None if self.callback_rate is None else str(self.callback_rate),
            "ia": self.activated,
            "ex": None if self.extreme is None else str(self.extreme),
        }

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Algo:
        g = r.__getitem__

        def od(k: str) -> Decimal | None:
            v = r.get(k)
            return None if v is None else Decimal(str(v))

        ai = g("ai")
        return cls(
            int(g("id")),
            str(g("k")),
            str(g("c")),
            str(g("s")),
            str(g("S")),
            str(g("ps")),
            str(g("o")),
            str(g("f")),
            Decimal(str(g("q"))),
            Decimal(str(g("tp"))),
            Decimal(str(g("p"))),
            str(g("wt")),
            bool(g("cp")),
            bool(g("pP")),
            bool(g("R")),
            int(g("ct")),
            int(g("ut")),
            str(g("X")),
            int(g("tt")),
            None if ai is None else int(ai),
            Decimal(str(g("ap"))),
            Decimal(str(g("aq"))),
            str(g("V")),
            int(g("gtd")),
            od("act"),
            od("cr"),
            bool(r.get("ia", False)),
            od("ex"),
        )


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
        return {
            "id": self.trade_id,
            "k": self.api_key,
            "o": self.order_id,
            "s": self.symbol,
            "S": self.side,
            "ps": self.position_side,
            "p": str(self.price),
            "q": str(self.qty),
            "n": str(self.commission),
            "rp": str(self.realized_pnl),
            "m": self.maker,
            "T": self.time,
        }

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Trade:
        g = r.__getitem__
        return cls(
            int(g("id")),
            str(g("k")),
            int(g("o")),
            str(g("s")),
            str(g("S")),
            str(g("ps")),
            Decimal(str(g("p"))),
            Decimal(str(g("q"))),
            Decimal(str(g("n"))),
            Decimal(str(g("rp"))),
            bool(g("m")),
            int(g("T")),
        )


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
        return {
            "id": self.tran_id,
            "k": self.api_key,
            "s": self.symbol,
            "t": self.income_type,
            "i": str(self.income),
            "T": self.time,
            "info": self.info,
            "tr": self.trade_id,
            "a": self.asset,
        }

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Income:
        g = r.__getitem__
        return cls(
            int(g("id")),
            str(g("k")),
            str(g("s")),
            str(g("t")),
            Decimal(str(g("i"))),
            int(g("T")),
            str(g("info")),
            str(g("tr")),
            str(g("a")),
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
        return {
            "k": self.api_key,
            "sec": self.api_secret,
            "name": self.name,
            "start": str(self.starting_balance),
            "bal": str(self.balance),
            "dual": self.dual,
            "lev": self.leverage,
            "mt": self.margin,
            "pos": [p.row() for p in self.positions.values()],
            "ut": self.update_time,
        }

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Account:
        acc = cls(
            str(r["k"]),
            str(r["sec"]),
            str(r["name"]),
            Decimal(str(r["start"])),
            Decimal(str(r["bal"])),
            bool(r["dual"]),
            dict(r["lev"]),
            dict(r["mt"]),
            {},
            int(r["ut"]),
        )
        for pr in r["pos"]:
            p = Position.from_row(pr)
            acc.positions[(p.symbol, p.side)] = p
        acc.secret_bytes = acc.api_secret.encode()
        return acc
