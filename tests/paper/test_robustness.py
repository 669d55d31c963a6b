"""Bad input never gets a 500: every route, fed odd values for every parameter it reads."""

from __future__ import annotations

import itertools

import pytest

from paper.app import ROUTES

from .conftest import Fapi

NAMES = (
    "symbol",
    "side",
    "type",
    "quantity",
    "price",
    "timeInForce",
    "orderId",
    "origClientOrderId",
    "newClientOrderId",
    "reduceOnly",
    "positionSide",
    "leverage",
    "marginType",
    "dualSidePosition",
    "interval",
    "limit",
    "startTime",
    "endTime",
    "algoType",
    "triggerPrice",
    "closePosition",
    "workingType",
    "algoId",
    "clientAlgoId",
    "callbackRate",
    "activatePrice",
    "goodTillDate",
    "newOrderRespType",
    "incomeType",
    "page",
    "fromId",
    "priceProtect",
    "selfTradePreventionMode",
)
ODD = (
    "",
    "-1",
    "0",
    "1e5",
    "NaN",
    "99999999999999999999999",
    "1.2.3",
    "true",
    "BTCUSDT",
    "ü",
    "%00",
    "9" * 40,
    "0.0000000001",
    " 1",
)


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES))
def test_no_500_on_garbage(fapi: Fapi, method: str, path: str) -> None:
    base = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "0.01",
        "price": "90000",
        "timeInForce": "GTC",
        "interval": "1m",
        "leverage": "5",
        "marginType": "ISOLATED",
        "dualSidePosition": "true",
        "algoType": "CONDITIONAL",
        "triggerPrice": "90000",
        "orderId": "1",
        "algoId": "1",
    }
    # every odd value for every name is too slow for the suite; each name gets three, rotating
    for i, name in enumerate(NAMES):
        for value in itertools.islice(itertools.cycle(ODD), 3 * i, 3 * i + 3):
            r = fapi.raw(method, path, {**base, name: value})
            assert r.status_code < 500, (method, path, name, value, r.text)
            assert r.headers["content-type"].startswith("application/json")
        r = fapi.raw(method, path, {k: v for k, v in base.items() if k != name})
        assert r.status_code < 500, (method, path, "without", name, r.text)
