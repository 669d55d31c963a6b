"""listenKeys: the handle of an account's user-data stream.

As on Binance: one active key per account, shared by every client of that account (a POST while
it lives returns the same key and extends it), valid for 60 minutes after the last POST or PUT,
-1125 for a key that does not exist, and ``listenKeyExpired`` pushed to its subscribers when it
lapses (not when it is deleted). Validity runs on the wall clock, not the market clock, so
advancing the market by hours in a test does not end the stream.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import MSG_NO_LISTEN_KEY, err

_ALPHABET = string.ascii_letters + string.digits


@dataclass(slots=True)
class ListenKey:
    key: str
    api_key: str
    expires: float  # time.monotonic()


class ListenKeys:
    """The active listenKey of each account."""

    def __init__(self, validity_s: float, on_expired: Callable[[ListenKey], None]):
        self.validity_s = validity_s
        self.on_expired = on_expired
        self.by_account: dict[str, ListenKey] = {}
        self.by_key: dict[str, ListenKey] = {}

    def start(self, api_key: str) -> str:
        """POST: the account's live key (extended), or a new one."""
        held = self.live(api_key)
        if held is None:
            held = ListenKey(_new_key(), api_key, 0.0)
            self.by_account[api_key] = held
            self.by_key[held.key] = held
        held.expires = time.monotonic() + self.validity_s
        return held.key

    def keepalive(self, api_key: str, key: str | None = None) -> str:
        """PUT: extend the account's live key; -1125 if it has none (or `key` is not it)."""
        held = self.live(api_key)
        if held is None or (key and key != held.key):
            raise err(-1125, MSG_NO_LISTEN_KEY)
        held.expires = time.monotonic() + self.validity_s
        return held.key

    def close(self, api_key: str, key: str | None = None) -> ListenKey | None:
        """DELETE: end the account's key (no listenKeyExpired); -1125 if it has none."""
        held = self.live(api_key)
        if held is None or (key and key != held.key):
            raise err(-1125, MSG_NO_LISTEN_KEY)
        self._forget(held)
        return held

    def live(self, api_key: str) -> ListenKey | None:
        held = self.by_account.get(api_key)
        if held is not None and held.expires <= time.monotonic():
            self.expire(held)
            return None
        return held

    def account_of(self, key: str) -> str | None:
        """The account of a live key (None for an unknown or lapsed one)."""
        held = self.by_key.get(key)
        if held is None:
            return None
        return held.api_key if self.live(held.api_key) is held else None

    def active_key(self, api_key: str) -> str | None:
        held = self.by_account.get(api_key)
        return held.key if held is not None else None

    def expire(self, held: ListenKey) -> None:
        """The key lapsed: forget it and tell its subscribers."""
        self._forget(held)
        self.on_expired(held)

    def expire_due(self) -> int:
        now = time.monotonic()
        due = [held for held in self.by_key.values() if held.expires <= now]
        for held in due:
            self.expire(held)
        return len(due)

    def _forget(self, held: ListenKey) -> None:
        self.by_key.pop(held.key, None)
        if self.by_account.get(held.api_key) is held:
            del self.by_account[held.api_key]

    def reset(self) -> None:
        self.by_account.clear()
        self.by_key.clear()


def _new_key() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(64))
