"""The official Binance SDK (binance-sdk-derivatives-trading-usds-futures), unchanged, against the
paper exchange: every response must parse into the SDK's strict models (the SDK logs a warning and
falls back to relaxed or raw parsing otherwise, which this test treats as a failure)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from binance_common.configuration import ConfigurationRestAPI
from binance_common.errors import BadRequestError
from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import (
    DerivativesTradingUsdsFutures,
)
from binance_sdk_derivatives_trading_usds_futures.rest_api.models import (
    ChangeMarginTypeMarginTypeEnum,
    KlineCandlestickDataIntervalEnum,
    ModifyOrderSideEnum,
    NewAlgoOrderAlgoTypeEnum,
    NewAlgoOrderClosePositionEnum,
    NewAlgoOrderSideEnum,
    NewAlgoOrderTypeEnum,
    NewAlgoOrderWorkingTypeEnum,
    NewOrderNewOrderRespTypeEnum,
    NewOrderSideEnum,
    NewOrderTimeInForceEnum,
    NewOrderTypeEnum,
)

from paper.embedded import EmbeddedPaper, PaperAdmin

SYM = "ETHUSDT"


@pytest.fixture
def sdk(paper: EmbeddedPaper, admin: PaperAdmin) -> tuple[Any, str]:
    acct = admin.create_account(balance="10000")
    cfg = ConfigurationRestAPI(api_key=acct["apiKey"], api_secret=acct["apiSecret"], base_path=paper.url, timeout=5000)
    return DerivativesTradingUsdsFutures(config_rest_api=cfg).rest_api, acct["apiKey"]


def strict(resp: Any) -> Any:
    """The response data, which must be the SDK's model (not a raw dict or list of dicts)."""
    data = resp.data()
    items = data if isinstance(data, list) else [data]
    for item in items:
        assert not isinstance(item, dict), f"SDK fell back to a raw dict: {item}"
    return data


