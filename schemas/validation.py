"""Turning invalid input into the API document's error replies.

Most endpoints answer bad input with `400 "<field>: <problem>"`; a few have their own wording in
the API document, reproduced here exactly so that REST and AMQP callers get the same reply.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from schemas import errors
from schemas.commands import Payload
from schemas.enums import CommandType
from schemas.registry import COMMANDS


class InvalidCommand(ValueError):
    """Input that no handler should see; carries the reply to send instead."""

    def __init__(self, msg: str, data: Any = None, code: int = errors.BAD_REQUEST) -> None:
        super().__init__(msg)
        self.msg = msg
        self.data = data
        self.code = code


_MISSING = {"missing"}


def _field(err: Any) -> str:
    loc = [str(p) for p in err["loc"]]
    return ".".join(loc) if loc else "body"


def describe(command: CommandType, exc: ValidationError) -> InvalidCommand:
    """Map a pydantic error to the document's reply for this endpoint."""
    errs = exc.errors(include_url=False)
    missing = {_field(e) for e in errs if e["type"] in _MISSING}
    bad = {_field(e) for e in errs}

    match command:
        case CommandType.MARKET_KLINES if "interval" in bad:
            return InvalidCommand("Invalid interval.")
        case CommandType.MARKET_FUNDING_RATE if "symbol" in missing:
            return InvalidCommand("Symbol parameter is required")
        case CommandType.MARKET_FUNDING_RATE if "symbol" in bad:
            return InvalidCommand("Invalid symbol")
        case CommandType.ORDER_MODIFY if missing & {"symbol", "orderId", "side"}:
            return InvalidCommand("Missing symbol, orderId, or side")
        case CommandType.ORDER_CLOSE_MARKET if missing & {"symbol", "positionSide"}:
            return InvalidCommand("Missing required parameters", {"required": ["symbol", "positionSide"]})
        case CommandType.POSITION_LEVERAGE if missing & {"symbol", "leverage"}:
            return InvalidCommand("Missing required parameters: symbol, leverage")
        case CommandType.POSITION_LEVERAGE if "leverage" in bad:
            return InvalidCommand("Invalid leverage (1-125 allowed)")
        case CommandType.POSITION_MARGIN_MODE if missing & {"symbol", "marginType"}:
            return InvalidCommand("Missing required parameters: symbol, marginType")
        case CommandType.POSITION_MARGIN_MODE if "marginType" in bad:
            return InvalidCommand("Invalid marginType (ISOLATED/CROSSED)")
    return InvalidCommand("; ".join(f"{_field(e)}: {_message(e)}" for e in errs))


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def parse_payload(command: CommandType, raw: Any) -> Payload:
    """Validate a payload dict for `command`, or raise InvalidCommand with the document's reply."""
    if not isinstance(raw, dict):
        raise InvalidCommand("body: must be a JSON object")
    try:
        return COMMANDS[command].payload.model_validate(raw)
    except ValidationError as exc:
        raise describe(command, exc) from exc
