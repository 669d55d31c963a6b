"""Reading an HTTP request strictly, before any of it becomes a command.

Each rule here closes a way a careless or hostile client could have a request read differently from
how it was meant (or signed): a parameter sent twice, a parameter the route does not know, a body on a
GET, a body that is not declared JSON, JSON nested thousands deep. Every refusal is an envelope with a
4xx status, never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from schemas import codec, errors
from schemas.codec import JsonDecodeError
from schemas.registry import CommandSpec

AUTH_PARAMS = ("timestamp", "recvWindow", "signature")
#: Longest query string read; longer ones get 414 (a signed request of this API needs under 1 KB).
MAX_QUERY_BYTES = 8192
JSON_TYPES = ("application/json",)


@dataclass(frozen=True)
class Refused(Exception):
    """A request the gateway will not turn into a command: the envelope to answer instead."""

    status: int
    code: int
    msg: str
    headers: dict[str, str] = field(default_factory=dict)


def parse_query(raw_query: str, spec: CommandSpec) -> dict[str, str]:
    """The query parameters of a command's route: each at most once, each known to the route."""
    return parse_params(raw_query, {*spec.query_fields, *AUTH_PARAMS}, spec.route)


def parse_params(raw_query: str, allowed: set[str], route: str) -> dict[str, str]:
    """The query parameters: each at most once, each in `allowed`."""
    if len(raw_query) > MAX_QUERY_BYTES:
        raise Refused(414, errors.URI_TOO_LONG, f"query string: longer than {MAX_QUERY_BYTES} bytes")
    params: dict[str, str] = {}
    for part in raw_query.split("&") if raw_query else []:
        name, _, value = part.partition("=")
        name = _unquote(name)
        if name in params:
            raise Refused(400, errors.BINANCE_DUPLICATE_PARAMETER, "Duplicate values for a parameter detected.")
        params[name] = _unquote(value)
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise Refused(400, errors.BAD_REQUEST, f"{', '.join(unknown)}: not a parameter of {route}")
    return params


def _unquote(text: str) -> str:
    try:
        return unquote_plus(text, errors="strict")
    except UnicodeDecodeError as exc:
        raise Refused(400, errors.BAD_REQUEST, "query string: not valid UTF-8 after percent-decoding") from exc


def parse_body(body: bytes, content_type: str | None, spec: CommandSpec, path: dict[str, str]) -> dict[str, Any]:
    """The JSON object in the body of a POST or PATCH; nothing at all for GET and DELETE. A field of
    the path may be repeated in the body only with the same value."""
    if not spec.has_body:
        if body:
            raise Refused(400, errors.BAD_REQUEST, f"body: {spec.method} takes no body; send the fields in the query")
        return {}
    if not body.strip():
        return {}
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in JSON_TYPES:
        raise Refused(
            415, errors.UNSUPPORTED_MEDIA_TYPE, "body: send JSON with the header Content-Type: application/json"
        )
    try:
        parsed = codec.loads(body, max_depth=codec.MAX_DEPTH)
    except JsonDecodeError as exc:
        raise Refused(400, errors.BAD_REQUEST, f"body: {exc}") from exc
    if not isinstance(parsed, dict):
        raise Refused(400, errors.BAD_REQUEST, "body: must be a JSON object")
    clash = sorted(name for name in set(parsed) & set(path) if str(parsed[name]) != path[name])
    if clash:
        raise Refused(400, errors.BAD_REQUEST, f"{', '.join(clash)}: differs from the path; leave it out of the body")
    return parsed
