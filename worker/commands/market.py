"""market.klines and market.funding_rate: market data, plus the account's realized funding.

Both are served from `worker.marketdata` (closed candles and settled funding from cache, the live
parts from a stream or one small request); the reply says which in `x-aiqt-source`.

Klines and funding rates are public (unsigned) reads; the realized part of each funding rate
comes from the account's FUNDING_FEE income, matched to the funding time.
"""

from __future__ import annotations

from typing import Any

import orjson

from schemas import codec, errors
from schemas import commands as cmd
from schemas import replies as r
from worker.binance.endpoints import Json
from worker.binance.errors import ExchangeRejected
from worker.context import AccountContext, Run
from worker.marketdata import Source, worst
from worker.outcome import Outcome, Refusal
from worker.views import ZERO, dec, kline_view

#: A funding fee is booked within this distance of its funding time.
FUNDING_MATCH_MS = 60_000
#: Binance's "Invalid symbol."
INVALID_SYMBOL = -1121


def _kline_json(row: list[Any]) -> orjson.Fragment:
    """One candle exactly as `KlinesData` serialises it, as a ready JSON fragment."""
    return orjson.Fragment(codec.dumps(kline_view(row).model_dump()))


async def klines(ctx: AccountContext, p: cmd.Klines, run: Run) -> Outcome:
    rows, source = await ctx.market.klines_rendered(ctx.exchange, p.symbol, p.interval.value, p.limit, _kline_json)
    # The shape of r.KlinesData, with closed candles serialised once and reused.
    data = {"symbol": p.symbol, "interval": p.interval.value, "klines": rows}
    return Outcome(errors.OK, "Success", data, {"x-aiqt-source": source})


async def funding_rate(ctx: AccountContext, p: cmd.FundingRate, run: Run) -> Outcome:
    ex = ctx.exchange
    try:
        premium, source = await ctx.market.premium(ex, p.symbol)
    except ExchangeRejected as exc:
        if exc.code == INVALID_SYMBOL:
            raise Refusal(errors.BAD_REQUEST, "Invalid symbol") from exc
        raise
    sources: list[Source] = [source]
    next_funding = int(premium.get("nextFundingTime") or 0)
    current = r.CurrentRate(
        rate=dec(premium.get("lastFundingRate")),
        time=int(premium.get("time") or 0),
        nextFundingTime=int(premium.get("nextFundingTime") or 0),
    )
    history = None
    if p.limit is not None:
        rows, rows_source = await ctx.market.funding_history(ex, p.symbol, p.limit, next_funding)
        sources.append(rows_source)
        fees: list[Json] = []
        if rows:
            start = min(int(row["fundingTime"]) for row in rows) - FUNDING_MATCH_MS
            fees, fees_source = await ctx.market.funding_fees(ex, ctx.name, p.symbol, start, next_funding)
            sources.append(fees_source)
        history = []
        for row in rows:
            t = int(row["fundingTime"])
            realized = sum((dec(f["income"]) for f in fees if abs(int(f["time"]) - t) <= FUNDING_MATCH_MS), ZERO)
            history.append(r.HistoryRate(rate=dec(row["fundingRate"]), time=t, realized=realized))
    data = r.FundingRateData(symbol=p.symbol, currentRate=current, historyRates=history)
    return Outcome(errors.OK, "Success", data, {"x-aiqt-source": worst(*sources)})
