"""`aiqt mcp`: AIQT's tools for AI agents, as an MCP server (the official `mcp` SDK, v2).

Why it is a client of the gateway: an agent must meet every rule a REST client meets — the key's
signature and scopes, the account's risk limits, the kill switch, idempotency — and the only way to
be sure nothing is skipped is to go through the same front door. Every tool call here becomes a
signed REST request made with `aiqt.client`; nothing talks to the bus or the exchange directly.

Two transports, one tool table:

* stdio — an MCP host runs `aiqt mcp` with `AIQT_URL`, `AIQT_API_KEY`, `AIQT_API_SECRET` in its
  environment; every call is signed with that key.
* Streamable HTTP at `/mcp` on the gateway — `aiqt gateway` composes it in (the gateway may not
  import `aiqt`; it serves an ASGI app handed to it). A caller sends `Authorization: Bearer
  <token>`, where the token names one of the gateway's client keys and proves knowledge of its
  secret (`bearer_token`); the tool calls are then signed with that key, in process, through the
  gateway app itself. So a token can do exactly what its key can, no more.

Why the low-level `Server` and not `MCPServer`: the tools' input schemas are the command registry's
payload schemas (the same patterns, enums and bounds the gateway enforces), and their output schemas
the registry's reply models; `MCPServer` derives schemas from Python signatures instead.

Money stays exact: a JSON number an agent sends arrives as a float, and is turned into a Decimal from
its shortest repr (the digits the agent wrote) before the payload model sees it; the text a model
reads is the gateway's reply with its digits.
"""

from aiqt.mcp.http import BearerAuth, KeyPair, bearer_token, gateway_mount, http_endpoint
from aiqt.mcp.server import build_server, call_tool, serve_stdio
from aiqt.mcp.tools import TOOLS, TOOLS_BY_NAME, ToolDef

__all__ = [
    "TOOLS",
    "TOOLS_BY_NAME",
    "BearerAuth",
    "KeyPair",
    "ToolDef",
    "bearer_token",
    "build_server",
    "call_tool",
    "gateway_mount",
    "http_endpoint",
    "serve_stdio",
]
