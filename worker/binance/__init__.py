"""Binance fapi access: the signed client, its error tree, the server clock."""
