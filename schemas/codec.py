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


def loads(raw: bytes | str) -> Any:
    """Parse JSON, reading every number with a fraction or exponent as Decimal."""
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=_refuse_constant)
    except JsonDecodeError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise JsonDecodeError(f"body is not valid JSON: {exc}") from exc
