"""The JSON methods a stream connection accepts: SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS,
SET_PROPERTY and GET_PROPERTY, with Binance's acknowledgements and error frames.

Acks echo the request id verbatim: an unsigned int (ccxt) or a string (the official SDK sends
UUIDs). Errors have Binance's shape, ``{"error": {"code", "msg"}, "id"}``; a bad frame is
answered on its own connection and never raises out of here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from .hub import Connection

if TYPE_CHECKING:
    from .server import StreamServer

METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_METHOD_LIST = ", ".join(f"`{m}`" for m in METHODS)


class RequestError(Exception):
    def __init__(self, code: int, msg: str):
        super().__init__(msg)
        self.code = code
        self.msg = msg


def error_frame(code: int, msg: str, request_id: object) -> dict[str, object]:
    return {"error": {"code": code, "msg": msg}, "id": request_id}


def handle(server: StreamServer, conn: Connection, text: str) -> None:
    """Answer one incoming frame on `conn` (ack, result or error frame)."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        conn.push_json(error_frame(3, f"Invalid JSON: expected value at line {e.lineno} column {e.colno}", None))
        return
    request_id: object = None
    try:
        if not isinstance(message, dict):
            raise RequestError(2, "Invalid request: expected a JSON object")
        request_id = _request_id(message)
        result = _dispatch(server, conn, message)
    except RequestError as e:
        conn.push_json(error_frame(e.code, e.msg, request_id))
        return
    conn.push_json({"result": result, "id": request_id})


def _request_id(message: dict[str, Any]) -> object:
    request_id = message.get("id")
    if request_id is None or isinstance(request_id, str):
        return request_id
    if isinstance(request_id, int) and not isinstance(request_id, bool) and request_id >= 0:
        return request_id
    raise RequestError(2, "Invalid request: request ID must be an unsigned integer")


def _dispatch(server: StreamServer, conn: Connection, message: dict[str, Any]) -> object:
    method = message.get("method")
    if method is None:
        raise RequestError(2, "Invalid request: missing field `method`")
    if method not in METHODS:
        raise RequestError(2, f"Invalid request: unknown variant `{method}`, expected one of {_METHOD_LIST}")
    params = message.get("params", [])
    if not isinstance(params, list):
        raise RequestError(2, "Invalid request: invalid type: expected a sequence for `params`")
    if method == "SUBSCRIBE":
        _subscribe(server, conn, params)
        return None
    if method == "UNSUBSCRIBE":
        for name in _names(params):
            server.hub.unsubscribe(conn, name)
        return None
    if method == "LIST_SUBSCRIPTIONS":
        return list(conn.subscriptions)
    return _property(conn, method, params)


def _names(params: list[Any]) -> list[str]:
    if not all(isinstance(p, str) for p in params):
        raise RequestError(2, "Invalid request: invalid type: expected a string stream name")
    return list(params)


def _subscribe(server: StreamServer, conn: Connection, params: list[Any]) -> None:
    names = _names(params)
    fresh = [n for n in names if n not in conn.subscriptions]
    if len(conn.subscriptions) + len(fresh) > server.settings.ws_max_streams:
        raise RequestError(2, "Invalid request: too many parameters")
    for name in names:
        server.subscribe(conn, name)


def _property(conn: Connection, method: str, params: list[Any]) -> object:
    if not params or params[0] != "combined":
        raise RequestError(0, "Unknown property")
    if method == "GET_PROPERTY":
        if len(params) != 1:
            raise RequestError(2, "Invalid request: too many parameters")
        return conn.combined
    if len(params) != 2:
        raise RequestError(2, "Invalid request: too many parameters" if len(params) > 2 else "Invalid request")
    if not isinstance(params[1], bool):
        raise RequestError(1, "Invalid value type: expected Boolean")
    conn.combined = params[1]
    return None


__all__ = ["error_frame", "handle"]
