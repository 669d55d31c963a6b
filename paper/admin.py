"""The ``/_paper/`` test controls: accounts, pinned marks, the market clock, armed faults, reset.

Never on Binance. Guarded by the ``X-Paper-Admin-Token`` header (``/_paper/health`` is open).
Routes are a table of (method, path pattern) → handler; ``{name}`` segments are captured.
Changes are flushed to SQLite before the answer, and the WebSocket events they caused are written
to the clients before it, so a test that reads the database or its socket afterwards sees them.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import orjson

from .faults import KINDS as FAULT_KINDS
from .faults import LOST_AS
from .market import now_ms, quantize
from .models import fmt
from .symbols import SYMBOLS, SymbolSpec

if TYPE_CHECKING:
    from .app import PaperApp

Body = dict[str, Any]
AdminHandler = Callable[["PaperApp", Body, dict[str, str]], object]


class AdminError(Exception):
    """An admin request refused with an HTTP status."""

    def __init__(self, status: int, msg: str):
        super().__init__(msg)
        self.status = status
        self.msg = msg


def symbol_spec(data: Body) -> SymbolSpec:
    spec = SYMBOLS.get(str(data.get("symbol", "")).upper())
    if spec is None:
        raise AdminError(400, "unknown symbol")
    return spec


# ---------------------------------------------------------------------- accounts -------------
def create_account(app: PaperApp, data: Body, path: dict[str, str]) -> object:
    engine = app.engine
    key = data.get("apiKey") or engine.new_key()
    secret = data.get("apiSecret") or engine.new_key()
    if key in engine.accounts:
        raise AdminError(409, "apiKey already exists")
    balance = data.get("balance")
    acc = engine.create_account(
        str(key),
        str(secret),
        str(data.get("name") or f"acct-{len(engine.accounts) + 1}"),
        None if balance is None else Decimal(str(balance)),
    )
    app.store.flush()
    return {"name": acc.name, "apiKey": acc.api_key, "apiSecret": acc.api_secret, "balance": fmt(acc.balance, 8)}


def list_accounts(app: PaperApp, data: Body, path: dict[str, str]) -> object:
    return [{"name": a.name, "apiKey": a.api_key, "balance": fmt(a.balance, 8)} for a in app.engine.accounts.values()]


def account_state(app: PaperApp, data: Body, path: dict[str, str]) -> object:
    held = app.engine.accounts.get(path["key"])
    if held is None:
        raise AdminError(404, "unknown apiKey")
    return app.engine.state(held)


# ---------------------------------------------------------------------- marks ----------------
def pin_mark(app: PaperApp, data: Body, path: dict[str, str]) -> object:
    spec = symbol_spec(data)
    price = Decimal(str(data["price"]))
    if price <= 0:
        raise AdminError(400, "price must be > 0")
    return app.pin_mark(spec.symbol, quantize(price, spec.tick))


def step_mark(app: PaperApp, data: Body, path: dict[str, str]) -> object:
    spec = symbol_spec(data)
    pct = Decimal(str(data["pct"]))
    new = quantize(app.market.price(spec.symbol) * (1 + pct / 100), spec.tick)
    if new <= 0:
        raise AdminError(400, "resulting price must be > 0")
    return app.pin_mark(spec.symbol, new)


def unpin_mark(app: PaperApp, data: Body, path: dict[str, str]) -> object:
    spec = symbol_spec({"symbol": path["symbol"]})
    app.market.pins.pop(spec.symbol, None)
    return {"symbol": spec.symbol, "markPrice": str(app.market.price(spec.symbol))}


def list_marks(app: PaperApp, data: Body, path: dict[str, str]) -> object:
    market = app.market
    return {s: {"markPrice": str(market.price(s)), "pinned": s in market.pins} for s in SYMBOLS}


# ---------------------------------------------------------------------- clock ----------------
def advance_clock(app: PaperApp, data: Body, path: dict[str, str]) -> object:
    ms = int(data["ms"])
    if ms < 0:
        raise AdminError(400, "ms must be >= 0")
    settled, triggered, liquidated = app.engine.advance_clock(ms)
    app.store.flush()
    return {
        "marketTime": app.market.now(),
        "wallTime": now_ms(),
        "fundingSettled": settled,
        "triggered": triggered,
        "liquidated": liquidated,
    }


def clock(app: PaperApp, data: Body, path: dict[str, str]) -> object:
    return {"marketTime": app.market.now(), "wallTime": now_ms()}


# ---------------------------------------------------------------------- faults ---------------
def arm_fault(app: PaperApp, data: Body, path: dict[str, str]) -> object:
    kind = data.get("kind")
    if kind not in FAULT_KINDS:
        raise AdminError(400, f"kind must be one of {', '.join(FAULT_KINDS)}")
    lost = data.get("lostAs")
    if lost is not None and str(lost) not in LOST_AS:
        raise AdminError(400, "lostAs must be 503, -1007 or timeout")
    fault = app.faults.arm(
        kind,
        count=int(data.get("count", 1)),
        method=data.get("method"),
        path=data.get("path"),
        api_key=data.get("apiKey"),
        status=None if data.get("status") is None else int(data["status"]),
        delay_ms=None if data.get("delayMs") is None else int(data["delayMs"]),
        lost_as=None if lost is None else str(lost),
    )
    return fault.json()


def list_faults(app: PaperApp, data: Body, path: dict[str, str]) -> object:
    return [f.json() for f in app.faults.armed]


def clear_faults(app: PaperApp, data: Body, path: dict[str, str]) -> object:
    app.faults.clear()
    return {"status": "ok"}


# ---------------------------------------------------------------------- whole exchange -------
def reset(app: PaperApp, data: Body, path: dict[str, str]) -> object:
    app.engine.reset()
    app.faults.clear()
    app.limiter.reset()
    app.store.flush()
    return {"status": "ok"}


def flush(app: PaperApp, data: Body, path: dict[str, str]) -> object:
    return {"rows": app.store.flush()}


# ---------------------------------------------------------------------- streams --------------
def _known_account(app: PaperApp, data: Body) -> str:
    key = str(data.get("apiKey", ""))
    if key not in app.engine.accounts:
        raise AdminError(404, "unknown apiKey")
    return key


def drop_connections(app: PaperApp, data: Body, path: dict[str, str]) -> object:
    """Close every WebSocket connection, or those carrying one account's user data."""
    api_key = _known_account(app, data) if data.get("apiKey") is not None else None
    return {"dropped": app.streams.drop(api_key)}


