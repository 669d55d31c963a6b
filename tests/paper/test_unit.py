"""Pure logic: signing, filters, margin, the price walk, kline windows. No sockets."""

from __future__ import annotations

import itertools
from dataclasses import replace
from decimal import Decimal

import pytest

from paper.auth import check_timestamp, parse_params, sign, signature_payload, split_signature, verify
from paper.engine import check_notional, check_percent_price, check_price, check_qty
from paper.errors import BinanceError
from paper.margin import liquidation_price, maint_margin
from paper.market import INTERVALS, Market, _open_times
from paper.symbols import SYMBOLS

D = Decimal
SECRET = b"2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
ALL = (
    b"symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC&recvWindow=5000&timestamp=1591702613943"
)
BTC = SYMBOLS["BTCUSDT"]


# --- signature (binance-fapi.md §2 vectors) ------------------------------------------------
def test_vector_all_in_query_or_body() -> None:
    expected = "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
    assert sign(SECRET, ALL) == expected
    payload, sig = signature_payload(ALL + b"&signature=" + expected.encode(), b"")
    assert payload == ALL
    assert sig is not None
    assert verify(SECRET, payload, sig)
    payload, sig = signature_payload(b"", ALL + b"&signature=" + expected.encode())
    assert payload == ALL
    assert sig is not None
    assert verify(SECRET, payload, sig)


def test_vector_mixed_query_and_body() -> None:
    q = b"symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC"
    b = b"quantity=1&price=9000&recvWindow=5000&timestamp=1591702613943"
    expected = "30baaf0fab549bbeda7f5ef201898b34122da25fd23c646cac2c529aebe670a4"
    payload, sig = signature_payload(q, b + b"&signature=" + expected.encode())
    assert payload == q + b
    assert sig is not None
    assert verify(SECRET, payload, sig)


def test_signature_case_insensitive_and_rejects_tampering() -> None:
    sig = sign(SECRET, ALL).upper().encode()
    assert verify(SECRET, ALL, sig)
    assert not verify(SECRET, ALL.replace(b"9000", b"9001"), sig)
    assert not verify(SECRET, ALL, b"00")


@pytest.mark.parametrize(
    ("raw", "rest", "sig"),
    [
        (b"a=1&signature=ab", b"a=1", b"ab"),
        (b"signature=ab&a=1", b"a=1", b"ab"),
        (b"a=1&signature=ab&b=2", b"a=1&b=2", b"ab"),
        (b"a=1", b"a=1", None),
        (b"xsignature=1&a=2", b"xsignature=1&a=2", None),
    ],
)
def test_split_signature(raw: bytes, rest: bytes, sig: bytes | None) -> None:
    assert split_signature(raw) == (rest, sig)


def test_params_query_wins_over_body() -> None:
    p = parse_params(b"symbol=BTCUSDT&side=BUY", b"side=SELL&quantity=1", form=True)
    assert p == {"symbol": "BTCUSDT", "side": "BUY", "quantity": "1"}


def test_timestamp_rules() -> None:
    now = 1_700_000_000_000
    check_timestamp({"timestamp": str(now - 4999)}, now)
    with pytest.raises(BinanceError) as e:
        check_timestamp({"timestamp": str(now - 5001)}, now)
    assert (e.value.code, e.value.msg) == (-1021, "Timestamp for this request is outside of the recvWindow.")
    with pytest.raises(BinanceError) as e:
        check_timestamp({"timestamp": str(now + 1000)}, now)
    assert e.value.msg == "Timestamp for this request was 1000ms ahead of the server's time."
    check_timestamp({"timestamp": str(now - 9000), "recvWindow": "10000"}, now)
    with pytest.raises(BinanceError) as e:
        check_timestamp({}, now)
    assert e.value.code == -1102


# --- filters ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("price", "code"),
    [("96500.05", -4014), ("100000.123", -1111), ("0", -4001), ("10", -4013), ("900000", -4002)],
)
def test_price_filter(price: str, code: int) -> None:
    with pytest.raises(BinanceError) as e:
        check_price(BTC, D(price))
    assert e.value.code == code


def test_price_filter_accepts_tick_multiples() -> None:
    check_price(BTC, D("96500.10"))
    check_price(BTC, D("96500.1"))
    check_price(BTC, D("96500"))


