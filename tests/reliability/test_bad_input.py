"""Bad input at the gateway (issue item 9).

Schemathesis generates requests from the gateway's own OpenAPI document, valid and invalid ones;
each is signed like a real client's (`aiqt.client.sign_request` over the exact bytes sent) so it gets
past auth and reaches validation, the bus and the worker. No 5xx, every answer in the envelope.
Then the classic bad values one by one: each a 400 naming the field, and nothing at the exchange.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlencode

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode

from aiqt.client import sign_request
from gateway.idempotency import command_id
from harness.stack import Account, Stack
from schemas import codec
from schemas.registry import COMMANDS
from schemas.validation import parse_payload

pytestmark = pytest.mark.integration

#: Examples per operation and generation mode: 9 operations x 2 modes x this, about 10 s here.
MAX_EXAMPLES = 25
AUTH_QUERY = ("timestamp", "recvWindow", "signature")
#: What the auth provider puts in a case; the signer replaces them with a real timestamp and signature.
AUTH_MARKS = {"timestamp": "0", "signature": "0" * 64}


class Signer:
    """Sends a schemathesis case as a signed request: the generated query parameters, body and
    headers, plus X-API-KEY, timestamp, recvWindow and the signature over query + exact body."""

    def __init__(self, base_url: str, account: Account) -> None:
        self.base_url = base_url
        self.account = account
        self.http = httpx.Client(timeout=30)

    def send(self, case: schemathesis.Case[Any]) -> httpx.Response:
        kwargs = case.as_transport_kwargs(base_url=self.base_url)
        generated = {k: str(v) for k, v in (kwargs.get("params") or {}).items()}
        params = {k: v for k, v in generated.items() if k not in AUTH_QUERY}
        if "json" in kwargs:
            body = codec.dumps(_plain_numbers(kwargs["json"]))
        else:
            raw = kwargs.get("data") or b""
            body = raw.encode() if isinstance(raw, str) else bytes(raw)
        headers = {
            k: str(v)
            for k, v in (kwargs.get("headers") or {}).items()
            if k.lower() != "content-length" and str(v).isascii() and str(v).isprintable()
        }
        if body:
            headers["Content-Type"] = "application/json"
        url = kwargs["url"].split("?", 1)[0]
        path = httpx.URL(url).raw_path.decode("ascii")
        if all(generated.get(k) == v for k, v in AUTH_MARKS.items()):
            query = sign_request(self.account.api_secret, kwargs["method"], path, params, body)
        else:  # schemathesis made the auth itself invalid (a negative case): send it as generated
            query = urlencode(generated)
        return self.http.request(kwargs["method"], f"{url}?{query}", content=body, headers=headers)


#: Schema-valid data may still be refused by the exchange, which knows what no schema can: which symbols
#: trade (400, Binance's -1121 or the API document's "Invalid symbol"), which order ids exist (404).
#: That AIQT's own validation accepts everything its schema allows is checked by `aiqt_accepts`.
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401", "403", "404"]}}}
)


def aiqt_accepts(case: schemathesis.Case[Any], response: httpx.Response) -> None:
    """The request its schema allows, as sent, passes AIQT's own validation (the worker's models)."""
    spec = next((s for s in COMMANDS.values() if (s.method, s.path) == (case.method.upper(), case.path)), None)
    if spec is None:
        return  # not a command (the contract files)
    fields: dict[str, Any] = {k: v for k, v in response.request.url.params.items() if k not in AUTH_QUERY}
    # Path parameters as the gateway reads them: percent-decoded (schemathesis encodes e.g. ":" in place).
    fields.update({k: unquote(str(v)) for k, v in (case.path_parameters or {}).items()})
    if response.request.content:
        fields.update(codec.loads(response.request.content))
    if spec.command_id_of is not None:  # the field the gateway adds itself (never the client)
        fields["commandId"] = command_id("any-api-key", fields.get(spec.command_id_of, ""))
    parse_payload(spec.type, fields)


def _plain_numbers(value: Any) -> Any:
    """JSON numbers as a careful client writes them: digit for digit, never with an exponent."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return Decimal(value)  # beyond orjson's integers: written digit for digit all the same
    if isinstance(value, dict):
        return {k: _plain_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_numbers(v) for v in value]
    return value


def check_envelope(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"code", "msg", "data"}, body
    assert isinstance(body["code"], int) and isinstance(body["msg"], str) and body["msg"], body
    if response.status_code == 200:
        assert body["code"] == 200, body
    else:
        assert body["code"] != 200, body
    return body


@pytest.fixture(scope="module")
def bad(rstack: Stack) -> Account:
    """One account for the one-by-one cases: none of them may place anything."""
    return rstack.take_account()


