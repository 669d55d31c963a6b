"""Binance's error bodies.

``BinanceError`` is the only exception the request handlers raise on purpose; the app turns it
into ``{"code": .., "msg": ..}`` with the matching HTTP status. Anything else is a bug and
becomes HTTP 500 -1000.
"""

from __future__ import annotations


class BinanceError(Exception):
    """A rejection exactly as Binance would send it."""

    def __init__(self, code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = headers or {}


def err(code: int, msg: str, status: int = 400) -> BinanceError:
    return BinanceError(code, msg, status)


MSG_UNKNOWN = "An unknown error occured while processing the request."
MSG_INTERNAL = "Internal error; unable to process your request. Please try again."
MSG_UNKNOWN_503 = "Unknown error, please check your request or try again later."
MSG_TIMEOUT = "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
MSG_TS_WINDOW = "Timestamp for this request is outside of the recvWindow."
MSG_TS_AHEAD = "Timestamp for this request was 1000ms ahead of the server's time."
MSG_ME_WINDOW = "Timestamp for this request is outside of the ME recvWindow."
MSG_BAD_SIG = "Signature for this request is not valid."
MSG_KEY_FORMAT = "API-key format invalid."
MSG_KEY_INVALID = "Invalid API-key, IP, or permissions for action."
MSG_NO_ORDER = "Order does not exist."
MSG_UNKNOWN_ORDER = "Unknown order sent."
MSG_ALGO_SWITCH = "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead."


def missing(name: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def bad_value(name: str) -> BinanceError:
    return BinanceError(-1130, f"Data sent for parameter '{name}' is not valid.")


def illegal_chars(name: str, legal: str) -> BinanceError:
    return BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


def invalid_symbol() -> BinanceError:
    return BinanceError(-1121, "Invalid symbol.")


MSG_NO_LISTEN_KEY = "This listenKey does not exist. Please use POST /fapi/v1/listenKey to recreate listenKey"
