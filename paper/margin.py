"""Maintenance margin and liquidation price (Binance FAQ formula, USDⓈ-M).

Pure functions: no state, Decimal in and out.
"""

from __future__ import annotations

from decimal import Decimal

from .symbols import Bracket, SymbolSpec

ZERO = Decimal(0)


def maint_margin(spec: SymbolSpec, notional: Decimal) -> Decimal:
    """MM = notional × mmr − cum, with the bracket that contains the notional."""
    if notional <= 0:
        return ZERO
    b = spec.bracket_for(notional)
    return notional * b.mmr - b.cum


def liquidation_price(
    spec: SymbolSpec,
    wallet: Decimal,
    both: Decimal = ZERO,
    both_entry: Decimal = ZERO,
    long: Decimal = ZERO,
    long_entry: Decimal = ZERO,
    short: Decimal = ZERO,
    short_entry: Decimal = ZERO,
    other_mm: Decimal = ZERO,
    other_upnl: Decimal = ZERO,
) -> Decimal:
    """Liquidation price of one symbol's positions.

    `both` is the signed one-way position, `long`/`short` the hedge-mode sizes (absolute).
    For isolated margin pass the position's isolated wallet as `wallet` and leave the `other_*`
    terms at zero. Returns 0 when flat or when the price would be ≤ 0 (Binance shows "--").
    The bracket (MMR, cum) is the one that applies at the liquidation price: solved, then
    re-solved while the result lands in a different bracket.
    """
    side_b = Decimal(1) if both > 0 else Decimal(-1)
    pos_b = abs(both)
    long = abs(long)
    short = abs(short)
    if pos_b == 0 and long == 0 and short == 0:
        return ZERO

    def solve(bb: Bracket, bl: Bracket, bs: Bracket) -> Decimal | None:
        num = (
            wallet
            - other_mm
            + other_upnl
            + (bb.cum if pos_b else 0)
            + (bl.cum if long else 0)
            + (bs.cum if short else 0)
            - side_b * pos_b * both_entry
            - long * long_entry
            + short * short_entry
        )
        den = pos_b * bb.mmr + long * bl.mmr + short * bs.mmr - side_b * pos_b - long + short
        if den == 0:
            return None
        return num / den

    def brackets_at(price: Decimal) -> tuple[Bracket, Bracket, Bracket]:
        return (spec.bracket_for(pos_b * price), spec.bracket_for(long * price), spec.bracket_for(short * price))

    ref = both_entry or long_entry or short_entry
    bks = brackets_at(ref)
    lp: Decimal | None = None
    for _ in range(6):
        lp = solve(*bks)
        if lp is None or lp <= 0:
            return ZERO
        nxt = brackets_at(lp)
        if nxt == bks:
            break
        bks = nxt
    assert lp is not None
    return lp
