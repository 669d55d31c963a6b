"""The five listed contracts: filters, precisions, leverage brackets (Binance-like, late 2026)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

D = Decimal


@dataclass(frozen=True, slots=True)
class Bracket:
    bracket: int
    initial_leverage: int
    notional_cap: int
    notional_floor: int
    mmr: Decimal
    cum: Decimal


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    symbol: str
    base: str
    base_price: Decimal
    price_precision: int
    qty_precision: int
    tick: Decimal
    min_price: Decimal
    max_price: Decimal
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_step: Decimal
    market_min_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    multiplier_up: Decimal
    multiplier_down: Decimal
    max_num_orders: int
    onboard: int
    # per-minute base volume, for synthetic klines
    minute_volume: float
    brackets: tuple[Bracket, ...] = field(default=())

    @property
    def max_leverage(self) -> int:
        return self.brackets[0].initial_leverage

    def bracket_for(self, notional: Decimal) -> Bracket:
        for b in self.brackets:
            if notional < b.notional_cap:
                return b
        return self.brackets[-1]

    def max_notional(self, leverage: int) -> int:
        cap = 0
        for b in self.brackets:
            if b.initial_leverage >= leverage:
                cap = b.notional_cap
        return cap


def _brackets(rows: list[tuple[int, str, int]]) -> tuple[Bracket, ...]:
    """Build brackets from (cap, mmr, leverage); floors and cum follow Binance's recurrence."""
    out: list[Bracket] = []
    floor = 0
    prev_mmr = D(0)
    cum = D(0)
    for i, (cap, mmr_s, lev) in enumerate(rows, start=1):
        mmr = D(mmr_s)
        cum = floor * (mmr - prev_mmr) + cum
        out.append(Bracket(i, lev, cap, floor, mmr, cum))
        floor, prev_mmr = cap, mmr
    return tuple(out)


_MAJOR = [
    (300_000, "0.004", 125),
    (800_000, "0.005", 100),
    (3_000_000, "0.0065", 75),
    (12_000_000, "0.01", 50),
    (70_000_000, "0.02", 25),
    (100_000_000, "0.025", 20),
    (230_000_000, "0.05", 10),
    (480_000_000, "0.1", 5),
    (600_000_000, "0.125", 4),
    (800_000_000, "0.15", 3),
    (1_200_000_000, "0.25", 2),
    (1_800_000_000, "0.5", 1),
]
_ALT = [
    (10_000, "0.005", 75),
    (50_000, "0.01", 50),
    (250_000, "0.02", 25),
    (1_000_000, "0.025", 20),
    (5_000_000, "0.05", 10),
    (10_000_000, "0.1", 5),
    (12_500_000, "0.125", 4),
    (25_000_000, "0.15", 3),
    (50_000_000, "0.25", 2),
    (100_000_000, "0.5", 1),
]


def _spec(**kw: object) -> SymbolSpec:
    return SymbolSpec(**kw)  # type: ignore[arg-type]


