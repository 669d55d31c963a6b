"""`FapiClient._classify`: HTTP status × Binance code → the error class that says what to do next."""

from __future__ import annotations

import httpx
import pytest

from worker.binance.client import FapiClient
from worker.binance.errors import (
    ClockSkew,
    ExchangeAuthError,
    ExchangeError,
    ExchangeNotFound,
    ExchangeRateLimited,
    ExchangeRejected,
    ExchangeUnavailable,
    OrderStatusUnknown,
)

Case = tuple[int, int | None, str, type[ExchangeError]]

CASES: list[Case] = [
    # rate limits: wait (418 is a ban; see test_retry for "not retried")
    (429, -1003, "Too many requests.", ExchangeRateLimited),
    (418, -1003, "Way too many requests; IP banned.", ExchangeRateLimited),
    (400, -1015, "Too many new orders.", ExchangeRateLimited),
    (429, None, "", ExchangeRateLimited),
    # clock: resync, then retry
    (400, -1021, "Timestamp for this request is outside of the recvWindow.", ClockSkew),
    # our credentials: don't retry
    (401, -2015, "Invalid API-key, IP, or permissions for action.", ExchangeAuthError),
    (400, -2014, "API-key format invalid.", ExchangeAuthError),
    (400, -1022, "Signature for this request is not valid.", ExchangeAuthError),
    (400, -1002, "You are not authorized to execute this request.", ExchangeAuthError),
    (401, None, "", ExchangeAuthError),
    (401, -2011, "status 401 wins over a not-found code", ExchangeAuthError),
    # no such order
    (400, -2011, "Unknown order sent.", ExchangeNotFound),
    (400, -2013, "Order does not exist.", ExchangeNotFound),
    (400, -20124, "Algo order does not exist.", ExchangeNotFound),
    # certainly not executed: retry after a pause
    (503, None, "Service Unavailable.", ExchangeUnavailable),
    (400, -1001, "Internal error; unable to process your request. Please try again.", ExchangeUnavailable),
    (400, -1008, "Server is currently overloaded with other requests. Please try again.", ExchangeUnavailable),
    (503, -1008, "overloaded", ExchangeUnavailable),
    # may have executed: reconcile by client id first
    (503, None, "Unknown error, please check your request or try again later.", OrderStatusUnknown),
    (500, None, "", OrderStatusUnknown),
    (502, None, "<html>Bad Gateway</html>", OrderStatusUnknown),
    (504, None, "Gateway Time-out", OrderStatusUnknown),
    (408, None, "", OrderStatusUnknown),
    (400, -1000, "An unknown error occurred while processing the request.", OrderStatusUnknown),
    (400, -1006, "An unexpected response was received from the message bus.", OrderStatusUnknown),
    (400, -1007, "Timeout waiting for response from backend server.", OrderStatusUnknown),
    # a definitive no
    (400, -2019, "Margin is insufficient.", ExchangeRejected),
    (400, -4046, "No need to change margin type.", ExchangeRejected),
    (400, -1121, "Invalid symbol.", ExchangeRejected),
    (404, None, "<html>Not Found</html>", ExchangeRejected),
]


def _response(status: int, code: int | None, msg: str, headers: dict[str, str] | None = None) -> httpx.Response:
    if code is None:
        return httpx.Response(status, text=msg, headers=headers)
    return httpx.Response(status, json={"code": code, "msg": msg}, headers=headers)


@pytest.mark.parametrize(("status", "code", "msg", "cls"), CASES, ids=[f"{c[0]}{c[1] or ''}" for c in CASES])
def test_classify(status: int, code: int | None, msg: str, cls: type[ExchangeError]) -> None:
    exc = FapiClient._classify(_response(status, code, msg))
    assert type(exc) is cls
    assert (exc.status, exc.code) == (status, code)
    assert exc.msg == (msg or f"HTTP {status}")


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0.5", 0.5), ("soon", None), (None, None)],
    ids=["int", "float", "text", "none"],
)
def test_rate_limit_carries_retry_after(header: str | None, expected: float | None) -> None:
    headers = {"Retry-After": header} if header is not None else None
    exc = FapiClient._classify(_response(429, -1003, "Too many requests.", headers))
    assert isinstance(exc, ExchangeRateLimited)
    assert exc.retry_after == expected


def test_a_long_error_page_is_cut() -> None:
    exc = FapiClient._classify(httpx.Response(502, text="x" * 1000))
    assert type(exc) is OrderStatusUnknown
    assert exc.msg == "x" * 300


def test_the_tree_says_whether_a_retry_can_help() -> None:
    assert issubclass(ExchangeRateLimited, ExchangeUnavailable) and issubclass(ClockSkew, ExchangeUnavailable)
    assert issubclass(ExchangeNotFound, ExchangeRejected) and issubclass(ExchangeAuthError, ExchangeRejected)
    assert not issubclass(OrderStatusUnknown, ExchangeUnavailable | ExchangeRejected)