def stall_stream(app: PaperApp, data: Body, path: dict[str, str]) -> object:
    """Withhold a stream's frames for N seconds (its subscribers see a gap, as after a hiccup).
    ``apiKey`` instead of ``stream`` stalls that account's user data (its listenKey)."""
    seconds = float(data["seconds"])
    if seconds < 0:
        raise AdminError(400, "seconds must be >= 0")
    if data.get("apiKey") is not None:
        key = app.streams.listen_keys.active_key(_known_account(app, data))
        if key is None:
            raise AdminError(409, "the account has no listenKey")
        name = key
    else:
        name = str(data["stream"])
    app.streams.hub.stall(name, seconds)
    return {"stream": name, "seconds": seconds}


def expire_listen_key(app: PaperApp, data: Body, path: dict[str, str]) -> object:
    """Let an account's listenKey lapse now (its subscribers get listenKeyExpired)."""
    key = app.streams.expire_now(_known_account(app, data))
    if key is None:
        raise AdminError(409, "the account has no live listenKey")
    return {"listenKey": key, "expired": True}


def limits(app: PaperApp, data: Body, path: dict[str, str]) -> object:
    """The limiter's counters, so that tests can prove no ban (429/418 answers since start)."""
    names = {key: account.name for key, account in app.engine.accounts.items()}
    return app.limiter.snapshot(now_ms(), names)


def list_connections(app: PaperApp, data: Body, path: dict[str, str]) -> object:
    return app.streams.connections()


ADMIN_ROUTES: list[tuple[str, tuple[str, ...], AdminHandler]] = [
    ("POST", ("accounts",), create_account),
    ("GET", ("accounts",), list_accounts),
    ("GET", ("accounts", "{key}", "state"), account_state),
    ("POST", ("mark",), pin_mark),
    ("POST", ("mark", "step"), step_mark),
    ("DELETE", ("mark", "{symbol}"), unpin_mark),
    ("GET", ("mark",), list_marks),
    ("POST", ("clock", "advance"), advance_clock),
    ("GET", ("clock",), clock),
    ("POST", ("faults",), arm_fault),
    ("GET", ("faults",), list_faults),
    ("DELETE", ("faults",), clear_faults),
    ("POST", ("reset",), reset),
    ("POST", ("flush",), flush),
    ("POST", ("ws", "drop"), drop_connections),
    ("POST", ("ws", "stall"), stall_stream),
    ("GET", ("ws",), list_connections),
    ("POST", ("listenKey", "expire"), expire_listen_key),
    ("GET", ("limits",), limits),
]


def match(method: str, parts: list[str]) -> tuple[AdminHandler, dict[str, str]] | None:
    """The handler of (method, path segments after /_paper/) and the captured segments."""
    for route_method, pattern, handler in ADMIN_ROUTES:
        if route_method != method or len(pattern) != len(parts):
            continue
        captured: dict[str, str] = {}
        for want, got in zip(pattern, parts, strict=True):
            if want.startswith("{"):
                captured[want[1:-1]] = got
            elif want != got:
                break
        else:
            return handler, captured
    return None


async def handle(app: PaperApp, method: str, path: str, scope: dict[str, Any], body: bytes) -> tuple[int, object]:
    """(HTTP status, JSON payload) of one /_paper/ request."""
    if path == "/_paper/health":
        return 200, {"status": "ok"}
    token = b""
    for name, value in scope["headers"]:
        if name == b"x-paper-admin-token":
            token = value
    if not hmac.compare_digest(token, app.admin_token.encode()):
        return 401, {"code": 401, "msg": "Missing or invalid X-Paper-Admin-Token."}
    try:
        data = orjson.loads(body) if body else {}
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object")
        found = match(method, path.split("/")[2:])
        if found is None:
            raise AdminError(404, f"no such control: {method} {path}")
        handler, captured = found
        result = handler(app, data, captured)
        # the stream events of this call are queued; let them reach the clients before answering,
        # so a test that reads its socket after the call finds them there
        await app.streams.hub.drain()
        return 200, result
    except AdminError as e:
        return e.status, {"code": e.status, "msg": e.msg}
    except (ValueError, TypeError, KeyError, InvalidOperation, orjson.JSONDecodeError) as e:
        return 400, {"code": 400, "msg": f"Bad request: {e}"}
