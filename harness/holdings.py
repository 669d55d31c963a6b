"""Reading what the paper exchange holds for an account (`Stack.state(account)`, the admin view):
the orders and algo orders of one command, found by the client ids the worker gives them, and
position amounts. More than one order for a command's leg is a duplicate."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from harness.stack import Account
from worker import ids


def client_id(account: Account, command_id: str, leg: str = ids.ENTRY) -> str:
    return ids.client_order_id(account.name, command_id, leg)


def orders_of(state: dict[str, Any], account: Account, command_id: str, leg: str = ids.ENTRY) -> list[dict[str, Any]]:
    """Every order at the exchange with this command's client id for `leg` (more than one = a duplicate)."""
    cid = client_id(account, command_id, leg)
    return [o for o in state["orders"] if o.get("clientOrderId") == cid]


def algos_of(state: dict[str, Any], account: Account, command_id: str, leg: str) -> list[dict[str, Any]]:
    """Every algo order (stop loss, take profit) with this command's client id for `leg`."""
    cid = client_id(account, command_id, leg)
    return [a for a in state["algoOrders"] if a.get("clientAlgoId") == cid]


def position(state: dict[str, Any], symbol: str, side: str = "BOTH") -> Decimal:
    """The position amount (signed; 0 when there is none)."""
    for p in state["positions"]:
        if p["symbol"] == symbol and p["positionSide"] == side:
            return Decimal(p["positionAmt"])
    return Decimal(0)
