"""A scripted fapi behind `httpx.MockTransport`, for unit tests: no socket, no broker, no real waits.

`FakeFapi` answers the handful of endpoints the worker uses from in-memory orders (a market order
fills at once, an algo order rests as NEW). A test queues answers for a route with `script`, which
are used first, in order: an error (`error`), or "executed, but the answer was lost" (`lost`).
Every request is recorded (`requests`, `calls`), so tests assert on what the exchange saw.

`FakeSleep` is the client's injected sleep: it records each wait and moves the client's estimate of
the exchange clock forward by as much, so "wait until the recvWindow has passed" is observable in
the timestamps of the requests that follow.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
from pydantic import SecretStr

from worker.binance.client import FapiClient
from worker.binance.clock import ServerClock
from worker.binance.endpoints import Exchange

Json = dict[str, Any]
Answer = Callable[["FakeFapi", httpx.Request], httpx.Response]

BASE = "https://fapi.test"
MARK = Decimal("95000.0")


def ok(body: Any) -> Answer:
    """Answer 200 with this JSON body."""
    return lambda fake, request: httpx.Response(200, json=body)


def error(status: int, code: int | None = None, msg: str = "", headers: dict[str, str] | None = None) -> Answer:
    """Answer with an error (a Binance {code, msg} body when `code` is given, else `msg` as text)."""

    def answer(fake: FakeFapi, request: httpx.Request) -> httpx.Response:
        if code is None:
            return httpx.Response(status, text=msg, headers=headers)
        return httpx.Response(status, json={"code": code, "msg": msg}, headers=headers)

    return answer


def lost(status: int = 504, msg: str = "Gateway Time-out") -> Answer:
    """Execute the request, then lose the answer: the order exists, the caller hears only an error."""

    def answer(fake: FakeFapi, request: httpx.Request) -> httpx.Response:
        fake.default(request)
        return httpx.Response(status, text=msg)

    return answer


class FakeFapi:
    def __init__(self, *, hedge: bool = False) -> None:
        self.hedge = hedge
        self.requests: list[httpx.Request] = []
        self.orders: dict[str, Json] = {}  # by client id
        self.algos: dict[str, Json] = {}  # by client algo id
        self.server_offset_ms = 0
        self._scripts: dict[tuple[str, str], list[Answer]] = {}
        self._routes: dict[tuple[str, str], Answer] = {}
        self._ids = itertools.count(1001)

    def script(self, method: str, path: str, *answers: Answer) -> None:
        """Answer the next requests of this route with these, one each, then as before."""
        self._scripts.setdefault((method, path), []).extend(answers)

    def route(self, method: str, path: str, answer: Answer) -> None:
        """Answer every request of this route (not taken by a script) with `answer`."""
        self._routes[(method, path)] = answer

    def calls(self, method: str | None = None, path: str | None = None) -> list[tuple[str, str, dict[str, str]]]:
        """(method, path, params) of each request seen, optionally only those of one route."""
        seen = [(q.method, q.url.path, dict(q.url.params)) for q in self.requests]
        return [c for c in seen if (method is None or c[0] == method) and (path is None or c[1] == path)]

    def routes(self) -> list[str]:
        return [f"{q.method} {q.url.path}" for q in self.requests]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queued = self._scripts.get((request.method, request.url.path))
        if queued:
            return queued.pop(0)(self, request)
        override = self._routes.get((request.method, request.url.path))
        return override(self, request) if override else self.default(request)

    # --- the exchange's default behaviour ----------------------------------------------------

    def default(self, request: httpx.Request) -> httpx.Response:
        p = dict(request.url.params)
        route = (request.method, request.url.path)
        if route == ("GET", "/fapi/v1/time"):
            return httpx.Response(200, json={"serverTime": int(time.time() * 1000) + self.server_offset_ms})
        if route == ("GET", "/fapi/v1/positionSide/dual"):
            return httpx.Response(200, json={"dualSidePosition": self.hedge})
        if route == ("POST", "/fapi/v1/order"):
            return httpx.Response(200, json=self._new_order(p))
        if route == ("GET", "/fapi/v1/order"):
            found = next((o for o in self.orders.values() if _matches(o, p, "orderId", "clientOrderId")), None)
            return httpx.Response(200, json=found) if found else _not_found()
        if route == ("POST", "/fapi/v1/algoOrder"):
            return httpx.Response(200, json=self._new_algo(p))
        if route == ("GET", "/fapi/v1/algoOrder"):
            found = next((a for a in self.algos.values() if _matches(a, p, "algoId", "clientAlgoId")), None)
            return httpx.Response(200, json=found) if found else _not_found()
        if route == ("DELETE", "/fapi/v1/algoOrder"):
            algo = next((a for a in self.algos.values() if str(a["algoId"]) == p["algoId"]), None)
            if algo is None or algo["algoStatus"] != "NEW":
                return error(400, -2011, "Unknown order sent.")(self, request)
            algo["algoStatus"] = "CANCELED"
            return httpx.Response(200, json={"algoId": algo["algoId"], "code": "200", "msg": "success"})
        if route == ("GET", "/fapi/v1/openAlgoOrders"):
            rows = [a for a in self.algos.values() if a["algoStatus"] == "NEW" and a["symbol"] == p.get("symbol")]
            return httpx.Response(200, json=rows)
        return error(404, None, f"no fake for {route}")(self, request)

    def _new_order(self, p: dict[str, str]) -> Json:
        qty = p["quantity"]
        order: Json = {
            "orderId": next(self._ids),
            "symbol": p["symbol"],
            "status": "FILLED",
            "clientOrderId": p["newClientOrderId"],
            "price": "0",
            "avgPrice": str(MARK),
            "origQty": qty,
            "executedQty": qty,
            "cumQty": qty,
            "cumQuote": str(Decimal(qty) * MARK),
            "timeInForce": "GTC",
            "type": "MARKET",
            "reduceOnly": p.get("reduceOnly") == "true",
            "closePosition": False,
            "side": p["side"],
            "positionSide": p.get("positionSide", "BOTH"),
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": "MARKET",
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "updateTime": int(p["timestamp"]),
        }
        self.orders[order["clientOrderId"]] = order
        return order

    def _new_algo(self, p: dict[str, str]) -> Json:
        algo: Json = {
            "algoId": next(self._ids),
            "clientAlgoId": p["clientAlgoId"],
            "algoType": "CONDITIONAL",
            "orderType": p["type"],
            "symbol": p["symbol"],
            "side": p["side"],
            "positionSide": p["positionSide"],
            "timeInForce": "GTC",
            "quantity": "0",
            "algoStatus": "NEW",
            "triggerPrice": p["triggerPrice"],
            "price": "0",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "workingType": p["workingType"],
            "priceMatch": "NONE",
            "closePosition": p["closePosition"] == "true",
            "priceProtect": False,
            "reduceOnly": False,
            "createTime": int(p["timestamp"]),
            "updateTime": int(p["timestamp"]),
            "triggerTime": 0,
            "goodTillDate": 0,
        }
        self.algos[algo["clientAlgoId"]] = algo
        return algo


def _matches(row: Json, p: dict[str, str], id_key: str, client_key: str) -> bool:
    if id_key in p:
        return str(row[id_key]) == p[id_key]
    return bool(row[client_key] == p.get("origClientOrderId", p.get(client_key)))


def _not_found() -> httpx.Response:
    return httpx.Response(400, json={"code": -2013, "msg": "Order does not exist."})


class FakeSleep:
    """The client's sleep: records each wait and advances the client's view of the exchange clock."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.clock: ServerClock | None = None

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.clock is not None:
            self.clock.offset_ms += seconds * 1000


def make_exchange(
    fake: FakeFapi, *, recv_window: int = 5000, retry_attempts: int = 4
) -> tuple[Exchange, FakeSleep, httpx.AsyncClient]:
    """An Exchange whose HTTP goes to `fake` and whose waits go to a FakeSleep."""
    sleep = FakeSleep()
    clock = ServerClock()
    sleep.clock = clock
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handle))
    client = FapiClient(
        http,
        base_url=BASE,
        api_key="test-key",
        api_secret=SecretStr("test-secret"),
        clock=clock,
        recv_window=recv_window,
        retry_attempts=retry_attempts,
        sleep=sleep,
    )
    return Exchange(client), sleep, http