@pytest.fixture(scope="module")
def api(rstack: Stack) -> Iterator[tuple[Any, Signer]]:
    assert rstack.gateway is not None
    raw = httpx.get(f"{rstack.gateway.url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(raw, config=CONFIG)
    signer = Signer(rstack.gateway.url, rstack.take_account())

    @schema.auth()
    class Signed:
        """Marks each case as authenticated (so schemathesis probes it without auth and with bad auth);
        `Signer.send` signs the exact request it sends."""

        def get(self, case: schemathesis.Case[Any], ctx: Any) -> str:
            return signer.account.api_key

        def set(self, case: schemathesis.Case[Any], data: str, ctx: Any) -> None:
            case.headers["X-API-KEY"] = data
            case.query = {**(case.query or {}), **AUTH_MARKS}

    yield schema, signer
    signer.http.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_never_5xx_and_always_an_envelope(
    rstack: Stack, api: tuple[Any, Signer], mode: GenerationMode
) -> None:
    schema, signer = api
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    seen: dict[int, int] = {}
    unsatisfiable: list[str] = []
    for operation in operations:

        @hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        def check(case: schemathesis.Case[Any]) -> None:
            response = signer.send(case)
            check_envelope(response)
            case.validate_response(response, transport_kwargs={"base_url": signer.base_url})  # every check
            if mode == GenerationMode.POSITIVE:
                aiqt_accepts(case, response)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1

        try:
            check()
        except hypothesis.errors.Unsatisfiable:
            unsatisfiable.append(operation.label)  # nothing in this operation can be made invalid
    print(mode, seen, "no invalid cases for:", unsatisfiable)
    assert len(unsatisfiable) <= 2, unsatisfiable
    assert sum(seen.values()) >= 9 * 5, seen
    assert 200 in seen or mode == GenerationMode.NEGATIVE, seen
    assert 400 in seen, seen


# --- the classic bad values, one by one -------------------------------------------------------------

OPEN = "/api/order/open/market"
GOOD = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.002"}


def _raw(stack: Stack, account: Account, method: str, path: str, body: bytes, **params: Any) -> httpx.Response:
    assert stack.gateway is not None
    query = sign_request(account.api_secret, method, path, params, body)
    headers = {"X-API-KEY": account.api_key, "Content-Type": "application/json"}
    return httpx.request(method, f"{stack.gateway.url}{path}?{query}", content=body, headers=headers, timeout=30)


BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("quantity NaN string", json.dumps({**GOOD, "quantity": "NaN"}).encode(), "quantity"),
    ("quantity Infinity string", json.dumps({**GOOD, "quantity": "Infinity"}).encode(), "quantity"),
    ("quantity -Infinity string", json.dumps({**GOOD, "quantity": "-Infinity"}).encode(), "quantity"),
    ("quantity NaN literal", b'{"symbol": "BTCUSDT", "side": "BUY", "quantity": NaN}', "body"),
    ("quantity Infinity literal", b'{"symbol": "BTCUSDT", "side": "BUY", "quantity": Infinity}', "body"),
    ("quantity negative", json.dumps({**GOOD, "quantity": -0.5}).encode(), "quantity"),
    ("quantity zero", json.dumps({**GOOD, "quantity": 0}).encode(), "quantity"),
    ("quantity huge", json.dumps({**GOOD, "quantity": "1e400"}).encode(), "quantity"),
    ("quantity huge number", b'{"symbol": "BTCUSDT", "side": "BUY", "quantity": 1e400}', "quantity"),
    ("quantity many digits", json.dumps({**GOOD, "quantity": "0." + "1" * 200}).encode(), "quantity"),
    ("quantity bool", json.dumps({**GOOD, "quantity": True}).encode(), "quantity"),
    ("quantity list", json.dumps({**GOOD, "quantity": [1]}).encode(), "quantity"),
    ("quantity object", json.dumps({**GOOD, "quantity": {"v": 1}}).encode(), "quantity"),
    ("quantity null", json.dumps({**GOOD, "quantity": None}).encode(), "quantity"),
    ("stopLoss NaN", json.dumps({**GOOD, "stopLoss": "NaN"}).encode(), "stopLoss"),
    ("stopLoss negative", json.dumps({**GOOD, "stopLoss": -1}).encode(), "stopLoss"),
    ("takeProfit text", json.dumps({**GOOD, "takeProfit": "high"}).encode(), "takeProfit"),
    ("side number", json.dumps({**GOOD, "side": 1}).encode(), "side"),
    ("symbol number", json.dumps({**GOOD, "symbol": 12}).encode(), "symbol"),
    ("symbol with space", json.dumps({**GOOD, "symbol": "BTC USDT"}).encode(), "symbol"),
    ("symbol unknown", json.dumps({**GOOD, "symbol": "NOPEUSDT"}).encode(), "symbol"),
    ("reduceOnly text", json.dumps({**GOOD, "reduceOnly": "maybe"}).encode(), "reduceOnly"),
    ("not an object", b"[1, 2, 3]", "body"),
    ("not JSON", b"{quantity: 1", "body"),
    ("oversized", json.dumps({**GOOD, "pad": "x" * 70_000}).encode(), "body"),
]


