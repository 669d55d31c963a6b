"""OpenAPI text: the API document's descriptions, request bodies and reply shapes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, create_model

from schemas.registry import CommandSpec

DESCRIPTION = """
AIQT — a trading gateway for Binance USDⓈ-M futures. Every request is published as a command on
RabbitMQ, executed by a worker against the exchange (the paper exchange by default), and answered
with the `{code, msg, data}` envelope.

**Auth:** header `X-API-KEY`; query parameters `timestamp` (ms), optional `recvWindow` (default 5000,
max 60000) and, last, `signature` = hex HMAC-SHA256(secret, `METHOD + "\n" + PATH + "\n" + QUERY +
"\n" + BODY`): the HTTP method, the URL path as sent, the query string as sent without `signature`,
and the raw body (empty for GET and DELETE). The signature binds the whole request, so a captured one
cannot be replayed against another path or order.

**Scopes:** each API key has `read` (account, market data, command status), `trade` (orders,
positions) and/or `admin` (halt, resume); a request outside them gets 403. Risk limits and the kill
switch are enforced by the workers: see docs/guardrails.md.

**Idempotency:** send `Idempotency-Key` (≤ 64 chars) on writes; a retry with the same key returns the
first outcome and never acts twice. A write without one takes its key from its signature: replaying
the same signed request is the same command.

**Strict input:** numbers are ASCII decimals (`"0.01"` or `0.01`, no exponent), each query parameter
at most once (-1101 otherwise) and known to the route, JSON bodies only with
`Content-Type: application/json`, no body on GET and DELETE.
"""

TAGS = [
    {"name": "account", "description": "账户"},
    {"name": "market", "description": "行情"},
    {"name": "order", "description": "订单"},
    {"name": "order/open", "description": "开仓"},
    {"name": "order/close", "description": "平仓"},
    {"name": "position", "description": "持仓设置"},
    {"name": "system", "description": "AIQT's own"},
]

_ERROR = create_model("ErrorEnvelope", code=(int, ...), msg=(str, ...), data=(Any, None))


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """Resolve local $defs so the schema can sit inside an OpenAPI operation."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.split("/")[-1]]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(schema)
    return result


def _envelope(name: str, data: Any) -> type[BaseModel]:
    return create_model(f"{name}Envelope", code=(int, ...), msg=(str, ...), data=(data | None, None))


#: Auth as OpenAPI security schemes (all three at once), so that tools treat it as auth rather than
#: data: a schemathesis hook or any client signs each request (see Auth above). `recvWindow` is
#: optional and described there.
SECURITY_SCHEMES: dict[str, Any] = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-KEY", "description": "The API key"},
    "Timestamp": {
        "type": "apiKey",
        "in": "query",
        "name": "timestamp",
        "description": "Milliseconds since the epoch (ASCII digits), within recvWindow (default 5000 ms, "
        "at most 60000, as the optional query parameter `recvWindow`) of the server's clock",
    },
    "Signature": {
        "type": "apiKey",
        "in": "query",
        "name": "signature",
        "description": "Last in the query: hex HMAC-SHA256(secret, METHOD\\nPATH\\nQUERY\\nBODY)",
    },
}
_SECURITY: list[dict[str, list[str]]] = [{name: [] for name in SECURITY_SCHEMES}]

_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"},
}


def _parameters(spec: CommandSpec) -> list[dict[str, Any]]:
    """Path and query parameters with the payload model's own rules (pattern, enum, type, bounds)."""
    schema = _inline(spec.payload.model_json_schema())
    properties, required = schema.get("properties", {}), set(schema.get("required", ()))
    params = []
    for name in (*spec.path_fields, *spec.query_fields):
        prop = {k: v for k, v in properties[name].items() if k not in ("title", "default")}
        description = prop.pop("description", None)
        prop = _strip_null(prop)
        param: dict[str, Any] = {"name": name, "in": "path" if name in spec.path_fields else "query"}
        param.update(schema=prop, required=name in spec.path_fields or name in required)
        if description:
            param["description"] = description
        params.append(param)
    if spec.mutating:
        params.append(_IDEMPOTENCY_KEY)
    return params


