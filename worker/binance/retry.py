"""The one retry policy's wait: Retry-After when the exchange gives one, else exponential + jitter."""

from __future__ import annotations

from tenacity import RetryCallState
from tenacity.wait import wait_base, wait_exponential, wait_random

from worker.binance.errors import ExchangeRateLimited

#: Never sleep longer than this in one go; the command's deadline is usually close.
MAX_WAIT = 3.0


def waits_out(exc: BaseException) -> bool:
    """Whether a failure may be waited out here. An IP ban (418), or a Retry-After longer than we would
    sleep, goes back to the caller with its Retry-After: asking again inside a ban only extends it."""
    if not isinstance(exc, ExchangeRateLimited):
        return True
    return exc.status != 418 and (exc.retry_after or 0) <= MAX_WAIT


class RetryAfterWait(wait_base):
    def __init__(self) -> None:
        self._fallback = wait_exponential(multiplier=0.1, min=0.1, max=2.0) + wait_random(0, 0.1)

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > 0:
            return min(float(retry_after), MAX_WAIT)
        return min(self._fallback(retry_state), MAX_WAIT)
