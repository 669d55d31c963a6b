"""AIQT paper exchange: a Binance USDⓈ-M futures (fapi) look-alike with a simulated market.

Imports nothing from the rest of AIQT: it stands in for Binance.
"""