@pytest.mark.parametrize(("name", "body", "field"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_order_bodies_are_400_naming_the_field(
    rstack: Stack, bad: Account, name: str, body: bytes, field: str
) -> None:
    response = _raw(rstack, bad, "POST", OPEN, body)
    envelope = check_envelope(response)
    assert response.status_code == 400, envelope
    assert field.lower() in envelope["msg"].lower(), envelope
    assert envelope["code"] == 400 or (name == "symbol unknown" and envelope["code"] == -1121), envelope
    assert rstack.state(bad)["orders"] == []


BAD_OTHERS: list[tuple[str, str, str, bytes, dict[str, Any], str]] = [
    ("leverage text", "POST", "/api/position/leverage", b'{"symbol": "BTCUSDT", "leverage": "ten"}', {}, "leverage"),
    ("leverage 0", "POST", "/api/position/leverage", b'{"symbol": "BTCUSDT", "leverage": 0}', {}, "leverage"),
    ("leverage 126", "POST", "/api/position/leverage", b'{"symbol": "BTCUSDT", "leverage": 126}', {}, "leverage"),
    ("leverage float", "POST", "/api/position/leverage", b'{"symbol": "BTCUSDT", "leverage": 2.5}', {}, "leverage"),
    ("marginType", "POST", "/api/position/margin-mode", b'{"symbol": "BTCUSDT", "marginType": "X"}', {}, "marginType"),
    ("klines limit", "GET", "/api/market/klines", b"", {"symbol": "BTCUSDT", "limit": "lots"}, "limit"),
    ("klines interval", "GET", "/api/market/klines", b"", {"symbol": "BTCUSDT", "interval": "7m"}, "interval"),
    ("funding limit", "GET", "/api/market/funding-rate", b"", {"symbol": "BTCUSDT", "limit": "-1"}, "limit"),
    ("cancel orderId", "DELETE", "/api/order/abc", b"", {"symbol": "BTCUSDT"}, "orderId"),
    ("cancel orderId huge", "DELETE", "/api/order/" + "9" * 40, b"", {"symbol": "BTCUSDT"}, "orderId"),
    (
        "modify price NaN",
        "PATCH",
        "/api/order/1",
        b'{"symbol": "BTCUSDT", "side": "BUY", "quantity": 1, "price": "NaN"}',
        {},
        "price",
    ),
    (
        "close quantity",
        "POST",
        "/api/order/close/market",
        b'{"symbol": "BTCUSDT", "positionSide": "LONG", "quantity": "-1"}',
        {},
        "quantity",
    ),
    (
        "close positionSide",
        "POST",
        "/api/order/close/market",
        b'{"symbol": "BTCUSDT", "positionSide": "UP"}',
        {},
        "positionSide",
    ),
]


def _cases() -> list[Any]:
    return [
        pytest.param(*c, id=c[0])
        for c in [
            *BAD_OTHERS,
            (
                "modify orderId huge",
                "PATCH",
                "/api/order/" + "9" * 40,
                b'{"symbol": "BTCUSDT", "side": "BUY", "quantity": 1, "price": 1}',
                {},
                "orderId",
            ),
        ]
    ]


@pytest.mark.parametrize(("name", "method", "path", "body", "params", "field"), _cases())
def test_bad_input_elsewhere_is_400_naming_the_field(
    rstack: Stack,
    bad: Account,
    name: str,
    method: str,
    path: str,
    body: bytes,
    params: dict[str, Any],
    field: str,
) -> None:
    response = _raw(rstack, bad, method, path, body, **params)
    envelope = check_envelope(response)
    assert (response.status_code, envelope["code"]) == (400, 400), envelope
    assert field.lower() in envelope["msg"].lower(), envelope


def test_oversized_chunked_body_is_refused(rstack: Stack, bad: Account) -> None:
    """No Content-Length to check up front: the gateway counts while reading."""
    assert rstack.gateway is not None
    body = json.dumps({**GOOD, "pad": "x" * 200_000}).encode()
    query = sign_request(bad.api_secret, "POST", OPEN, None, body)

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    response = httpx.post(
        f"{rstack.gateway.url}{OPEN}?{query}",
        content=chunks(),
        headers={"X-API-KEY": bad.api_key, "Content-Type": "application/json"},
        timeout=30,
    )
    envelope = check_envelope(response)
    assert response.status_code == 400 and "body" in envelope["msg"], envelope
    assert rstack.state(bad)["orders"] == []
