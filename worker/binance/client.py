"""A signed Binance USDⓈ-M futures (fapi) client on httpx.

Every parameter goes in the query string (as Binance's official SDK does), built and signed here,
byte for byte what is sent. Reads and cancels may be retried (`call`); order placement must use
`send` once and reconcile by client id on an unknown outcome (worker.orders), never a blind re-POST.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_after_delay

from worker import metrics
from worker.binance.clock import ServerClock
from worker.binance.errors import (
    AUTH_CODES,
    NOT_FOUND_CODES,
    RATE_LIMIT_CODES,
    UNAVAILABLE_CODES,
    UNKNOWN_CODES,
    ClockSkew,
    ExchangeAuthError,
    ExchangeError,
    ExchangeNotFound,
    ExchangeRateLimited,
    ExchangeRejected,
    ExchangeUnavailable,
    OrderStatusUnknown,
)
from worker.binance.retry import RetryAfterWait, waits_out

Params = Mapping[str, Any]
Sleep = Callable[[float], Awaitable[None]]


class Gate(Protocol):
    """What stands in front of every request (worker.limits.AccountGate): `admit` before it is sent
    (or raise ExchangeRateLimited: nothing sent), `settle` with the exchange's answer."""

    async def admit(self, method: str, path: str, params: Params | None) -> Any: ...

    def preflight(self, calls: Sequence[tuple[str, str, Params | None]]) -> None: ...

    def settle(
        self,
        ticket: Any,
        status: int | None,
        headers: Mapping[str, str] | None,
        body: str = "",
        code: int | None = None,
    ) -> None: ...