SYMBOLS: dict[str, SymbolSpec] = {
    s.symbol: s
    for s in (
        _spec(
            symbol="BTCUSDT",
            base="BTC",
            base_price=D("96500.00"),
            price_precision=2,
            qty_precision=3,
            tick=D("0.10"),
            min_price=D("261.10"),
            max_price=D("809484"),
            step=D("0.001"),
            min_qty=D("0.001"),
            max_qty=D("1000"),
            market_step=D("0.001"),
            market_min_qty=D("0.001"),
            market_max_qty=D("120"),
            min_notional=D("100"),
            multiplier_up=D("1.0500"),
            multiplier_down=D("0.9500"),
            max_num_orders=200,
            onboard=1569398400000,
            minute_volume=180.0,
            brackets=_brackets(_MAJOR),
        ),
        _spec(
            symbol="ETHUSDT",
            base="ETH",
            base_price=D("3420.00"),
            price_precision=2,
            qty_precision=3,
            tick=D("0.01"),
            min_price=D("39.86"),
            max_price=D("306177"),
            step=D("0.001"),
            min_qty=D("0.001"),
            max_qty=D("10000"),
            market_step=D("0.001"),
            market_min_qty=D("0.001"),
            market_max_qty=D("2000"),
            min_notional=D("20"),
            multiplier_up=D("1.0500"),
            multiplier_down=D("0.9500"),
            max_num_orders=200,
            onboard=1569398400000,
            minute_volume=2600.0,
            brackets=_brackets(_MAJOR),
        ),
        _spec(
            symbol="BNBUSDT",
            base="BNB",
            base_price=D("915.400"),
            price_precision=3,
            qty_precision=2,
            tick=D("0.010"),
            min_price=D("6.600"),
            max_price=D("100000"),
            step=D("0.01"),
            min_qty=D("0.01"),
            max_qty=D("100000"),
            market_step=D("0.01"),
            market_min_qty=D("0.01"),
            market_max_qty=D("2000"),
            min_notional=D("5"),
            multiplier_up=D("1.1500"),
            multiplier_down=D("0.8500"),
            max_num_orders=200,
            onboard=1581465600000,
            minute_volume=900.0,
            brackets=_brackets(_ALT),
        ),
        _spec(
            symbol="SOLUSDT",
            base="SOL",
            base_price=D("187.3500"),
            price_precision=4,
            qty_precision=0,
            tick=D("0.0100"),
            min_price=D("0.4200"),
            max_price=D("6857"),
            step=D("1"),
            min_qty=D("1"),
            max_qty=D("1000000"),
            market_step=D("1"),
            market_min_qty=D("1"),
            market_max_qty=D("5000"),
            min_notional=D("5"),
            multiplier_up=D("1.1500"),
            multiplier_down=D("0.8500"),
            max_num_orders=200,
            onboard=1600300800000,
            minute_volume=9000.0,
            brackets=_brackets(_ALT),
        ),
        _spec(
            symbol="XRPUSDT",
            base="XRP",
            base_price=D("2.3510"),
            price_precision=4,
            qty_precision=1,
            tick=D("0.0001"),
            min_price=D("0.0143"),
            max_price=D("100000"),
            step=D("0.1"),
            min_qty=D("0.1"),
            max_qty=D("10000000"),
            market_step=D("0.1"),
            market_min_qty=D("0.1"),
            market_max_qty=D("2000000"),
            min_notional=D("5"),
            multiplier_up=D("1.1500"),
            multiplier_down=D("0.8500"),
            max_num_orders=200,
            onboard=1578960000000,
            minute_volume=700000.0,
            brackets=_brackets(_ALT),
        ),
    )
}

ASSETS = ("USDT", "USDC", "FDUSD", "BNB", "ETH", "BTC")
TAKER_FEE = D("0.0005")
MAKER_FEE = D("0.0002")
LIQUIDATION_FEE = D("0.012500")
DEFAULT_LEVERAGE = 20


def exchange_info_symbol(s: SymbolSpec) -> dict[str, object]:
    return {
        "symbol": s.symbol,
        "pair": s.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": s.onboard,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": s.base,
        "quoteAsset": "USDT",
        "marginAsset": "USDT",
        "pricePrecision": s.price_precision,
        "quantityPrecision": s.qty_precision,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": ["PoW"] if s.base == "BTC" else ["Layer-1"],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": str(LIQUIDATION_FEE),
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": str(s.min_price),
                "maxPrice": str(s.max_price),
                "tickSize": str(s.tick),
            },
            {"filterType": "LOT_SIZE", "minQty": str(s.min_qty), "maxQty": str(s.max_qty), "stepSize": str(s.step)},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": str(s.market_min_qty),
                "maxQty": str(s.market_max_qty),
                "stepSize": str(s.market_step),
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": s.max_num_orders},
            {"filterType": "MIN_NOTIONAL", "notional": str(s.min_notional)},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": str(s.multiplier_up),
                "multiplierDown": str(s.multiplier_down),
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
            "TRAILING_STOP_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD", "RPI"],
        "permissionSets": ["GRID", "COPY"],
    }


def bracket_json(s: SymbolSpec) -> dict[str, object]:
    return {
        "symbol": s.symbol,
        "brackets": [
            {
                "bracket": b.bracket,
                "initialLeverage": b.initial_leverage,
                "notionalCap": b.notional_cap,
                "notionalFloor": b.notional_floor,
                "maintMarginRatio": float(b.mmr),
                # an int when whole: the SDK's single-symbol model declares cum as StrictInt
                "cum": int(b.cum) if b.cum == b.cum.to_integral_value() else float(b.cum),
            }
            for b in s.brackets
        ],
    }
