"""The protection policy: an entry filled, a stop loss / take profit did not. Driven through the
`order.open_market` handler over a MockTransport; the assertions are on the exchange calls made."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import httpx
import pytest

from schemas import commands as cmd
from schemas import errors
from schemas import replies as r
from tests.unit.conftest import Rig
from tests.unit.fake_fapi import FakeFapi, error
from worker import ids
from worker.commands.orders import open_market
from worker.context import AccountContext, Run
from worker.outcome import Outcome

ORDER = "/fapi/v1/order"
ALGO = "/fapi/v1/algoOrder"
RUN = Run(command_id="cmd-1", redelivered=False)
CLOSE_WOULD_TRIGGER = error(400, -2021, "Order would immediately trigger.")


def _ctx(rig: Rig, policy: Literal["close", "keep"]) -> AccountContext:
    return AccountContext(name="acct", exchange=rig.exchange, protection_policy=policy)


def _open(side: str = "BUY") -> cmd.OpenMarket:
    return cmd.OpenMarket.model_validate(
        {"symbol": "BTCUSDT", "side": side, "quantity": "0.002", "stopLoss": "90000", "takeProfit": "99000"}
    )


def _cid(leg: str) -> str:
    return ids.client_order_id("acct", RUN.command_id, leg)


def _protection(outcome: Outcome) -> r.Protection:
    assert isinstance(outcome.data, r.OpenMarketData) and outcome.data.protection is not None
    return outcome.data.protection


async def test_both_legs_placed_is_success(rig: Rig) -> None:
    outcome = await open_market(_ctx(rig, "close"), _open(), RUN)

    assert (outcome.code, outcome.msg) == (errors.OK, "订单提交成功")
    assert isinstance(outcome.data, r.OpenMarketData) and outcome.data.protection is None
    assert outcome.data.stopLoss is not None and outcome.data.stopLoss.clientOrderId == _cid(ids.STOP_LOSS)
    assert [p["clientAlgoId"] for _, _, p in rig.fake.calls("POST", ALGO)] == [
        _cid(ids.STOP_LOSS),
        _cid(ids.TAKE_PROFIT),
    ]
    assert len(rig.fake.calls("POST", ORDER)) == 1


async def test_policy_close_unwinds_then_cancels_the_placed_leg(rig: Rig) -> None:
    take_profit_refused(rig)

    outcome = await open_market(_ctx(rig, "close"), _open(), RUN)

    posts = [p for _, _, p in rig.fake.calls("POST", ORDER)]
    assert [p["newClientOrderId"] for p in posts] == [_cid(ids.ENTRY), _cid(ids.UNWIND)]
    unwind = posts[1]
    assert (unwind["side"], unwind["quantity"], unwind["reduceOnly"], unwind["type"]) == (
        "SELL",
        "0.002",
        "true",
        "MARKET",
    )
    stop_loss = rig.fake.algos[_cid(ids.STOP_LOSS)]
    assert [p["algoId"] for _, _, p in rig.fake.calls("DELETE", ALGO)] == [str(stop_loss["algoId"])]
    assert stop_loss["algoStatus"] == "CANCELED"
    # Cancelled only after the close: the DELETE comes after the unwind POST.
    routes = rig.fake.routes()
    assert routes.index(f"DELETE {ALGO}") > max(i for i, route in enumerate(routes) if route == f"POST {ORDER}")

    assert outcome.code == -2021
    assert "takeProfit could not be placed (Order would immediately trigger.)" in outcome.msg
    assert "the position was closed (policy=close)" in outcome.msg
    protection = _protection(outcome)
    assert (protection.status, protection.policy, protection.failedLegs) == ("FAILED", "close", ["takeProfit"])
    assert protection.closeOrder is not None and protection.closeOrder.clientOrderId == _cid(ids.UNWIND)


async def test_policy_keep_leaves_the_position_and_the_placed_leg(rig: Rig) -> None:
    take_profit_refused(rig)

    outcome = await open_market(_ctx(rig, "keep"), _open(), RUN)

    assert [p["newClientOrderId"] for _, _, p in rig.fake.calls("POST", ORDER)] == [_cid(ids.ENTRY)]
    assert rig.fake.calls("DELETE") == []
    assert rig.fake.algos[_cid(ids.STOP_LOSS)]["algoStatus"] == "NEW"
    assert outcome.code == -2021
    assert "kept open and UNPROTECTED (policy=keep)" in outcome.msg
    protection = _protection(outcome)
    assert (protection.status, protection.policy, protection.closeOrder) == ("FAILED", "keep", None)
    assert isinstance(outcome.data, r.OpenMarketData) and outcome.data.stopLoss is not None


async def test_policy_close_whose_close_fails_reports_unprotected(rig: Rig) -> None:
    take_profit_refused(rig)
    # The entry fills (default); the unwind is refused.
    rig.fake.script(
        "POST", ORDER, lambda fake, request: fake.default(request), error(400, -2019, "Margin is insufficient.")
    )

    outcome = await open_market(_ctx(rig, "close"), _open(), RUN)

    assert len(rig.fake.calls("POST", ORDER)) == 2
    assert rig.fake.calls("DELETE") == []  # the stop loss is all the protection there is: keep it
    assert "closing the position FAILED too (Margin is insufficient.)" in outcome.msg
    assert "UNPROTECTED" in outcome.msg
    assert _protection(outcome).policy == "keep"


async def test_an_unknown_leg_is_reported_unknown(rig: Rig) -> None:
    # The stop loss's outcome stays unknown through every send (not executed, as it turns out).
    rig.fake.script("POST", ALGO, *[error(504, None, "Gateway Time-out")] * 3)

    outcome = await open_market(_ctx(rig, "keep"), _open(), RUN)

    protection = _protection(outcome)
    assert (protection.status, protection.failedLegs) == ("UNKNOWN", ["stopLoss"])
    assert outcome.code == errors.INTERNAL
    assert rig.sleep.waits  # each unknown send waited out its recvWindow before the next


async def test_a_rerun_of_an_unwound_entry_places_nothing(rig: Rig) -> None:
    take_profit_refused(rig)
    await open_market(_ctx(rig, "close"), _open(), RUN)
    rig.fake.requests.clear()

    again = await open_market(_ctx(rig, "close"), _open(), Run(command_id=RUN.command_id, redelivered=True))

    assert rig.fake.calls("POST") == []
    assert "in an earlier run of this command" in again.msg
    protection = _protection(again)
    assert (protection.policy, protection.error) == ("close", "earlier run")
    assert protection.closeOrder is not None and protection.closeOrder.clientOrderId == _cid(ids.UNWIND)


@pytest.mark.parametrize(("hedge", "expected"), [(False, {"reduceOnly": "true"}), (True, {"positionSide": "SHORT"})])
async def test_the_unwind_closes_the_side_the_entry_opened(rig: Rig, hedge: bool, expected: dict[str, str]) -> None:
    rig.fake.hedge = hedge
    take_profit_refused(rig)

    await open_market(_ctx(rig, "close"), _open(side="SELL"), RUN)

    unwind = rig.fake.calls("POST", ORDER)[1][2]
    assert unwind["side"] == "BUY"
    assert {k: unwind[k] for k in ("reduceOnly", "positionSide") if k in unwind} == expected
    stop = rig.fake.algos[_cid(ids.STOP_LOSS)]
    assert (stop["side"], stop["positionSide"]) == ("BUY", "SHORT" if hedge else "BOTH")
    assert stop["triggerPrice"] == str(Decimal("90000"))


def take_profit_refused(rig: Rig) -> None:
    """Algo POSTs: the stop loss is placed, the take profit refused (in whichever order they come)."""

    def answer(fake: FakeFapi, request: httpx.Request) -> httpx.Response:
        if request.url.params["type"] == "TAKE_PROFIT_MARKET":
            return CLOSE_WOULD_TRIGGER(fake, request)
        return fake.default(request)

    rig.fake.route("POST", ALGO, answer)