def test_official_sdk_scenario(
    sdk: tuple[Any, str], admin: PaperAdmin, pinned: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    api, key = sdk
    caplog.set_level(logging.WARNING)
    admin.set_mark(SYM, "3400")
    pinned.append(SYM)

    # market data
    assert strict(api.check_server_time()).server_time > 0
    info = strict(api.exchange_information())
    assert {s.symbol for s in info.symbols} >= {"BTCUSDT", SYM}
    kl = api.kline_candlestick_data(
        symbol=SYM, interval=KlineCandlestickDataIntervalEnum["INTERVAL_1h"].value, limit=5
    ).data()
    assert len(kl) == 5
    pi = strict(api.mark_price(symbol=SYM))
    assert pi.actual_instance.mark_price == "3400.00000000"
    strict(api.get_funding_rate_history(symbol=SYM, limit=3))
    strict(api.notional_and_leverage_brackets(symbol=SYM))

    # settings
    lev = strict(api.change_initial_leverage(symbol=SYM, leverage=10))
    assert lev.leverage == 10
    strict(api.change_margin_type(symbol=SYM, margin_type=ChangeMarginTypeMarginTypeEnum["ISOLATED"].value))
    with pytest.raises(BadRequestError) as e:
        api.change_margin_type(symbol=SYM, margin_type=ChangeMarginTypeMarginTypeEnum["ISOLATED"].value)
    assert e.value.status_code == -4046
    strict(api.change_margin_type(symbol=SYM, margin_type=ChangeMarginTypeMarginTypeEnum["CROSSED"].value))
    assert strict(api.get_current_position_mode()).dual_side_position is False
    strict(api.futures_account_configuration())
    strict(api.symbol_configuration(symbol=SYM))
    strict(api.user_commission_rate(symbol=SYM))

    # market order, then SL and TP through the algo API
    o = strict(
        api.new_order(
            symbol=SYM,
            side=NewOrderSideEnum["BUY"].value,
            type=NewOrderTypeEnum["MARKET"].value,
            quantity=0.5,
            new_order_resp_type=NewOrderNewOrderRespTypeEnum["RESULT"].value,
            new_client_order_id="sdk-open-1",
        )
    )
    assert (o.status, o.executed_qty, o.cum_qty) == ("FILLED", "0.500", "0.500")
    sl = strict(
        api.new_algo_order(
            algo_type=NewAlgoOrderAlgoTypeEnum["CONDITIONAL"].value,
            symbol=SYM,
            side=NewAlgoOrderSideEnum["SELL"].value,
            type=NewAlgoOrderTypeEnum["STOP_MARKET"].value,
            trigger_price=3300.0,
            close_position=NewAlgoOrderClosePositionEnum["TRUE"].value,
            working_type=NewAlgoOrderWorkingTypeEnum["MARK_PRICE"].value,
            client_algo_id="sdk-sl-1",
        )
    )
    tp = strict(
        api.new_algo_order(
            algo_type=NewAlgoOrderAlgoTypeEnum["CONDITIONAL"].value,
            symbol=SYM,
            side=NewAlgoOrderSideEnum["SELL"].value,
            type=NewAlgoOrderTypeEnum["TAKE_PROFIT_MARKET"].value,
            trigger_price=3600.0,
            close_position=NewAlgoOrderClosePositionEnum["TRUE"].value,
        )
    )
    assert sl.algo_status == "NEW"
    opens = strict(api.current_all_algo_open_orders(symbol=SYM))
    assert {a.algo_id for a in opens} == {sl.algo_id, tp.algo_id}

    # account, positions, open orders
    acct = strict(api.account_information_v3())
    assert [p.symbol for p in acct.positions] == [SYM]
    strict(api.account_information_v2())
    strict(api.futures_account_balance_v3())
    strict(api.futures_account_balance_v2())
    pos = strict(api.position_information_v3(symbol=SYM))
    assert pos[0].position_amt == "0.500"
    pos2 = strict(api.position_information_v2(symbol=SYM))
    assert (pos2[0].leverage, pos2[0].margin_type) == ("10", "cross")

    # a LIMIT order: modify it, then cancel it
    lim = strict(
        api.new_order(
            symbol=SYM,
            side=NewOrderSideEnum["BUY"].value,
            type=NewOrderTypeEnum["LIMIT"].value,
            quantity=0.1,
            price=3300.0,
            time_in_force=NewOrderTimeInForceEnum["GTC"].value,
        )
    )
    assert [x.order_id for x in strict(api.current_all_open_orders(symbol=SYM))] == [lim.order_id]
    mod = strict(
        api.modify_order(
            symbol=SYM, side=ModifyOrderSideEnum["BUY"].value, quantity=0.2, price=3310.0, order_id=lim.order_id
        )
    )
    assert (mod.orig_qty, mod.price) == ("0.200", "3310.00")
    with pytest.raises(BadRequestError) as e:
        api.modify_order(
            symbol=SYM, side=ModifyOrderSideEnum["BUY"].value, quantity=0.2, price=3310.0, order_id=lim.order_id
        )
    assert e.value.status_code == -5027
    c = strict(api.cancel_order(symbol=SYM, order_id=lim.order_id))
    assert c.status == "CANCELED"
    with pytest.raises(BadRequestError) as e:
        api.cancel_order(symbol=SYM, order_id=lim.order_id)
    assert e.value.status_code == -2011
    q = strict(api.query_order(symbol=SYM, orig_client_order_id="sdk-open-1"))
    assert q.status == "FILLED"
    with pytest.raises(BadRequestError) as e:
        api.new_order(
            symbol=SYM, side=NewOrderSideEnum["BUY"].value, type=NewOrderTypeEnum["STOP_MARKET"].value, quantity=0.1
        )
    assert e.value.status_code == -4120

    # the SL fires once the mark is moved past it
    moved = admin.set_mark(SYM, "3290")
    assert moved["triggered"] == [sl.algo_id]
    qa = strict(api.query_algo_order(algo_id=sl.algo_id))
    assert qa.algo_status == "FINISHED"
    assert qa.actual_order_id
    assert strict(api.position_information_v3(symbol=SYM))[0].position_amt == "0.000"  # TP still open
    c = strict(api.cancel_algo_order(algo_id=tp.algo_id))
    assert (c.code, c.msg) == ("200", "success")
    assert strict(api.position_information_v3(symbol=SYM)) == []
    with pytest.raises(BadRequestError) as e:
        api.query_algo_order(algo_id=123)
    assert e.value.status_code == -2013

    # funding via the market clock
    strict(
        api.new_order(
            symbol=SYM, side=NewOrderSideEnum["SELL"].value, type=NewOrderTypeEnum["MARKET"].value, quantity=0.3
        )
    )
    admin.advance(8 * 3_600_000)
    inc = strict(api.get_income_history(income_type="FUNDING_FEE"))
    assert len(inc) == 1
    assert inc[0].income_type == "FUNDING_FEE"
    trades = strict(api.account_trade_list(symbol=SYM))
    assert len(trades) == 3
    strict(api.all_orders(symbol=SYM))
    strict(api.query_all_algo_orders(symbol=SYM))

    # the rest of the surface AIQT touches
    strict(api.symbol_price_ticker(symbol=SYM))
    t24 = strict(api.ticker24hr_price_change_statistics(symbol=SYM)).actual_instance
    assert t24.last_price == "3290.00"
    bt = strict(api.symbol_order_book_ticker(symbol=SYM)).actual_instance
    assert (bt.bid_price, bt.ask_price) == ("3290.00", "3290.01")
    book = strict(api.order_book(symbol=SYM, limit=5))
    assert len(book.bids) == 5
    assert book.asks[0][0] == "3290.01"
    strict(api.get_funding_rate_info())
    api.test_connectivity()
    strict(
        api.test_order(
            symbol=SYM, side=NewOrderSideEnum["BUY"].value, type=NewOrderTypeEnum["MARKET"].value, quantity=0.1
        )
    )
    lim = strict(
        api.new_order(
            symbol=SYM,
            side=NewOrderSideEnum["BUY"].value,
            type=NewOrderTypeEnum["LIMIT"].value,
            quantity=0.1,
            price=3200.0,
            time_in_force=NewOrderTimeInForceEnum["GTC"].value,
            new_client_order_id="sdk-lim-2",
        )
    )
    assert strict(api.query_current_open_order(symbol=SYM, orig_client_order_id="sdk-lim-2")).order_id == lim.order_id
    strict(api.cancel_all_open_orders(symbol=SYM))
    strict(
        api.new_algo_order(
            algo_type=NewAlgoOrderAlgoTypeEnum["CONDITIONAL"].value,
            symbol=SYM,
            side=NewAlgoOrderSideEnum["BUY"].value,
            type=NewAlgoOrderTypeEnum["STOP_MARKET"].value,
            trigger_price=3500.0,
            close_position=NewAlgoOrderClosePositionEnum["TRUE"].value,
        )
    )
    strict(api.cancel_all_algo_open_orders(symbol=SYM))
    strict(
        api.new_order(
            symbol=SYM, side=NewOrderSideEnum["BUY"].value, type=NewOrderTypeEnum["MARKET"].value, quantity=0.3
        )
    )
    assert strict(api.change_position_mode(dual_side_position="true")).code == 200
    assert strict(api.get_current_position_mode()).dual_side_position is True
    strict(api.position_information_v3())

    bad = [
        r.getMessage()
        for r in caplog.records
        if "did not match" in r.getMessage() or "Failed to parse" in r.getMessage()
    ]
    assert bad == []
    st = admin.state(key)
    assert {a["algoStatus"] for a in st["algoOrders"]} == {"FINISHED", "CANCELED"}
