"""A handler's result before it becomes envelope bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class Outcome:
    code: int
    msg: str
    data: BaseModel | dict[str, Any] | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    dead_letter: str | None = None  # not executed: dead-letter the command with this reason


class Refusal(Exception):
    """Raised by a handler to answer with an error envelope (no traceback, no secret)."""

    def __init__(
        self,
        code: int,
        msg: str,
        data: Any = None,
        headers: dict[str, Any] | None = None,
        dead_letter: str | None = None,
    ) -> None:
        super().__init__(msg)
        self.outcome = Outcome(code, msg, data, headers or {}, dead_letter)