def _wire(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def encode(params: Params | None) -> str:
    if not params:
        return ""
    return urlencode([(k, _wire(v)) for k, v in params.items() if v is not None])


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _decode(content: bytes) -> Any:
    # Binance writes money as strings, but some numbers (leverage brackets) are JSON numbers:
    # read those as Decimal, never float.
    return json.loads(content, parse_float=Decimal) if content else None


class FapiClient:
    """One account's signed access to a fapi server (Binance, its demo, or the paper exchange)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str,
        api_secret: SecretStr,
        clock: ServerClock,
        recv_window: int = 5000,
        retry_attempts: int = 4,
        retry_budget: float = 8.0,
        sleep: Sleep = asyncio.sleep,
        gate: Gate | None = None,
    ) -> None:
        self._http = http
        #: The fleet-wide governor's admission for this account (None: ungoverned, as in unit tests).
        self.gate = gate
        self._base = base_url.rstrip("/")
        self._key = api_key
        self._secret = api_secret
        self.clock = clock
        self.recv_window = recv_window
        self._attempts = retry_attempts
        self._budget = retry_budget
        #: Every wait of this account's exchange access (retries, recvWindow waits) goes through
        #: here, so that a unit test can run them on a fake clock.
        self.sleep = sleep

    async def sync_time(self) -> None:
        sent = time.time() * 1000
        body = await self.send("GET", "/fapi/v1/time", signed=False)
        received = time.time() * 1000
        self.clock.update(int(body["serverTime"]), sent, received)
        metrics.CLOCK_OFFSET.set(self.clock.offset_ms)

    async def send(self, method: str, path: str, params: Params | None = None, *, signed: bool = True) -> Any:
        """One request, no retry. Returns the decoded JSON or raises a classified ExchangeError."""
        query = encode(params)
        headers = {"X-MBX-APIKEY": self._key}
        if signed:
            stamp = f"timestamp={self.clock.now_ms()}&recvWindow={self.recv_window}"
            query = f"{query}&{stamp}" if query else stamp
            query = f"{query}&signature={sign(self._secret.get_secret_value(), query)}"
        url = f"{self._base}{path}?{query}" if query else f"{self._base}{path}"
        gate = self.gate
        ticket = await gate.admit(method, path, params) if gate is not None else None
        started = time.perf_counter()
        try:
            response = await self._http.request(method, url, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            metrics.EXCHANGE_ERRORS.labels(code="connect").inc()
            if gate is not None:
                gate.settle(ticket, None, None)
            raise ExchangeUnavailable(f"cannot reach the exchange: {exc!r}") from exc
        except httpx.TransportError as exc:
            # Sent, or partly sent: the exchange may have executed it.
            metrics.EXCHANGE_ERRORS.labels(code="timeout").inc()
            if gate is not None:
                gate.settle(ticket, None, None)
            raise OrderStatusUnknown(f"no response from the exchange: {exc!r}") from exc
        finally:
            metrics.EXCHANGE_SECONDS.labels(path=path).observe(time.perf_counter() - started)
        weight = response.headers.get("x-mbx-used-weight-1m")
        if weight is not None and weight.isdigit():
            metrics.WEIGHT_USED.set(int(weight))
        if response.status_code == 200:
            if gate is not None:
                gate.settle(ticket, 200, response.headers)
            return _decode(response.content)
        error = self._classify(response)
        if gate is not None:
            gate.settle(ticket, response.status_code, response.headers, response.text[:300], error.code)
        raise error

    @staticmethod
    def _classify(response: httpx.Response) -> ExchangeError:
        status = response.status_code
        code: int | None = None
        msg = response.text[:300] or f"HTTP {status}"
        try:
            body = _decode(response.content)
            if isinstance(body, dict):
                raw_code = body.get("code")
                code = int(raw_code) if raw_code is not None else None
                msg = str(body.get("msg", msg))
        except (ValueError, TypeError):
            pass
        metrics.EXCHANGE_ERRORS.labels(code=str(code if code is not None else status)).inc()
        if status in (418, 429) or code in RATE_LIMIT_CODES:
            retry_after = response.headers.get("retry-after")
            return ExchangeRateLimited(
                msg,
                status=status,
                code=code,
                retry_after=float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None,
            )
        if code == -1021:
            return ClockSkew(msg, status=status, code=code)
        if code in AUTH_CODES or status == 401:
            return ExchangeAuthError(msg, status=status, code=code)
        if code in NOT_FOUND_CODES:
            return ExchangeNotFound(msg, status=status, code=code)
        if code in UNAVAILABLE_CODES or (status == 503 and "Service Unavailable" in msg):
            return ExchangeUnavailable(msg, status=status, code=code)
        if status >= 500 or status == 408 or code in UNKNOWN_CODES:
            return OrderStatusUnknown(msg, status=status, code=code)
        return ExchangeRejected(msg, status=status, code=code)

    def preflight(self, calls: Sequence[tuple[str, str, Params | None]]) -> None:
        """Before a read made of several requests: raise ExchangeRateLimited (nothing sent) unless
        they all fit in the budget now."""
        if self.gate is not None:
            self.gate.preflight(calls)

    async def call(self, method: str, path: str, params: Params | None = None, *, signed: bool = True) -> Any:
        """A request that is safe to repeat (reads, cancels): retried with backoff on failures that
        may be transient, re-signed each attempt, honouring Retry-After and resyncing the clock on -1021."""
        retrying = AsyncRetrying(
            # A refusal by the governor (`not_sent`) already waited as long as its priority allows:
            # it goes back to the caller as AIQT's 429.
            retry=retry_if_exception(
                lambda exc: (
                    isinstance(exc, ExchangeUnavailable | OrderStatusUnknown)
                    and waits_out(exc)
                    and not getattr(exc, "not_sent", False)
                )
            ),
            stop=stop_after_attempt(self._attempts) | stop_after_delay(self._budget),
            wait=RetryAfterWait(),
            reraise=True,
            sleep=self.sleep,
            before_sleep=lambda state: metrics.RETRIES.labels(path=path).inc(),
        )
        async for attempt in retrying:
            with attempt:
                try:
                    return await self.send(method, path, params, signed=signed)
                except ClockSkew:
                    await self.sync_time()
                    raise
        raise AssertionError("unreachable")  # pragma: no cover
