"""What can go wrong talking to Binance, and whether retrying can help.

ExchangeError                      carries HTTP status, Binance code and msg
├── ExchangeRejected               a definitive answer: not executed; don't retry unchanged
│   ├── ExchangeAuthError          -2014/-2015/-1022/-1002: our credentials are wrong
│   └── ExchangeNotFound           -2011/-2013: no such order
├── ExchangeUnavailable            not executed (connect failed, 503 "Service Unavailable.",
│   │                              -1001, -1008): safe to retry after a pause
│   ├── ExchangeRateLimited        429/418 (-1003/-1015): wait `retry_after` seconds
│   └── ClockSkew                  -1021: resync the clock, then retry
└── OrderStatusUnknown             the request may have executed (timeout after sending,
                                   5xx "Unknown error", -1006, -1007): reconcile by client id
                                   before anything is sent again
"""

from __future__ import annotations


class ExchangeError(Exception):
    def __init__(self, msg: str, *, status: int = 0, code: int | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.status = status
        self.code = code

    def __str__(self) -> str:
        return f"{self.msg} (HTTP {self.status}, code {self.code})" if self.status else self.msg


class ExchangeRejected(ExchangeError):
    """Binance answered with a definitive rejection."""


class ExchangeAuthError(ExchangeRejected):
    """Binance refused our API key or signature."""


class ExchangeNotFound(ExchangeRejected):
    """No such order (-2011 on cancel, -2013 on query)."""


class ExchangeUnavailable(ExchangeError):
    """The request was certainly not executed; retrying after a pause is safe."""


class ExchangeRateLimited(ExchangeUnavailable):
    def __init__(self, msg: str, *, status: int, code: int | None, retry_after: float | None) -> None:
        super().__init__(msg, status=status, code=code)
        self.retry_after = retry_after


class ClockSkew(ExchangeUnavailable):
    """-1021: our timestamp was outside recvWindow. Not executed."""


class OrderStatusUnknown(ExchangeError):
    """The request may or may not have executed."""


NOT_FOUND_CODES = frozenset({-2011, -2013, -20124})
AUTH_CODES = frozenset({-1002, -1022, -2014, -2015})
UNAVAILABLE_CODES = frozenset({-1001, -1008})
UNKNOWN_CODES = frozenset({-1000, -1006, -1007})
RATE_LIMIT_CODES = frozenset({-1003, -1015})
