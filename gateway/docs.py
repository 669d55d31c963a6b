"""OpenAPI text: the API document's descriptions, request bodies and reply shapes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, create_model

from schemas import replies as r
from schemas.commands import PAYLOADS
from schemas.enums import CommandType

DESCRIPTION = """
AIQT — a trading gateway for Binance USDⓈ-M futures. Every request is published as a command on
RabbitMQ, executed by a worker against the exchange (the paper exchange by default), and answered
with the `{code, msg, data}` envelope.

**Auth (Binance-style):** header `X-API-KEY`; query parameters `timestamp` (ms), optional
`recvWindow` (default 5000, max 60000) and `signature` = hex HMAC-SHA256(secret, query string
without `signature` + raw body). **Idempotency:** send `Idempotency-Key` (≤ 64 chars) on writes;
a retry with the same key returns the first outcome and never acts twice.
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

_SUMMARY = {
    CommandType.ACCOUNT_SUMMARY: ("账户综合信息查询", r.AccountSummaryData),
    CommandType.MARKET_KLINES: ("K线历史数据", r.KlinesData),
    CommandType.MARKET_FUNDING_RATE: ("资金费率查询", r.FundingRateData),
    CommandType.ORDER_CANCEL: ("取消订单", r.CancelData),
    CommandType.ORDER_MODIFY: ("修改订单", r.Order),
    CommandType.ORDER_OPEN_MARKET: ("市价开仓", r.OpenMarketData),
    CommandType.ORDER_CLOSE_MARKET: ("市价平仓", r.CloseMarketData),
    CommandType.POSITION_LEVERAGE: ("调整杠杆倍数", r.LeverageData),
    CommandType.POSITION_MARGIN_MODE: ("设置保证金模式", r.MarginModeData),
    CommandType.SYSTEM_PING: ("Bus round trip (no exchange call)", r.PingData),
}

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


def route(command: CommandType, *, body: bool = False) -> dict[str, Any]:
    summary, data = _SUMMARY[command]
    payload = PAYLOADS[command]
    extra: dict[str, Any] = {}
    if body:
        schema = _inline(payload.model_json_schema())
        schema.get("properties", {}).pop("orderId", None)
        if "required" in schema:
            schema["required"] = [f for f in schema["required"] if f != "orderId"]
        extra["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    extra["parameters"] = [
        {"name": "X-API-KEY", "in": "header", "required": True, "schema": {"type": "string"}},
        {"name": "timestamp", "in": "query", "required": True, "schema": {"type": "integer"}},
        {"name": "recvWindow", "in": "query", "required": False, "schema": {"type": "integer"}},
        {"name": "signature", "in": "query", "required": True, "schema": {"type": "string"}},
        {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string", "maxLength": 64}},
    ]
    return {
        "summary": summary,
        "description": payload.__doc__ or "",
        "openapi_extra": extra,
        "responses": {
            200: {"model": _envelope(payload.__name__, data), "description": "Success"},
            400: {"model": _ERROR, "description": "Bad input, or the exchange rejected the request (Binance code)"},
            401: {"model": _ERROR, "description": "Invalid API key (401) or signature (-1022)"},
            404: {"model": _ERROR, "description": "Order does not exist"},
            429: {"model": _ERROR, "description": "Rate limited; see Retry-After"},
            503: {"model": _ERROR, "description": "Message bus unavailable; not accepted"},
            504: {"model": _ERROR, "description": "No reply before the deadline; outcome unknown"},
        },
    }
