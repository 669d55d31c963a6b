"""Binance-style request signing, so existing Binance signing code works against AIQT.

Header `X-API-KEY`; query `timestamp` (ms), optional `recvWindow` (default 5000, max 60000) and
`signature` = hex HMAC-SHA256(secret, payload), where payload is the query string exactly as sent
without its `signature` parameter, followed by the raw request body.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from gateway.settings import ClientKey

DEFAULT_RECV_WINDOW = 5000
MAX_RECV_WINDOW = 60000


@dataclass(frozen=True)
class AuthError(Exception):
    status: int
    code: int
    msg: str


INVALID_KEY = AuthError(401, 401, "Invalid API key")
INVALID_SIGNATURE = AuthError(401, -1022, "Signature for this request is not valid.")


def signed_payload(raw_query: str, body: bytes) -> tuple[str, str | None]:
    """Split the raw query into (what was signed + body, the signature)."""
    kept, signature = [], None
    for part in raw_query.split("&") if raw_query else []:
        if part.startswith("signature="):
            signature = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept) + body.decode("utf-8", errors="surrogateescape"), signature


class Authenticator:
    def __init__(self, keys: list[ClientKey]) -> None:
        self._keys = {k.key: k for k in keys}

    def verify(self, api_key: str | None, raw_query: str, body: bytes, *, now_ms: int | None = None) -> ClientKey:
        """The caller's key, or AuthError."""
        client = self._keys.get(api_key or "")
        if client is None:
            raise INVALID_KEY
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        payload, signature = signed_payload(raw_query, body)
        if not signature:
            raise AuthError(401, -1022, "Signature for this request is not valid. (signature is missing)")
        expected = hmac.new(
            client.secret.get_secret_value().encode(), payload.encode("utf-8", "surrogateescape"), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise INVALID_SIGNATURE
        stamp, window = params.get("timestamp", ""), params.get("recvWindow", str(DEFAULT_RECV_WINDOW))
        if not stamp.isdigit():
            raise AuthError(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
        if not window.isdigit() or not 0 < int(window) <= MAX_RECV_WINDOW:
            raise AuthError(400, 400, f"recvWindow: must be an integer from 1 to {MAX_RECV_WINDOW}")
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        ts = int(stamp)
        if ts >= now + 1000:
            raise AuthError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - ts > int(window):
            raise AuthError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return client
