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

FORBIDDEN = 403
UNSUPPORTED_MEDIA_TYPE = 415
URI_TOO_LONG = 414
METHOD_NOT_ALLOWED = 405

BINANCE_INVALID_SIGNATURE = -1022
BINANCE_TOO_MANY_REQUESTS = -1003
BINANCE_DUPLICATE_PARAMETER = -1101
BINANCE_MANDATORY_PARAMETER = -1102

#: Replies that say nothing final about a command: it may or may not have run, so the caller
#: retries with the same Idempotency-Key, and a gateway does not remember them for that key.
NOT_FINAL = frozenset({CONFLICT, RATE_LIMITED, INTERNAL, UNAVAILABLE, TIMEOUT})


def is_final(code: int, data: object = None) -> bool:
    """Whether a reply says what became of the command. A 500 that carries `data` is final: it is a
    protection failure described in full (what filled, what was unwound), not an unexpected error."""
    return code not in NOT_FINAL or (code == INTERNAL and data is not None)


_AIQT_CODES = {
    OK,
    BAD_REQUEST,
    UNAUTHORIZED,
    FORBIDDEN,
    NOT_FOUND,
    METHOD_NOT_ALLOWED,
    CONFLICT,
    URI_TOO_LONG,
    UNSUPPORTED_MEDIA_TYPE,
    RATE_LIMITED,
    INTERNAL,
    UNAVAILABLE,
    TIMEOUT,
}


def http_status(code: int) -> int:
    """HTTP status for an envelope code (design.md, "Errors")."""
    if code in _AIQT_CODES:
        return code
    if code == BINANCE_INVALID_SIGNATURE:
        return 401
    if code == BINANCE_DUPLICATE_PARAMETER:
        return 400
    if code == BINANCE_TOO_MANY_REQUESTS:
        return 429
    if code < 0:
        return 400  # a Binance rejection, passed through
    return 500
