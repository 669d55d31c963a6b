"""Deterministic exchange client ids: the same (account, command id, leg) always gives the same id.

That is what makes a re-run of a command find its own orders at the exchange instead of placing
new ones. Ids fit Binance's rule `^[.A-Z:/a-z0-9_-]{1,36}$`.
"""

from __future__ import annotations

import base64
import hashlib
import re

CLIENT_ID_RE = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")

ENTRY = "M"
STOP_LOSS = "SL"
TAKE_PROFIT = "TP"
CLOSE = "C"
UNWIND = "X"  # closes an entry whose protection failed (policy "close")
HALT = "H"  # closes a position when the kill switch flattens the account (per symbol and side)


def client_order_id(account: str, command_id: str, leg: str) -> str:
    digest = hashlib.sha256(f"{account}\x1f{command_id}".encode()).digest()
    token = base64.urlsafe_b64encode(digest).decode()[:22]
    cid = f"aq-{token}-{leg}"
    assert CLIENT_ID_RE.match(cid), cid
    return cid
