"""SQLite rows of the state objects: every persisted field under its own (Python) name.

Rows written before the fields had their own names used Binance's one-letter wire keys
("k", "S", "X", …); :func:`from_row` still reads those, through each class's legacy map, so an
existing database loads unchanged and is rewritten with the new keys as its objects change.
"""

from __future__ import annotations

import types
import typing
from dataclasses import fields
from decimal import Decimal
from typing import Any, TypeVar

T = TypeVar("T")


def to_row(obj: Any, skip: frozenset[str] = frozenset()) -> dict[str, object]:
    """The persisted fields of a dataclass instance; Decimals as strings (exact)."""
    out: dict[str, object] = {}
    for f in fields(obj):
        if f.name in skip:
            continue
        value = getattr(obj, f.name)
        out[f.name] = str(value) if isinstance(value, Decimal) else value
    return out


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(hint, types.UnionType):
        hint = next(h for h in typing.get_args(hint) if h is not type(None))
    if hint is Decimal:
        return Decimal(str(value))
    if hint in (int, str, bool):
        return hint(value)
    return value


def from_row(cls: type[T], row: dict[str, Any], legacy: dict[str, str], skip: frozenset[str] = frozenset()) -> T:
    """An instance of the dataclass `cls` from a row (new or legacy keys); absent fields default."""
    data = {legacy.get(key, key): value for key, value in row.items()}
    hints = _hints(cls)
    kwargs = {
        f.name: _convert(hints[f.name], data[f.name])
        for f in fields(cls)  # type: ignore[arg-type]
        if f.name in data and f.name not in skip
    }
    return cls(**kwargs)
