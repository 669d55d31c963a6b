"""The gateway's HTTP server: uvicorn with httptools, answering even unparseable requests in the envelope.

A request line longer than the HTTP parser accepts (about 64 KB) never reaches the app: uvicorn would
answer a plain-text 400. This protocol stops reading a request target at `MAX_TARGET_BYTES` and answers
414 in the `{code, msg, data}` envelope; any other request the parser refuses gets a 400 envelope.
"""

from __future__ import annotations

from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from schemas import codec, errors

#: Longest request target (path and query) read; the app itself refuses queries over 8 KB with 414.
MAX_TARGET_BYTES = 16384


class _TargetTooLong(Exception):
    pass


class GatewayProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with envelope answers for requests the parser refuses."""

    def on_message_begin(self) -> None:
        self._target_too_long = False
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_TARGET_BYTES:
            self._target_too_long = True
            raise _TargetTooLong

    def send_400_response(self, msg: str) -> None:
        if getattr(self, "_target_too_long", False):
            status, body = 414, codec.envelope(errors.URI_TOO_LONG, f"request target longer than {MAX_TARGET_BYTES}")
        else:
            status, body = 400, codec.envelope(errors.BAD_REQUEST, "Invalid HTTP request")
        reason = b"URI Too Long" if status == 414 else b"Bad Request"
        head = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    """A uvicorn configuration for the gateway app (used by `aiqt gateway` and the tests alike)."""
    # No permessage-deflate: event frames are a few hundred bytes, and compressing each one for each
    # client cost the gateway ~40 % more CPU under the event stream (bench/events_latency.py).
    options.setdefault("ws_per_message_deflate", False)
    return uvicorn.Config(app, host=host, port=port, http=GatewayProtocol, access_log=False, **options)
