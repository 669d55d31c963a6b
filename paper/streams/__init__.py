"""Binance-compatible WebSocket streams of the paper exchange (market data and user data).

- :mod:`.names` — the stream grammar and which route serves which stream
- :mod:`.hub` — subscriptions and per-connection bounded outboxes (fan-out without waiting)
- :mod:`.protocol` — SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY / GET_PROPERTY
- :mod:`.listen_keys` — listenKey lifecycle (one per account, 60 min, -1125)
- :mod:`.user_events` — user-data events in Binance's JSON
- :mod:`.market_streams` — market streams from the simulated market
- :mod:`.server` — the ASGI WebSocket endpoint and the background loops
"""

from __future__ import annotations

from .server import StreamServer

__all__ = ["StreamServer"]
