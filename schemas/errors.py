"""Reply codes of the `{code, msg, data}` envelope and the HTTP status each maps to.

Positive codes are AIQT's own (they mirror HTTP); negative codes are Binance's, passed through
unchanged from the exchange (or from the paper exchange, which copies Binance).
"""

from __future__ import annotations

OK = 200
BAD_REQUEST = 400
UNAUTHORIZED = 401
NOT_FOUND = 404
CONFLICT = 409
RATE_LIMITED = 429
INTERNAL = 500
UNAVAILABLE = 503
TIMEOUT = 504

BINANCE_INVALID_SIGNATURE = -1022
BINANCE_INVALID_TIMESTAMP = -1021
BINANCE_TOO_MANY_REQUESTS = -1003

_AIQT_CODES = {OK, BAD_REQUEST, UNAUTHORIZED, NOT_FOUND, CONFLICT, RATE_LIMITED, INTERNAL, UNAVAILABLE, TIMEOUT}


def http_status(code: int) -> int:
    """HTTP status for an envelope code (design.md, "Errors")."""
    if code in _AIQT_CODES:
        return code
    if code == BINANCE_INVALID_SIGNATURE:
        return 401
    if code == BINANCE_TOO_MANY_REQUESTS:
        return 429
    if code < 0:
        return 400  # a Binance rejection, passed through
    return 500
