"""JSON on the wire with exact money.

Decimal values are written as JSON numbers with exactly their digits (no float in between), and
JSON numbers with a fraction are read back as Decimal. NaN and Infinity are refused both ways:
they are not JSON and never a valid price or quantity.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson


class JsonDecodeError(ValueError):
    """The bytes are not a JSON document AIQT accepts."""


class ExponentDecimal(Decimal):
    """A JSON number that was written with an exponent (`1e-3`). Its value is exact, but request
    validation refuses it: Binance takes plain decimals only, and so does AIQT."""


#: Request documents are flat objects; anything nested deeper than this is refused before use.
MAX_DEPTH = 8


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError("NaN and Infinity are not JSON")
        return orjson.Fragment(format(value, "f").encode())
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> bytes:
    """Serialise to JSON bytes; Decimal becomes a JSON number with the same digits."""
    return orjson.dumps(value, default=_default)


def _refuse_constant(name: str) -> Any:
    raise JsonDecodeError(f"{name} is not a valid JSON number")


def _parse_float(text: str) -> Decimal:
    return ExponentDecimal(text) if "e" in text or "E" in text else Decimal(text)


def loads(raw: bytes | str, *, max_depth: int | None = None) -> Any:
    """Parse JSON, reading every number with a fraction or exponent as Decimal (an exponent gives an
    `ExponentDecimal`). With `max_depth`, arrays and objects nested deeper than that are refused."""
    try:
        value = json.loads(raw, parse_float=_parse_float, parse_constant=_refuse_constant)
    except JsonDecodeError:
        raise
    except RecursionError as exc:
        raise JsonDecodeError("body is nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise JsonDecodeError(f"body is not valid JSON: {exc}") from exc
    if max_depth is not None and _depth(value, max_depth + 1) > max_depth:
        raise JsonDecodeError(f"body is nested more than {max_depth} levels deep")
    return value


def _depth(value: Any, stop: int) -> int:
    """Nesting depth of arrays and objects, counted no further than `stop`."""
    if stop <= 0 or not isinstance(value, dict | list):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(child, stop - 1) for child in children), default=0)


def envelope(code: int, msg: str, data: Any = None) -> bytes:
    """The `{code, msg, data}` reply every REST response and bus reply carries."""
    return dumps({"code": code, "msg": msg, "data": data})