@pytest.mark.parametrize(
    ("qty", "market", "code"),
    [("0", False, -4003), ("-1", False, -4003), ("0.0015", False, -1111), ("1001", False, -4005), ("121", True, -4005)],
)
def test_lot_size(qty: str, market: bool, code: int) -> None:
    with pytest.raises(BinanceError) as e:
        check_qty(BTC, D(qty), market)
    assert e.value.code == code


def test_step_not_multiple_gives_4023() -> None:
    odd = replace(BTC, step=D("0.005"), min_qty=D("0.005"))
    with pytest.raises(BinanceError) as e:
        check_qty(odd, D("0.012"), market=False)
    assert e.value.code == -4023


def test_min_notional_and_percent_price() -> None:
    with pytest.raises(BinanceError) as e:
        check_notional(BTC, D("99.9"))
    assert e.value.code == -4164
    assert "no smaller than 100" in e.value.msg
    check_notional(BTC, D("100"))
    with pytest.raises(BinanceError) as e:
        check_percent_price(BTC, D("106"), D("100"))
    assert e.value.code == -4016
    with pytest.raises(BinanceError) as e:
        check_percent_price(BTC, D("94"), D("100"))
    assert e.value.code == -4024
    check_percent_price(BTC, D("104.9"), D("100"))


# --- margin -----------------------------------------------------------------------------------
def test_bracket_cum_recurrence() -> None:
    bs = BTC.brackets
    assert bs[0].cum == 0
    for prev, cur in itertools.pairwise(bs):
        assert cur.notional_floor == prev.notional_cap
        assert cur.cum == cur.notional_floor * (cur.mmr - prev.mmr) + prev.cum
    assert maint_margin(BTC, D("10000")) == D("40.000")


def test_liquidation_price_one_way_long_and_short() -> None:
    q, ep, wb = D("1"), D("100000"), D("10000")
    b = BTC.bracket_for(q * ep)
    lp_long = liquidation_price(BTC, wb, both=q, both_entry=ep)
    assert lp_long == (q * ep - (wb + b.cum)) / (q * (1 - b.mmr))
    lp_short = liquidation_price(BTC, wb, both=-q, both_entry=ep)
    assert lp_short == ((wb + b.cum) + q * ep) / (q * (1 + b.mmr))
    # at the liquidation price the margin balance equals the maintenance margin
    mb = wb + q * (lp_long - ep)
    assert abs(mb - maint_margin(BTC, q * lp_long)) < D("0.0001")


def test_liquidation_price_hedge_and_flat() -> None:
    assert liquidation_price(BTC, D("1000")) == 0
    lp = liquidation_price(BTC, D("5000"), long=D("1"), long_entry=D("100000"))
    assert lp == liquidation_price(BTC, D("5000"), both=D("1"), both_entry=D("100000"))
    # wallet bigger than the position: no liquidation price for a long
    assert liquidation_price(BTC, D("1000000"), both=D("1"), both_entry=D("100000")) == 0


def test_liquidation_price_re_solves_bracket() -> None:
    q, ep = D("10"), D("100000")  # 1M notional: bracket 3 at entry
    lp = liquidation_price(BTC, D("100000"), both=q, both_entry=ep)
    b = BTC.bracket_for(q * lp)
    assert lp == (q * ep - (D("100000") + b.cum)) / (q * (1 - b.mmr))


# --- market -----------------------------------------------------------------------------------
def test_walk_is_deterministic_and_seeded() -> None:
    a, b, c = Market(42), Market(42), Market(7)
    t = 1_790_000_000_000
    for s in SYMBOLS:
        assert a.walk_price(s, t) == b.walk_price(s, t)
        assert a.walk_price(s, t) != c.walk_price(s, t)
        p = a.walk_price(s, t)
        assert D("0.6") * SYMBOLS[s].base_price < p < D("1.6") * SYMBOLS[s].base_price
        assert p % SYMBOLS[s].tick == 0
    # continuous: one second later, the price moved by far less than 1 %
    assert abs(a.walk(s, t + 1000) / a.walk(s, t) - 1) < 0.01


def test_funding_rate_deterministic_and_bounded() -> None:
    m = Market(42)
    for i in range(50):
        r = m.funding_rate("BTCUSDT", i * 8 * 3_600_000)
        assert D("-0.0001") < r < D("0.0003")
        assert r == Market(42).funding_rate("BTCUSDT", i * 8 * 3_600_000)


