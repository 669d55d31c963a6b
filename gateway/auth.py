"""Request authentication: an API key, a timestamp inside the recvWindow, and a signature over the
whole request (method, path, query and body; see `schemas.signing`).

Header `X-API-KEY`; query `timestamp` (ms) and optional `recvWindow` (default 5000, max 60000), both
ASCII digits; `signature` last. A request signed the way AIQT 0.1 signed (query and body only) is
refused with a message that says what changed, so an old client fails loudly rather than mysteriously.
"""

from __future__ import annotations

import hmac
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from gateway.requests import Refused
from gateway.settings import ClientKey
from schemas import errors
from schemas.enums import Scope
from schemas.registry import CommandSpec
from schemas.signing import sign, split_signature

DEFAULT_RECV_WINDOW = 5000
MAX_RECV_WINDOW = 60000
_DIGITS = re.compile(r"[0-9]{1,20}")
_HEX = re.compile(r"[0-9a-fA-F]{64}")
DOCS_HINT = "sign METHOD\\nPATH\\nQUERY\\nBODY; see /docs (Auth)"


@dataclass(frozen=True)
class Verified:
    """An authenticated request: who sent it, and its signature (the identity of the exact request)."""

    client: ClientKey
    signature: str


INVALID_KEY = Refused(401, errors.UNAUTHORIZED, "Invalid API key")
INVALID_SIGNATURE = Refused(401, errors.BINANCE_INVALID_SIGNATURE, "Signature for this request is not valid.")


class Authenticator:
    def __init__(self, keys: list[ClientKey]) -> None:
        self._keys = {k.key: k for k in keys}

    def verify(
        self,
        api_key: str | None,
        method: str,
        path: str,
        raw_query: str,
        body: bytes,
        *,
        now_ms: int | None = None,
    ) -> Verified:
        """The verified request, or Refused."""
        client = self._keys.get(api_key or "")
        if client is None:
            raise INVALID_KEY
        query, signature = split_signature(raw_query)
        if not signature:
            raise Refused(401, errors.BINANCE_INVALID_SIGNATURE, f"{INVALID_SIGNATURE.msg} (signature is missing)")
        if not _HEX.fullmatch(signature):
            raise INVALID_SIGNATURE
        secret = client.secret.get_secret_value()
        if not hmac.compare_digest(sign(secret, method, path, query, body), signature.lower()):
            raise _explain(secret, query, body, signature.lower())
        _check_time(
            dict(parse_qsl(query, keep_blank_values=True)), now_ms if now_ms is not None else int(time.time() * 1000)
        )
        return Verified(client, signature.lower())


#: What a key without the scope may not do, for the 403's message.
_MAY_NOT = {
    Scope.READ: "read account data, market data or command status",
    Scope.TRADE: "trade (open, close, cancel or modify orders, or change position settings)",
    Scope.ADMIN: "halt or resume the account (kill switch)",
}


def out_of_scope(spec: CommandSpec, scopes: frozenset[Scope]) -> Refused:
    """HTTP 403 for a request outside the key's scopes, naming what the key may not do."""
    held = ", ".join(sorted(scopes)) or "none"
    return Refused(
        403,
        errors.FORBIDDEN,
        f"This API key may not {_MAY_NOT[spec.scope]}: {spec.route} needs the '{spec.scope}' scope "
        f"(this key has: {held})",
    )


def _explain(secret: str, query: str, body: bytes, signature: str) -> Refused:
    """The refusal for a bad signature, naming the old scheme when the client used it."""
    legacy = hmac.new(secret.encode(), query.encode("latin-1") + body, "sha256").hexdigest()
    if hmac.compare_digest(legacy, signature):
        return Refused(
            401,
            errors.BINANCE_INVALID_SIGNATURE,
            f"{INVALID_SIGNATURE.msg} It covers the query and body only; AIQT signs the whole request: {DOCS_HINT}.",
        )
    return INVALID_SIGNATURE


def replayable_until(raw_query: str) -> int:
    """The last epoch ms at which a verified request can be accepted again, on any gateway: its
    timestamp plus its recvWindow (`_check_time` refuses it after that)."""
    params = dict(parse_qsl(split_signature(raw_query)[0], keep_blank_values=True))
    return int(params["timestamp"]) + int(params.get("recvWindow", str(DEFAULT_RECV_WINDOW)))


def _check_time(params: dict[str, str], now: int) -> None:
    stamp = params.get("timestamp", "")
    window = params.get("recvWindow", str(DEFAULT_RECV_WINDOW))
    if not _DIGITS.fullmatch(stamp):
        raise Refused(
            400,
            errors.BINANCE_MANDATORY_PARAMETER,
            "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
        )
    if not _DIGITS.fullmatch(window) or not 0 < int(window) <= MAX_RECV_WINDOW:
        raise Refused(400, errors.BAD_REQUEST, f"recvWindow: must be an integer from 1 to {MAX_RECV_WINDOW}")
    if int(stamp) >= now + 1000:
        raise Refused(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if now - int(stamp) > int(window):
        raise Refused(400, -1021, "Timestamp for this request is outside of the recvWindow.")
