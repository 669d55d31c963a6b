"""Binance fapi access: the signed client, its error tree, the server clock, and the typed
endpoints (the only place that spells a fapi path)."""
