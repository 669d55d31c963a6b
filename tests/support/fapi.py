"""Signed calls straight to the paper exchange, as another client of the same account would make
(to set up a resting LIMIT order, switch position mode, and so on). Independent of the worker's client."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlencode

import httpx


def fapi(url: str, key: str, secret: str, method: str, path: str, **params: Any) -> Any:
    query = urlencode({**{k: str(v) for k, v in params.items()}, "timestamp": int(time.time() * 1000)})
    signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    response = httpx.request(
        method, f"{url}{path}?{query}&signature={signature}", headers={"X-MBX-APIKEY": key}, timeout=10
    )
    return response.json()
