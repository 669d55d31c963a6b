"""Binance's symbol filters (PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, MIN_NOTIONAL, PERCENT_PRICE).

Pure functions of a symbol's spec, checked in the order Binance checks them, so a request that
breaks two filters gets the same error code as on the real exchange.
"""

from __future__ import annotations

from decimal import Decimal

from ..errors import BinanceError, err
from ..symbols import SymbolSpec


def _bad_precision() -> BinanceError:
    return err(-1111, "Precision is over the maximum defined for this asset.")


def check_price(spec: SymbolSpec, price: Decimal) -> None:
    """PRICE_FILTER (and precision) checks of a price, in Binance's order."""
    if price <= 0:
        raise err(-4001, "Price less than 0.")
    if price.normalize().as_tuple().exponent < -spec.price_precision:  # type: ignore[operator]
        raise _bad_precision()
    if price < spec.min_price:
        raise err(-4013, "Price less than min price.")
    if price > spec.max_price:
        raise err(-4002, "Price greater than max price.")
    if price % spec.tick != 0:
        raise err(-4014, "Price not increased by tick size.")


def check_qty(spec: SymbolSpec, qty: Decimal, market: bool) -> None:
    """LOT_SIZE / MARKET_LOT_SIZE (and precision) checks of a quantity."""
    if qty <= 0:
        raise err(-4003, "Quantity less than zero.")
    if qty.normalize().as_tuple().exponent < -spec.qty_precision:  # type: ignore[operator]
        raise _bad_precision()
    lo, hi, step = (
        (spec.market_min_qty, spec.market_max_qty, spec.market_step)
        if market
        else (spec.min_qty, spec.max_qty, spec.step)
    )
    if qty < lo:
        raise err(-4004, "Quantity less than min quantity.")
    if qty > hi:
        raise err(-4005, "Quantity greater than max quantity.")
    if qty % step != 0:
        raise err(-4023, "Qty not increased by step size.")


def check_notional(spec: SymbolSpec, notional: Decimal) -> None:
    if notional < spec.min_notional:
        raise err(
            -4164, f"Order's notional must be no smaller than {spec.min_notional} (unless you choose reduce only)"
        )


def check_percent_price(spec: SymbolSpec, price: Decimal, mark: Decimal) -> None:
    if price > mark * spec.multiplier_up:
        raise err(-4016, "Price is higher than mark price multiplier cap.")
    if price < mark * spec.multiplier_down:
        raise err(-4024, "Price is lower than mark price multiplier floor.")
