"""Armed faults for the next N matching requests (test control, never on Binance)."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = (
    "http_5xx",
    "service_unavailable",
    "delay",
    "rate_limit_429",
    "ban_418",
    "timestamp_1021",
    "executed_response_lost",
)
LOST_AS = ("503", "-1007", "timeout")


@dataclass(slots=True)
class Fault:
    id: int
    kind: str
    count: int = 1
    method: str | None = None
    path: str | None = None
    api_key: str | None = None
    status: int | None = None
    delay_ms: int | None = None
    lost_as: str | None = None

    def matches(self, method: str, path: str, api_key: str | None) -> bool:
        return (
            self.count > 0
            and (self.method is None or self.method.upper() == method)
            and (self.path is None or self.path == path)
            and (self.api_key is None or self.api_key == api_key)
        )

    def json(self) -> dict[str, object]:
        """The admin API's view, in Binance-style camelCase."""
        return {
            "id": self.id,
            "kind": self.kind,
            "count": self.count,
            "method": self.method,
            "path": self.path,
            "apiKey": self.api_key,
            "status": self.status,
            "delayMs": self.delay_ms,
            "lostAs": self.lost_as,
            "remaining": self.count,
        }


class Faults:
    def __init__(self) -> None:
        self.armed: list[Fault] = []
        self._next = 1

    def arm(self, kind: str, **kw: object) -> Fault:
        f = Fault(self._next, kind, **kw)  # type: ignore[arg-type]
        self._next += 1
        self.armed.append(f)
        return f

    def take(self, method: str, path: str, api_key: str | None) -> Fault | None:
        if not self.armed:
            return None
        for f in self.armed:
            if f.matches(method, path, api_key):
                f.count -= 1
                if f.count <= 0:
                    self.armed.remove(f)
                return f
        return None

    def clear(self) -> None:
        self.armed.clear()
