"""Request parameters and Binance's HMAC-SHA256 request signing, verified on our side.

Binance signs ``totalParams`` = the query string followed directly by the request body (no
separator), each exactly as sent, without the ``signature`` parameter itself.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl

from .errors import MSG_BAD_SIG, MSG_TS_AHEAD, MSG_TS_WINDOW, BinanceError, illegal_chars, missing
from .params import INT_RANGE


def split_signature(raw: bytes) -> tuple[bytes, bytes | None]:
    """Remove ``signature=…`` from a urlencoded string; return (rest, signature or None)."""
    idx = raw.rfind(b"signature=")
    while idx > 0 and raw[idx - 1] != 0x26:  # '&'
        idx = raw.rfind(b"signature=", 0, idx)
    if idx < 0:
        return raw, None
    end = raw.find(b"&", idx)
    sig = raw[idx + 10 :] if end < 0 else raw[idx + 10 : end]
    before = raw[:idx]
    after = b"" if end < 0 else raw[end + 1 :]
    if before.endswith(b"&"):
        before = before[:-1]
    if before and after:
        return before + b"&" + after, sig
    return before or after, sig


def signature_payload(query: bytes, body: bytes) -> tuple[bytes, bytes | None]:
    """The bytes Binance signs, and the signature the client sent (query wins)."""
    q, qsig = split_signature(query)
    b, bsig = split_signature(body)
    return q + b, qsig if qsig is not None else bsig


def sign(secret: bytes, payload: bytes) -> str:
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


def verify(secret: bytes, payload: bytes, signature: bytes) -> bool:
    """Constant-time check of a hex signature (Binance: not case sensitive)."""
    expected = hmac.new(secret, payload, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(expected, signature.lower())


def _parse_into(out: dict[str, str], raw: bytes) -> None:
    text = raw.decode("latin-1")
    if "%" in text or "+" in text:
        for k, v in parse_qsl(text, keep_blank_values=True):
            out[k] = v
        return
    for pair in text.split("&"):  # the common case (plain ASCII values): no unquoting needed
        if pair:
            k, _, v = pair.partition("=")
            out[k] = v


def parse_params(query: bytes, body: bytes, form: bool) -> dict[str, str]:
    """Parameters from the query string and the form body; the query value wins."""
    out: dict[str, str] = {}
    if body and form:
        _parse_into(out, body)
    if query:
        _parse_into(out, query)
    return out


def check_signature(secret: bytes, query: bytes, body: bytes) -> None:
    payload, sig = signature_payload(query, body)
    if not sig:
        raise missing("signature")
    if not verify(secret, payload, sig):
        raise BinanceError(-1022, MSG_BAD_SIG)


def check_timestamp(params: dict[str, str], server_ms: int, code: int = -1021, msg: str | None = None) -> None:
    """Binance's rule: timestamp < serverTime + 1000 and serverTime - timestamp <= recvWindow."""
    ts_s = params.get("timestamp")
    if not ts_s:
        raise missing("timestamp")
    if not ts_s.isdigit():
        raise illegal_chars("timestamp", INT_RANGE)
    rw_s = params.get("recvWindow") or "5000"
    if not rw_s.isdigit():
        raise illegal_chars("recvWindow", INT_RANGE)
    ts = int(ts_s)
    if ts >= server_ms + 1000:
        raise BinanceError(code, msg or MSG_TS_AHEAD)
    if server_ms - ts > int(rw_s):
        raise BinanceError(code, msg or MSG_TS_WINDOW)
