"""Reading request parameters the way Binance validates them."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .errors import BinanceError, bad_value, illegal_chars, invalid_symbol, missing
from .symbols import SYMBOLS, SymbolSpec

Params = dict[str, str]

_NUM = re.compile(r"^-?[0-9]{1,20}(\.[0-9]{0,20})?$")
_INT = re.compile(r"^-?[0-9]{1,20}$")
CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
NUM_RANGE = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
INT_RANGE = r"^[0-9]{1,20}$"


def req(p: Params, name: str) -> str:
    v = p.get(name)
    if v is None or v == "":
        raise missing(name)
    return v


def dec(p: Params, name: str, required: bool = True) -> Decimal | None:
    v = p.get(name)
    if v is None or v == "":
        if required:
            raise missing(name)
        return None
    if not _NUM.match(v):
        raise illegal_chars(name, NUM_RANGE)
    try:
        return Decimal(v)
    except InvalidOperation:
        raise illegal_chars(name, NUM_RANGE) from None


def integer(p: Params, name: str, required: bool = False, default: int | None = None) -> int | None:
    v = p.get(name)
    if v is None or v == "":
        if required:
            raise missing(name)
        return default
    if not _INT.match(v):
        raise illegal_chars(name, INT_RANGE)
    return int(v)


def boolean(p: Params, name: str, default: bool = False) -> bool:
    v = p.get(name)
    if v is None or v == "":
        return default
    lv = v.lower()
    if lv == "true":
        return True
    if lv == "false":
        return False
    raise bad_value(name)


def enum(
    p: Params,
    name: str,
    allowed: tuple[str, ...],
    code: int = -1130,
    msg: str | None = None,
    required: bool = True,
    default: str | None = None,
) -> str | None:
    v = p.get(name)
    if v is None or v == "":
        if required:
            raise missing(name)
        return default
    if v not in allowed:
        raise BinanceError(code, msg or f"Data sent for parameter '{name}' is not valid.")
    return v


def symbol(p: Params, required: bool = True) -> SymbolSpec | None:
    v = p.get("symbol")
    if v is None or v == "":
        if required:
            raise missing("symbol")
        return None
    spec = SYMBOLS.get(v.upper())
    if spec is None:
        raise invalid_symbol()
    return spec


def limit(p: Params, default: int, maximum: int) -> int:
    n = integer(p, "limit", default=default)
    assert n is not None
    if n <= 0:
        raise bad_value("limit")
    return min(n, maximum)
