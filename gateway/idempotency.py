"""Idempotency-Key handling in one gateway process.

A retried request with the same key (per API key) becomes the same command id; a write sent without
a key takes one from its signature, so replaying it verbatim is a retry too, so the worker finds
its orders at the exchange instead of placing new ones; here we additionally answer a retry of a
finished command from memory, and let a concurrent duplicate wait for the first one's reply.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def command_id(api_key: str, idempotency_key: str) -> str:
    return hashlib.sha256(f"{api_key}\x1f{idempotency_key}".encode()).hexdigest()[:32]


#: Keys derived from a request's signature start with this (a client may send one back to learn an outcome).
SIGNATURE_PREFIX = "sig-"


def signature_key(signature: str) -> str:
    """The Idempotency-Key of a write sent without one: taken from its signature, so a verbatim replay
    of a signed request (valid for its recvWindow) is the same command, on every gateway."""
    return f"{SIGNATURE_PREFIX}{signature[:40]}"


@dataclass(frozen=True)
class Stored:
    status: int
    body: bytes
    fingerprint: str
    headers: dict[str, str]


class IdempotencyCache:
    def __init__(self, ttl: float, max_entries: int) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._done: OrderedDict[str, tuple[float, Stored]] = OrderedDict()
        self._running: dict[str, asyncio.Future[Stored]] = {}

    def get(self, cid: str) -> Stored | None:
        item = self._done.get(cid)
        if item is None:
            return None
        if time.monotonic() - item[0] > self._ttl:
            del self._done[cid]
            return None
        return item[1]

    async def run(
        self, cid: str, fingerprint: str, call: Callable[[], Awaitable[Stored]], keep: Callable[[Stored], bool]
    ) -> Stored:
        """Run `call` once per command id at a time; remember results `keep` accepts."""
        running = self._running.get(cid)
        if running is not None:
            return await asyncio.shield(running)
        fut: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._running[cid] = fut
        try:
            result = await call()
            if keep(result):
                self._done[cid] = (time.monotonic(), result)
                while len(self._done) > self._max:
                    self._done.popitem(last=False)
            fut.set_result(result)
            return result
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: a lone caller is not an error
            raise
        finally:
            del self._running[cid]
