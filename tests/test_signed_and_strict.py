"""Signed means bound, and input is strict.

A signature covers the method, the path, the query and the body, so a captured request cannot be
re-aimed at another route or order; a signed write replayed verbatim is the same command (its key comes
from its signature) and places nothing new, on any gateway. Every malformed request gets a 4xx envelope
and reaches nothing at the exchange. Each test checks what the paper exchange holds.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from aiqt.client import sign_request
from gateway.app import create_app
from harness.servers import ThreadedUvicorn
from harness.stack import Account, Stack
from schemas import signing

pytestmark = pytest.mark.integration

OPEN = "/api/order/open/market"
ORDER = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.002"}


def _send(
    stack: Stack,
    account: Account,
    method: str,
    path: str,
    *,
    query: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    url: str | None = None,
) -> httpx.Response:
    assert stack.gateway is not None
    sent = {"X-API-KEY": account.api_key, **({"Content-Type": "application/json"} if body else {}), **(headers or {})}
    base = url or stack.gateway.url
    return httpx.request(method, f"{base}{path}?{query}", content=body, headers=sent, timeout=30)


def _envelope(response: httpx.Response, status: int, code: int | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "msg", "data"} and body["msg"], body
    assert body["code"] == (code if code is not None else status), body
    return body


def _orders(stack: Stack, account: Account) -> list[dict[str, Any]]:
    return list(stack.state(account)["orders"])


def _live_algos(stack: Stack, account: Account) -> list[dict[str, Any]]:
    return [a for a in stack.state(account)["algoOrders"] if a["algoStatus"] == "NEW"]


# --- the signature binds method and path ----------------------------------------------------------


def test_a_signed_read_replayed_as_a_cancel_or_modify_is_refused(stack: Stack, account: Account) -> None:
    stack.admin.set_mark("BTCUSDT", "95000")
    with stack.client(account) as c:
        opened = c.open_market("BTCUSDT", "BUY", "0.002", stop_loss="80000")
    assert opened.code == 200, opened.msg
    stop_id = opened.data["stopLoss"]["orderId"]
    resting = stack.limit_order(account, price="92000")

    read = sign_request(account.api_secret, "GET", "/api/market/funding-rate", {"symbol": "BTCUSDT"})
    assert _send(stack, account, "GET", "/api/market/funding-rate", query=read).status_code == 200
    cancel = _send(stack, account, "DELETE", f"/api/order/{stop_id}", query=read)
    _envelope(cancel, 401, -1022)
    patch_body = json.dumps({"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.010", "price": "92500"}).encode()
    modify = sign_request(account.api_secret, "PATCH", f"/api/order/{resting}", None, patch_body)
    assert _send(stack, account, "PATCH", f"/api/order/{resting}", query=modify, body=patch_body).status_code == 200
    other = stack.limit_order(account, price="93000")
    re_aimed = _send(stack, account, "PATCH", f"/api/order/{other}", query=modify, body=patch_body)
    _envelope(re_aimed, 401, -1022)

    assert [a["algoId"] for a in _live_algos(stack, account)] == [stop_id]
    prices = {o["orderId"]: o["price"] for o in _orders(stack, account) if o["status"] == "NEW"}
    assert prices == {resting: "92500.00", other: "93000.00"}  # the re-aimed modify changed nothing


def test_the_old_signature_is_refused_with_a_pointer_to_the_docs(stack: Stack, account: Account) -> None:
    body = json.dumps(ORDER).encode()
    query = f"timestamp={int(time.time() * 1000)}&recvWindow=5000"
    old = __import__("hmac").new(account.api_secret.encode(), query.encode() + body, "sha256").hexdigest()
    reply = _envelope(_send(stack, account, "POST", OPEN, query=f"{query}&signature={old}", body=body), 401, -1022)
    assert "METHOD" in reply["msg"] and "/docs" in reply["msg"], reply
    assert _orders(stack, account) == []


# --- a replay is the same command -----------------------------------------------------------------


def test_a_signed_write_replayed_verbatim_places_one_order_on_any_gateway(stack: Stack, account: Account) -> None:
    stack.admin.set_mark("BTCUSDT", "95000")
    body = json.dumps(ORDER).encode()
    query = sign_request(account.api_secret, "POST", OPEN, None, body, recv_window=60000)
    first = _send(stack, account, "POST", OPEN, query=query, body=body)
    assert first.status_code == 200, first.text
    key = first.headers["idempotency-key"]
    assert key.startswith("sig-")
    again = _send(stack, account, "POST", OPEN, query=query, body=body)
    assert again.json() == first.json() and again.headers["idempotency-key"] == key
    other = ThreadedUvicorn(create_app(stack.gateway_settings())).start()  # an empty idempotency cache
    try:
        elsewhere = _send(stack, account, "POST", OPEN, query=query, body=body, url=other.url)
    finally:
        other.stop()
    assert elsewhere.status_code == 200, elsewhere.text
    assert elsewhere.json()["data"]["market"]["orderId"] == first.json()["data"]["market"]["orderId"]
    assert len(_orders(stack, account)) == 1
    # A new signature (a new timestamp) is a new request: the client meant a second order.
    fresh = _send(
        stack, account, "POST", OPEN, query=sign_request(account.api_secret, "POST", OPEN, None, body), body=body
    )
    assert fresh.status_code == 200 and len(_orders(stack, account)) == 2


# --- strict input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "raw", "field"),
    [
        ("digit separator", b'{"symbol": "BTCUSDT", "side": "BUY", "quantity": "1_0"}', "quantity"),
        ("arabic-indic digits", '{"symbol": "BTCUSDT", "side": "BUY", "quantity": "٠.٠٠٢"}'.encode(), "quantity"),
        ("exponent number", b'{"symbol": "BTCUSDT", "side": "BUY", "quantity": 2e-3}', "quantity"),
        ("exponent string", b'{"symbol": "BTCUSDT", "side": "BUY", "quantity": "2e-3"}', "quantity"),
        ("leading plus", b'{"symbol": "BTCUSDT", "side": "BUY", "quantity": "+0.002"}', "quantity"),
        ("lower-case symbol", b'{"symbol": "btcusdt", "side": "BUY", "quantity": "0.002"}', "symbol"),
        (
            "reduceOnly as 1",
            b'{"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.002", "reduceOnly": 1}',
            "reduceOnly",
        ),
        (
            "stopLoss superscript",
            '{"symbol": "BTCUSDT", "side": "BUY", "quantity": "1", "stopLoss": "²"}'.encode(),
            "stopLoss",
        ),
    ],
)
def test_numbers_are_ascii_decimals(stack: Stack, account: Account, name: str, raw: bytes, field: str) -> None:
    query = sign_request(account.api_secret, "POST", OPEN, None, raw)
    reply = _envelope(_send(stack, account, "POST", OPEN, query=query, body=raw), 400)
    assert reply["msg"].startswith(f"{field}:"), reply
    assert _orders(stack, account) == []


@pytest.mark.parametrize("param", ["timestamp", "recvWindow"])
def test_timestamp_and_recv_window_are_ascii_digits(stack: Stack, account: Account, param: str) -> None:
    path = "/api/market/klines"
    now = str(int(time.time() * 1000))
    values = {"symbol": "BTCUSDT", "timestamp": now, "recvWindow": "5000", param: "%C2%B2"}  # "²", percent-encoded
    query = "&".join(f"{k}={v}" for k, v in values.items())
    query += "&signature=" + signing.sign(account.api_secret, "GET", path, query)
    reply = _envelope(_send(stack, account, "GET", path, query=query), 400, -1102 if param == "timestamp" else 400)
    assert param in reply["msg"], reply


def test_deeply_nested_json_is_400(stack: Stack, account: Account) -> None:
    for depth in (9, 3000):
        raw = b'{"symbol": "BTCUSDT", "side": "BUY", "quantity": ' + b"[" * depth + b"]" * depth + b"}"
        query = sign_request(account.api_secret, "POST", OPEN, None, raw)
        reply = _envelope(_send(stack, account, "POST", OPEN, query=query, body=raw), 400)
        assert reply["msg"].startswith("body:") and "nested" in reply["msg"], reply
    assert _orders(stack, account) == []


def test_duplicate_query_parameters_are_1101(stack: Stack, account: Account) -> None:
    path = "/api/market/klines"
    query = f"symbol=BTCUSDT&symbol=ETHUSDT&timestamp={int(time.time() * 1000)}"
    query += "&signature=" + signing.sign(account.api_secret, "GET", path, query)
    reply = _envelope(_send(stack, account, "GET", path, query=query), 400, -1101)
    assert reply["msg"] == "Duplicate values for a parameter detected."


def test_unknown_query_parameters_are_named(stack: Stack, account: Account) -> None:
    query = sign_request(account.api_secret, "GET", "/api/market/klines", {"symbol": "BTCUSDT", "limt": "5"})
    reply = _envelope(_send(stack, account, "GET", "/api/market/klines", query=query), 400)
    assert reply["msg"].startswith("limt:"), reply
    body = json.dumps(ORDER).encode()
    query = sign_request(account.api_secret, "POST", OPEN, {"quantity": "5"}, body)
    reply = _envelope(_send(stack, account, "POST", OPEN, query=query, body=body), 400)
    assert reply["msg"].startswith("quantity:") and "not a parameter" in reply["msg"], reply
    assert _orders(stack, account) == []


def test_json_bodies_only_as_application_json(stack: Stack, account: Account) -> None:
    body = json.dumps(ORDER).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx"):
        query = sign_request(account.api_secret, "POST", OPEN, None, body)
        response = _send(stack, account, "POST", OPEN, query=query, body=body, headers={"Content-Type": content_type})
        _envelope(response, 415)
    query = sign_request(account.api_secret, "POST", OPEN, None, body)
    charset = _send(
        stack,
        account,
        "POST",
        OPEN,
        query=query,
        body=body,
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 200, charset.text
    assert len(_orders(stack, account)) == 1


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/market/klines"), ("DELETE", "/api/order/1")])
def test_no_body_on_get_and_delete(stack: Stack, account: Account, method: str, path: str) -> None:
    body = b'{"symbol": "ETHUSDT"}'
    query = sign_request(account.api_secret, method, path, {"symbol": "BTCUSDT"}, body)
    reply = _envelope(_send(stack, account, method, path, query=query, body=body), 400)
    assert reply["msg"].startswith("body:"), reply


def test_an_oversized_query_is_414_in_the_envelope(stack: Stack, account: Account) -> None:
    assert stack.gateway is not None
    path = "/api/market/klines"
    query = sign_request(account.api_secret, "GET", path, {"symbol": "BTCUSDT", "pad": "x" * 10_000})
    _envelope(_send(stack, account, "GET", path, query=query), 414)
    # Past what the HTTP parser reads (about 64 KB): the server itself answers, still in the envelope.
    target = f"{path}?symbol=BTCUSDT&pad={'x' * 70_000}"
    url = urlsplit(stack.gateway.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nX-API-KEY: {account.api_key}\r\n\r\n".encode())
        raw = b""
        while b"\r\n\r\n" not in raw or not raw.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414"), head
    assert b"content-type: application/json" in head.lower(), head
    assert json.loads(payload)["code"] == 414


def test_405_names_the_allowed_methods(stack: Stack, account: Account) -> None:
    assert stack.gateway is not None
    response = httpx.put(f"{stack.gateway.url}/api/order/1", timeout=10)
    _envelope(response, 405)
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"DELETE", "PATCH"}