def test_kline_windows() -> None:
    now = 1_795_500_000_123
    rows = _open_times("1m", None, None, 500, now)
    assert len(rows) == 500
    assert rows[-1][0] <= now <= rows[-1][1]
    assert all(c == o + 60_000 - 1 for o, c in rows)
    rows = _open_times("1w", None, None, 3, now)
    import datetime as dt

    assert all(dt.datetime.fromtimestamp(o / 1000, dt.UTC).weekday() == 0 for o, _ in rows)
    rows = _open_times("1M", None, None, 14, now)
    assert len(rows) == 14
    assert all(dt.datetime.fromtimestamp(o / 1000, dt.UTC).day == 1 for o, _ in rows)
    assert all(rows[i][1] + 1 == rows[i + 1][0] for i in range(13))
    start = now - 10 * 3_600_000
    rows = _open_times("1h", start, None, 1500, now)
    assert rows[0][0] >= start
    assert len(rows) == 10
    assert set(INTERVALS) == {
        "1m",
        "3m",
        "5m",
        "15m",
        "30m",
        "1h",
        "2h",
        "4h",
        "6h",
        "8h",
        "12h",
        "1d",
        "3d",
        "1w",
        "1M",
    }


def test_params_unquoted_and_blank() -> None:
    p = parse_params(b"newClientOrderId=x%3Ay%2Fz&a=&b=1+2", b"", form=False)
    assert p == {"newClientOrderId": "x:y/z", "a": "", "b": "1 2"}
    assert parse_params(b"", b"a=1", form=False) == {}


def test_rows_use_field_names_and_legacy_rows_still_load() -> None:
    """SQLite rows carry each field under its own name; rows in the older wire-key format load."""
    from decimal import Decimal

    from paper.models import Account, Algo, Income, Order, Position, Trade

    order_legacy = {
        "id": 7, "k": "key", "s": "BTCUSDT", "c": "cid", "S": "BUY", "t": "LIMIT", "f": "GTC", "p": "100.5",
        "q": "0.010", "ps": "BOTH", "R": False, "T": 1, "u": 2, "X": "NEW", "z": "0", "Z": "0", "cp": False,
        "V": "EXPIRE_MAKER", "gtd": 0, "wt": "CONTRACT_PRICE", "pP": False, "sp": "0",
    }  # fmt: skip
    order = Order.from_row(order_legacy)
    assert (order.order_id, order.side, order.price, order.orig_qty) == (7, "BUY", Decimal("100.5"), Decimal("0.010"))
    row = order.row()
    assert row["order_id"] == 7 and row["client_id"] == "cid" and row["price"] == "100.5"
    assert not ({"k", "S", "X", "z"} & row.keys())
    assert Order.from_row(row) == order

    account_legacy = {
        "k": "key", "sec": "secret", "name": "n", "start": "100", "bal": "90.5", "dual": True,
        "lev": {"BTCUSDT": 5}, "mt": {"BTCUSDT": "ISOLATED"}, "ut": 3,
        "pos": [{"symbol": "BTCUSDT", "side": "LONG", "amt": "0.1", "entry": "100", "iw": "2", "ut": 3}],
    }  # fmt: skip
    acc = Account.from_row(account_legacy)
    assert acc.balance == Decimal("90.5") and acc.leverage == {"BTCUSDT": 5} and acc.dual
    assert acc.positions[("BTCUSDT", "LONG")].isolated_wallet == Decimal(2)
    assert acc.secret_bytes == b"secret"
    again = Account.from_row(acc.row())
    assert again.row() == acc.row() and "orders" not in acc.row()
    assert Position.from_row(Position("ETHUSDT", "BOTH", Decimal("-1")).row()).amt == Decimal(-1)
    trade = Trade(1, "key", 7, "BTCUSDT", "SELL", "BOTH", Decimal(1), Decimal(2), Decimal("0.1"), Decimal(0), True, 5)
    assert Trade.from_row(trade.row()) == trade
    income = Income(9, "key", "BTCUSDT", "FUNDING_FEE", Decimal("-0.5"), 6, "FUNDING_FEE")
    assert Income.from_row(income.row()) == income
    algo = Algo(
        3, "key", "c", "BTCUSDT", "SELL", "BOTH", "STOP_MARKET", "GTC", Decimal(1), Decimal(90), Decimal(0),
        "MARK_PRICE", False, False, True, 1, 1, callback_rate=None, extreme=Decimal("95"),
    )  # fmt: skip
    assert Algo.from_row(algo.row()) == algo
