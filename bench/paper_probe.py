"""The paper exchange with a stopwatch at its door, for time-to-wire: when did `POST /fapi/v1/order`
with a given `newClientOrderId` arrive (`time.time_ns()`, the same clock as the bench on this host)?

    python -m bench.paper_probe          # configured like `aiqt paper` (AIQT_PAPER_* variables)
    GET /_probe/arrivals                 # {clientOrderId: arrival ns}

The paper exchange itself is untouched: this wraps its ASGI app.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs

from paper.main import _serve, build
from paper.settings import PaperSettings


class Probe:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.arrivals: dict[str, int] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if scope["method"] == "POST" and scope["path"] == "/fapi/v1/order":
                arrived = time.time_ns()
                ids = parse_qs(scope["query_string"].decode("latin-1")).get("newClientOrderId")
                if ids:
                    self.arrivals[ids[0]] = arrived
            elif scope["path"] == "/_probe/arrivals":
                body = json.dumps(self.arrivals).encode()
                await send(
                    {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def main() -> None:
    settings = PaperSettings()
    app, server = build(settings, own_process=True)
    server.config.app = Probe(app)
    try:
        _serve(settings, server)
    except KeyboardInterrupt:
        pass
    finally:
        app.close()


if __name__ == "__main__":
    main()
