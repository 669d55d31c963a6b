"""Calling a tool (a signed REST request through `aiqt.client`), the MCP server, and stdio."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import mcp_types as types
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from pydantic import BaseModel

from aiqt.client import AsyncAiqtClient, Reply
from aiqt.mcp.tools import INSTRUCTIONS, KEY_RE, SERVER_NAME, TOOLS, TOOLS_BY_NAME, ToolDef
from schemas import codec, errors
from schemas.validation import InvalidCommand, parse_payload

log = logging.getLogger("aiqt.mcp")

# --- calling a tool ------------------------------------------------------------------------------


class ToolRefused(Exception):
    """A call refused before it was sent: the message the model reads."""


def _exact(value: Any) -> Any:
    """A JSON number the agent sent, as the Decimal it wrote (floats never reach a payload)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ToolRefused("numbers must be finite")
        return Decimal(repr(value))
    return value


def _jsonable(value: Any) -> Any:
    """Reply data for `structured_content`: JSON numbers stay JSON numbers (a Decimal would be written as a
    string there, against the output schema). The text content keeps the exact digits."""
    if isinstance(value, Decimal):  # codec.loads reads only numbers with a fraction as Decimal
        return float(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, Any] | None
    body: dict[str, Any] | None
    key: str | None


def build_request(tool: ToolDef, arguments: Mapping[str, Any]) -> Request:
    """The REST request of a tool call, with the arguments checked by the same rules the gateway applies.
    Writes get an idempotency key (the one given, or a new one)."""
    args = {name: _exact(value) for name, value in arguments.items()}
    key: str | None = None
    if tool.write:
        given = args.pop("idempotencyKey", None)
        if given is not None and not isinstance(given, str):
            raise ToolRefused("idempotencyKey: must be a string")
        key = given or f"mcp-{uuid.uuid4().hex}"
        if not KEY_RE.fullmatch(key):
            raise ToolRefused("idempotencyKey: 1 to 64 characters of A-Z a-z 0-9 _ . : -")
    try:
        if tool.command is not None:
            model: BaseModel = parse_payload(tool.command, args)
        else:
            model = tool.payload.model_validate(args)
    except InvalidCommand as exc:
        raise ToolRefused(exc.msg) from exc
    except ValueError as exc:  # pydantic's ValidationError
        raise ToolRefused(str(exc)) from exc
    values = {k: v for k, v in model.model_dump().items() if v is not None}
    path = tool.path.format(**{name: values.pop(name) for name in tool.path_fields})
    if tool.method in ("POST", "PATCH", "PUT"):
        return Request(tool.method, path, None, values, key)
    return Request(tool.method, path, values or None, None, key)


def _guidance(reply: Reply, key: str | None) -> str:
    """What the model should do next, after a refusal or an unknown outcome."""
    if reply.code == errors.TIMEOUT:
        if key:
            return (
                f" The outcome is unknown: do not send a new order. Call command_status with idempotencyKey "
                f"'{key}', or repeat this call with idempotencyKey '{key}'."
            )
        return " The outcome is unknown; repeating this read is safe."
    if reply.code == errors.UNAVAILABLE:
        return f" Nothing was executed; retry later{_same_key(key)}."
    if reply.code == errors.RATE_LIMITED:
        after = reply.headers.get("retry-after")
        return f" Rate limited: wait {after or 'a few'} s, then retry{_same_key(key)}."
    if reply.code == errors.CONFLICT:
        return f" The same command is still running; retry{_same_key(key)} to get its outcome."
    return ""


def _same_key(key: str | None) -> str:
    return f" with idempotencyKey '{key}'" if key else ""


def _result(reply: Reply, key: str | None) -> types.CallToolResult:
    structured = {"code": reply.code, "msg": reply.msg, "data": _jsonable(reply.data), "idempotencyKey": key}
    if reply.ok:
        exact = codec.dumps({"code": reply.code, "msg": reply.msg, "data": reply.data, "idempotencyKey": key})
        return types.CallToolResult(
            content=[types.TextContent(text=exact.decode())], structured_content=structured, is_error=False
        )
    text = f"Refused (code {reply.code}): {reply.msg}.{_guidance(reply, key)}"
    if key:
        text += f" [idempotencyKey {key}]"
    return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=structured, is_error=True)


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)


#: Gives the signed client of the current call (one per process over stdio, one per bearer token over HTTP).
ClientFor = Callable[[], AsyncAiqtClient]


async def call_tool(client: AsyncAiqtClient, name: str, arguments: Mapping[str, Any]) -> types.CallToolResult:
    """Run one tool: check the arguments, send the REST request, turn the reply into a tool result."""
    tool = TOOLS_BY_NAME.get(name)
    if tool is None:
        return _error(f"Unknown tool {name!r}; the tools are: {', '.join(TOOLS_BY_NAME)}")
    try:
        req = build_request(tool, arguments)
    except ToolRefused as exc:
        return _error(f"Invalid arguments: {exc}. Nothing was sent.")
    try:
        reply = await client.request(req.method, req.path, req.params, req.body, idempotency_key=req.key)
    except httpx.ConnectError as exc:
        log.warning("cannot reach the gateway for %s: %s", name, exc)
        return _error(f"Cannot reach the AIQT gateway; nothing was sent. Retry later{_same_key(req.key)}.")
    except httpx.HTTPError as exc:  # a timeout or a connection lost after sending: the outcome is unknown
        log.warning("no answer from the gateway for %s: %r", name, exc)
        if req.key:
            return _error(
                f"No answer from AIQT ({type(exc).__name__}); the outcome is unknown. Do not send a new order: call "
                f"command_status with idempotencyKey '{req.key}', or repeat this call with idempotencyKey "
                f"'{req.key}'."
            )
        return _error(f"No answer from AIQT ({type(exc).__name__}); repeating this read is safe.")
    return _result(reply, req.key)


def build_server(client_for: ClientFor, *, name: str = SERVER_NAME) -> Server[Any]:
    """The MCP server: the tool table above, each call signed by `client_for()`'s key."""
    listed = types.ListToolsResult(tools=[tool.definition() for tool in TOOLS])

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return listed

    async def on_call(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            client = client_for()
        except LookupError:
            return _error("Not authenticated: send Authorization: Bearer <token> (see `aiqt mcp-token`).")
        return await call_tool(client, params.name, params.arguments or {})

    return Server(
        name,
        version="0.1.0",
        title="AIQT — Binance USDⓈ-M futures",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=on_call,
    )


# --- stdio -------------------------------------------------------------------------------------


async def serve_stdio(url: str, api_key: str, api_secret: str, *, timeout: float = 30.0) -> None:
    """Serve MCP over stdin/stdout, every call signed with this key (what `aiqt mcp` runs)."""
    from mcp.server.stdio import stdio_server

    async with AsyncAiqtClient(url, api_key, api_secret, timeout=timeout) as client:
        server = build_server(lambda: client)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
