"""The fapi endpoints the worker uses, as typed calls: the one place that spells a "/fapi/…" path.

Handlers say what they want (`query_order`, `cancel_algo_order`, `position_risk`) and never how
Binance names it. Binance's camelCase parameter names live here and nowhere above.

Two kinds of call, because they fail differently (see `worker.binance.errors`):

- reads, cancels and settings go through `FapiClient.call`, which retries what may be transient;
- `new_order` / `new_algo_order` go through `FapiClient.send`: exactly one POST, no retry, because a
  filled market order re-sent with the same client id fills again. Only `worker.orders.place_once`
  calls them, after looking the order up by its client id.

Answers are Binance's JSON (`Json`), decoded with `Decimal` for numbers; `worker.views` maps them
onto the API document's shapes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from worker.binance.client import FapiClient, Params
from worker.binance.errors import ExchangeNotFound

Json = dict[str, Any]

ORDER = "/fapi/v1/order"
LISTEN_KEY = "/fapi/v1/listenKey"
ALGO_ORDER = "/fapi/v1/algoOrder"


@dataclass(frozen=True)
class MarketOrder:
    """A MARKET order placed with a deterministic client id (an entry, a close or an unwind)."""

    symbol: str
    side: str
    quantity: Decimal
    client_id: str
    #: "LONG"/"SHORT" in hedge mode; None in one-way mode.
    position_side: str | None = None
    reduce_only: bool = False

    def params(self) -> Params:
        params: dict[str, Any] = {
            "symbol": self.symbol,
            "side": self.side,
            "type": "MARKET",
            "quantity": self.quantity,
            "newClientOrderId": self.client_id,
            "newOrderRespType": "RESULT",
        }
        if self.position_side is not None:
            params["positionSide"] = self.position_side
        if self.reduce_only:
            params["reduceOnly"] = True
        return params


@dataclass(frozen=True)
class ClosePositionOrder:
    """A conditional (algo) order that closes the whole position when the mark price reaches `trigger`:
    a stop loss (STOP_MARKET) or a take profit (TAKE_PROFIT_MARKET)."""

    symbol: str
    side: str
    position_side: str
    kind: str
    trigger: Decimal
    client_id: str

    def params(self) -> Params:
        return {
            "algoType": "CONDITIONAL",
            "symbol": self.symbol,
            "side": self.side,
            "positionSide": self.position_side,
            "type": self.kind,
            "triggerPrice": self.trigger,
            "workingType": "MARK_PRICE",
            "closePosition": True,
            "clientAlgoId": self.client_id,
            "newOrderRespType": "RESULT",
        }


def _symbol(symbol: str | None) -> Params | None:
    return {"symbol": symbol} if symbol else None


class Exchange:
    """One account's fapi endpoints, on its signed client."""

    def __init__(self, client: FapiClient) -> None:
        self.client = client

    # --- orders ------------------------------------------------------------------------------

    async def new_order(self, order: MarketOrder) -> Json:
        """One POST, never retried: see `worker.orders.place_once`."""
        body: Json = await self.client.send("POST", ORDER, order.params())
        return body

    async def query_order(self, symbol: str, order_id: int) -> Json:
        body: Json = await self.client.call("GET", ORDER, {"symbol": symbol, "orderId": order_id})
        return body

    async def find_order(self, symbol: str, client_id: str) -> Json | None:
        """The order with this client id, or None if the exchange has none."""
        try:
            body: Json = await self.client.call("GET", ORDER, {"symbol": symbol, "origClientOrderId": client_id})
            return body
        except ExchangeNotFound:
            return None

    async def modify_order(self, symbol: str, order_id: int, side: str, quantity: Decimal, price: Decimal) -> Json:
        params = {"symbol": symbol, "orderId": order_id, "side": side, "quantity": quantity, "price": price}
        body: Json = await self.client.call("PUT", ORDER, params)
        return body

    async def cancel_order(self, symbol: str, order_id: int) -> Json:
        body: Json = await self.client.call("DELETE", ORDER, {"symbol": symbol, "orderId": order_id})
        return body

    async def open_orders(self, symbol: str | None = None) -> list[Json]:
        rows: list[Json] = await self.client.call("GET", "/fapi/v1/openOrders", _symbol(symbol))
        return rows

    async def cancel_all_orders(self, symbol: str) -> Json:
        """Cancel every open regular order of the symbol (not the algo orders: see cancel_all_algo_orders)."""
        body: Json = await self.client.call("DELETE", "/fapi/v1/allOpenOrders", {"symbol": symbol})
        return body

    async def user_trades(
        self, symbol: str, *, start_time: int | None = None, from_id: int | None = None, limit: int = 1000
    ) -> list[Json]:
        """The account's trades in the symbol, oldest first (Binance: `fromId` excludes `startTime`)."""
        params: dict[str, Any] = {"symbol": symbol, "limit": limit}
        if from_id is not None:
            params["fromId"] = from_id
        elif start_time is not None:
            params["startTime"] = start_time
        rows: list[Json] = await self.client.call("GET", "/fapi/v1/userTrades", params)
        return rows

    # --- algo (conditional) orders -----------------------------------------------------------

    async def new_algo_order(self, order: ClosePositionOrder) -> Json:
        """One POST, never retried: see `worker.orders.place_once`."""
        body: Json = await self.client.send("POST", ALGO_ORDER, order.params())
        return body

    async def query_algo_order(self, algo_id: int) -> Json:
        body: Json = await self.client.call("GET", ALGO_ORDER, {"algoId": algo_id})
        return body

    async def find_algo_order(self, client_algo_id: str) -> Json | None:
        """The algo order with this client id, or None if the exchange has none."""
        try:
            body: Json = await self.client.call("GET", ALGO_ORDER, {"clientAlgoId": client_algo_id})
            return body
        except ExchangeNotFound:
            return None

    async def cancel_algo_order(self, algo_id: int) -> Json:
        body: Json = await self.client.call("DELETE", ALGO_ORDER, {"algoId": algo_id})
        return body

    async def open_algo_orders(self, symbol: str | None = None) -> list[Json]:
        rows: list[Json] = await self.client.call("GET", "/fapi/v1/openAlgoOrders", _symbol(symbol))
        return rows

    async def cancel_all_algo_orders(self, symbol: str) -> Json:
        """Cancel every open algo (SL/TP) order of the symbol."""
        body: Json = await self.client.call("DELETE", "/fapi/v1/algoOpenOrders", {"symbol": symbol})
        return body

    # --- account and positions ---------------------------------------------------------------

    async def account(self) -> Json:
        body: Json = await self.client.call("GET", "/fapi/v2/account")
        return body

    async def account_snapshot(self, symbol: str | None) -> tuple[Json, list[Json], list[Json], list[Json], Json]:
        """Account, positions, open orders, open algo orders and account config, in parallel, after
        asking the governor for all five at once (refused whole rather than half spent)."""
        self.client.preflight(
            [
                ("GET", "/fapi/v2/account", None),
                ("GET", "/fapi/v2/positionRisk", _symbol(symbol)),
                ("GET", "/fapi/v1/openOrders", _symbol(symbol)),
                ("GET", "/fapi/v1/openAlgoOrders", _symbol(symbol)),
                ("GET", "/fapi/v1/accountConfig", None),
            ]
        )
        return await asyncio.gather(
            self.account(),
            self.position_risk(symbol),
            self.open_orders(symbol),
            self.open_algo_orders(symbol),
            self.account_config(),
        )

    async def account_config(self) -> Json:
        body: Json = await self.client.call("GET", "/fapi/v1/accountConfig")
        return body

    async def position_risk(self, symbol: str | None = None) -> list[Json]:
        rows: list[Json] = await self.client.call("GET", "/fapi/v2/positionRisk", _symbol(symbol))
        return rows

    async def hedge_mode(self) -> bool:
        """Whether the account is in hedge mode (dual position side)."""
        body = await self.client.call("GET", "/fapi/v1/positionSide/dual")
        return bool(body["dualSidePosition"])

    async def set_leverage(self, symbol: str, leverage: int) -> Json:
        body: Json = await self.client.call("POST", "/fapi/v1/leverage", {"symbol": symbol, "leverage": leverage})
        return body

    async def set_margin_type(self, symbol: str, margin_type: str) -> Json:
        params = {"symbol": symbol, "marginType": margin_type}
        body: Json = await self.client.call("POST", "/fapi/v1/marginType", params)
        return body

    async def income(self, *, start_time: int, income_type: str | None = None, limit: int = 1000) -> list[Json]:
        """The account's income history of every symbol from `start_time` (ms), oldest first."""
        params: dict[str, Any] = {"startTime": start_time, "limit": limit}
        if income_type is not None:
            params["incomeType"] = income_type
        rows: list[Json] = await self.client.call("GET", "/fapi/v1/income", params)
        return rows

    async def funding_fees(self, symbol: str, start_time: int, limit: int = 1000) -> list[Json]:
        params = {"symbol": symbol, "incomeType": "FUNDING_FEE", "startTime": start_time, "limit": limit}
        rows: list[Json] = await self.client.call("GET", "/fapi/v1/income", params)
        return rows

    # --- user-data stream and resync (the streamer) -------------------------------------------

    async def start_listen_key(self) -> str:
        """The account's listenKey (Binance returns the live one if there is one, extended)."""
        body = await self.client.call("POST", LISTEN_KEY, signed=False)
        return str(body["listenKey"])

    async def keep_listen_key_alive(self) -> None:
        await self.client.call("PUT", LISTEN_KEY, signed=False)

    async def recent_orders(self, symbol: str) -> list[Json]:
        """The symbol's most recent orders (up to 1000), whatever their age."""
        rows: list[Json] = await self.client.call("GET", "/fapi/v1/allOrders", {"symbol": symbol, "limit": 1000})
        return rows

    async def recent_algo_orders(self, symbol: str) -> list[Json]:
        """The symbol's algo orders of the last 7 days (Binance's default window)."""
        rows: list[Json] = await self.client.call("GET", "/fapi/v1/allAlgoOrders", {"symbol": symbol, "limit": 1000})
        return rows

    # --- the exchange's limits (worker.limits) -----------------------------------------------

    async def exchange_info(self) -> Json:
        body: Json = await self.client.call("GET", "/fapi/v1/exchangeInfo", signed=False)
        return body

    async def order_rate_limits(self) -> list[Json]:
        """This account's own order limits (GET /fapi/v1/rateLimit/order); may differ from exchangeInfo."""
        rows: list[Json] = await self.client.call("GET", "/fapi/v1/rateLimit/order")
        return rows

    # --- market data (unsigned) --------------------------------------------------------------

    async def klines(self, symbol: str, interval: str, limit: int) -> list[list[Any]]:
        params = {"symbol": symbol, "interval": interval, "limit": limit}
        rows: list[list[Any]] = await self.client.call("GET", "/fapi/v1/klines", params, signed=False)
        return rows

    async def premium_index(self, symbol: str) -> Json:
        body: Json = await self.client.call("GET", "/fapi/v1/premiumIndex", {"symbol": symbol}, signed=False)
        return body

    async def funding_rate_history(self, symbol: str, limit: int) -> list[Json]:
        params = {"symbol": symbol, "limit": limit}
        rows: list[Json] = await self.client.call("GET", "/fapi/v1/fundingRate", params, signed=False)
        return rows
