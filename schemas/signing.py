"""How a request to AIQT's REST API is signed: one definition for the gateway and every client.

    signature = hex HMAC-SHA256(secret, METHOD + "\\n" + PATH + "\\n" + QUERY + "\\n" + BODY)

PATH is the URL path as sent, QUERY the query string as sent without its `signature` parameter, BODY
the raw body (empty for GET and DELETE). Binance signs the query and body only, which is enough there
because every parameter is in them; AIQT puts order ids in the path (`DELETE /api/order/{orderId}`),
so a signature that left out the method and path could be replayed against another order.
"""

from __future__ import annotations

import hashlib
import hmac


def string_to_sign(method: str, path: str, query: str, body: bytes) -> bytes:
    return b"\n".join((method.upper().encode("ascii"), path.encode("latin-1"), query.encode("latin-1"), body))


def sign(secret: str, method: str, path: str, query: str, body: bytes = b"") -> str:
    """The hex signature of a request; `query` must not contain `signature`."""
    return hmac.new(secret.encode(), string_to_sign(method, path, query, body), hashlib.sha256).hexdigest()


def split_signature(raw_query: str) -> tuple[str, str | None]:
    """(the query string as signed, the signature), from the raw query string as received."""
    kept, signature = [], None
    for part in raw_query.split("&") if raw_query else []:
        if part.startswith("signature="):
            signature = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), signature
