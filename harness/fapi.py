"""Binance-style signed requests to the paper exchange, as another client of the same account would
make them (to set up a resting LIMIT order, switch position mode, load the exchange in a benchmark).

Binance's scheme: HMAC-SHA256 of the query string, hex, appended as `signature`. Independent of the
worker's client (`worker/binance/client.py`) and of the exchange's own check (`paper/auth.py`), so a
bug in either is not copied here. This is the harness's one copy of the scheme.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlencode

import httpx


def signed_query(
    secret: str, params: dict[str, Any], *, timestamp: int | None = None, recv_window: int | None = None
) -> str:
    """`params` (+ recvWindow, timestamp) url-encoded and signed: `…&timestamp=…&signature=…`."""
    fields = {k: str(v) for k, v in params.items()}
    if recv_window is not None:
        fields["recvWindow"] = str(recv_window)
    fields["timestamp"] = str(timestamp if timestamp is not None else int(time.time() * 1000))
    query = urlencode(fields)
    signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={signature}"


def fapi(url: str, key: str, secret: str, method: str, path: str, **params: Any) -> Any:
    """One signed call; the decoded JSON body, whatever the status."""
    query = signed_query(secret, params)
    response = httpx.request(method, f"{url}{path}?{query}", headers={"X-MBX-APIKEY": key}, timeout=10)
    return response.json()