def _strip_null(prop: dict[str, Any]) -> dict[str, Any]:
    """`X | None` with a null default is simply an optional parameter in a query."""
    options = prop.get("anyOf")
    if isinstance(options, list):
        kept = [o for o in options if o.get("type") != "null"]
        if len(kept) == 1:
            rest = {k: v for k, v in prop.items() if k != "anyOf"}
            return {**kept[0], **rest}
    return prop


def _body(spec: CommandSpec) -> dict[str, Any]:
    schema = _inline(spec.payload.model_json_schema())
    for name in spec.path_fields:
        schema.get("properties", {}).pop(name, None)
    if "required" in schema:
        schema["required"] = [f for f in schema["required"] if f not in spec.path_fields]
    schema["additionalProperties"] = False
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def route(spec: CommandSpec) -> dict[str, Any]:
    """The FastAPI route arguments of a command: summary, tags, parameters, body and replies."""
    extra: dict[str, Any] = {"parameters": _parameters(spec), "security": _SECURITY}
    if spec.has_body:
        extra["requestBody"] = _body(spec)
    responses: dict[int | str, dict[str, Any]] = {
        200: {"model": _envelope(spec.payload.__name__, spec.reply), "description": "Success"},
        400: {"model": _ERROR, "description": "Bad input, or the exchange rejected the request (Binance code)"},
        401: {"model": _ERROR, "description": "Invalid API key (401) or signature (-1022)"},
        403: {"model": _ERROR, "description": f"The API key lacks the '{spec.scope}' scope"},
        405: {"model": _ERROR, "description": "Method not allowed; see the Allow header"},
        404: {"model": _ERROR, "description": "Order does not exist"},
        414: {"model": _ERROR, "description": "Query string too long"},
        429: {"model": _ERROR, "description": "Rate limited; see Retry-After"},
        503: {"model": _ERROR, "description": "Message bus unavailable; not accepted"},
        504: {"model": _ERROR, "description": "No reply before the deadline; outcome unknown"},
    }
    if spec.has_body:
        responses[415] = {"model": _ERROR, "description": "Body not sent as application/json"}
    return {
        "summary": spec.summary,
        "description": spec.payload.__doc__ or "",
        "tags": [spec.tag],
        "openapi_extra": extra,
        "responses": responses,
    }


#: The `/contract/{path}` route: the AMQP contract's files, or 404.
CONTRACT_ROUTE: dict[str, Any] = {
    "openapi_extra": {
        "security": [],
        "parameters": [
            {
                "name": "path",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "asyncapi.json, or schemas/<name>.json",
            }
        ],
    },
    "responses": {
        200: {"description": "The file", "content": {"application/json": {"schema": {"type": "object"}}}},
        404: {"model": _ERROR, "description": "No such file"},
    },
}


def openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's OpenAPI document plus the security schemes; built once."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes, tags=TAGS
        )
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        app.openapi_schema = schema
    return app.openapi_schema


def local_read(parameters: list[dict[str, Any]], description: str) -> dict[str, Any]:
    """The route arguments of a gateway-local signed read (`/api/session`, `/api/audit`): its query
    parameters, the same auth as the commands, and every answer it can give."""
    envelope = create_model("LocalReadEnvelope", code=(int, ...), msg=(str, ...), data=(Any, None))
    return {
        "openapi_extra": {"parameters": parameters, "security": _SECURITY},
        "responses": {
            200: {"model": envelope, "description": description},
            400: {"model": _ERROR, "description": "Bad parameter, or a stale timestamp (-1021)"},
            401: {"model": _ERROR, "description": "Invalid API key (401) or signature (-1022)"},
            403: {"model": _ERROR, "description": "Out of the key's scopes"},
            414: {"model": _ERROR, "description": "Query string too long"},
            503: {"model": _ERROR, "description": "The bus cannot be read now"},
        },
    }


AUDIT_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "since",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 0},
        "description": "Unix ms; default an hour ago, at most a week back",
    },
    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
    {"name": "writes", "in": "query", "required": False, "schema": {"type": "boolean"}},
]
