"""The console (`/ui`) in a real browser: Playwright for Python driving Debian's Chromium against a
whole stack (paper exchange, worker, streamer, gateway) on a namespace of its own.

What a person would check by watching, checked here by the DOM and by what the paper exchange holds:
sign-in with a key and secret (signed in the page; nothing stored), a position opened through REST
appearing without a reload, its SL and TP drawn on the chart (listed in the chart's legend), a fired
stop closing the position and showing in the feed, halt with flatten leaving nothing open at the
exchange, a read-only key offered no action that would fail, a gateway restart survived with nothing
missed, the page's load time, and 200 events/s arriving without a growing backlog.

Chromium missing (or Playwright): the tests skip here and fail under CI (`.ci/run` installs it).
Screenshots for docs/console.md are written to `$AIQT_CONSOLE_SCREENSHOTS` when set.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiqt.client import sign_request
from bus.events import EventTopology
from gateway.app import create_app
from gateway.settings import ClientKey, GatewaySettings
from harness.servers import ThreadedUvicorn
from harness.stack import Account, Stack, StackFactory
from schemas.enums import Scope
from tests.support.broker import skip_unless_ci

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("AIQT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 15_000
ALL = frozenset({Scope.READ, Scope.TRADE, Scope.ADMIN})
SHOTS = os.environ.get("AIQT_CONSOLE_SCREENSHOTS")
#: What the measurements came to (printed at the end of the module, for docs/console.md).
MEASURED: dict[str, Any] = {}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_unless_ci("Playwright for Python is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        skip_unless_ci(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    if MEASURED:
        print("\nconsole measurements:", json.dumps(MEASURED, indent=1))


@pytest.fixture(scope="module")
def cstack(make_module_stack: StackFactory) -> Stack:
    """A worker, a streamer publishing BTCUSDT market data, and a gateway whose keys are: each account's
    own key with every scope, and per account a read-only key and a read+trade key."""
    s = make_module_stack(accounts=6, workers=1)
    s.start_streamer(stream_symbols=["BTCUSDT"])
    s.gateway = ThreadedUvicorn(create_app(console_settings(s))).start()
    return s


def console_settings(s: Stack, **overrides: Any) -> GatewaySettings:
    keys = []
    for a in s.accounts:
        keys.append(ClientKey(key=a.api_key, secret=a.api_secret, account=a.name, scopes=ALL))
        keys.append(ClientKey(key=f"{a.api_key}-ro", secret=a.api_secret, account=a.name, scopes=frozenset({"read"})))
        keys.append(ClientKey(key=f"{a.api_key}-rt", secret=a.api_secret, account=a.name))
    return s.gateway_settings(**overrides).model_copy(update={"client_keys": keys})


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))

    # console errors (a CSP refusal among them); an HTTP error status or a refused connection is the
    # network's answer, which the page shows
    def console(message: Any) -> None:
        if message.type == "error" and not any(n in message.text for n in ("Failed to load resource", "net::ERR_")):
            errors.append(message.text)

    tab.on("console", console)
    yield tab
    context.close()
    assert errors == [], errors


def ui(stack: Stack) -> str:
    assert stack.gateway is not None
    return stack.gateway.url + "/ui/"


def sign_in(page: Any, stack: Stack, key: str, secret: str) -> None:
    page.goto(ui(stack))
    page.fill("#api-key", key)
    page.fill("#api-secret", secret)
    page.click("#sign-in")
    page.wait_for_selector("#connection[data-state=live]", timeout=WAIT_MS)


def wait_js(page: Any, expression: str, timeout: float = WAIT_MS) -> None:
    """Wait until a JavaScript expression is true in the page. (Playwright's wait_for_function evaluates
    it with eval in the page, which the console's Content-Security-Policy forbids, as it should.)"""
    end = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > end:
            raise AssertionError(f"not true within {timeout / 1000}s: {expression}")
        time.sleep(0.05)


def shot(page: Any, name: str, **kw: Any) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), **kw)


def wait_until(check: Any, timeout: float = 15.0, what: str = "") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def off_loop(fn: Any, *args: Any) -> Any:
    """Call `fn` in a thread of its own: Playwright's sync API keeps an event loop running in this one,
    and the stack's helpers use asyncio.run."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn(*args))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def open_orders(state: dict[str, Any]) -> list[dict[str, Any]]:
    regular = [o for o in state["orders"] if o["status"] in ("NEW", "PARTIALLY_FILLED")]
    return regular + [a for a in state["algoOrders"] if a["algoStatus"] == "NEW"]


def open_positions(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in state["positions"] if Decimal(p["positionAmt"]) != 0]


def open_with_sl_tp(stack: Stack, account: Account, symbol: str = "BTCUSDT") -> dict[str, Any]:
    with stack.client(account) as c:
        reply = c.open_market(symbol, "BUY", "0.010", stop_loss="90000", take_profit="100000")
    assert reply.code == 200, reply.msg
    data: dict[str, Any] = reply.data
    return data


def signed_get(stack: Stack, key: str, secret: str, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
    assert stack.gateway is not None
    query = sign_request(secret, "GET", path, params)
    return httpx.get(f"{stack.gateway.url}{path}?{query}", headers={"X-API-KEY": key}, timeout=10)


# --- the tests -------------------------------------------------------------------------------------


def test_session_and_audit_are_signed_reads_of_the_keys_own_account(cstack: Stack) -> None:
    """The console's two gateway-local reads: who the key is, and its own account's command journal."""
    mine, other = cstack.accounts[-1], cstack.accounts[-2]
    read_only = f"{mine.api_key}-ro"
    session = signed_get(cstack, read_only, mine.api_secret, "/api/session").json()
    assert session["data"] == {"account": mine.name, "key": read_only, "scopes": ["read"], "halted": False}
    assert httpx.get(f"{cstack.gateway.url}/api/session", headers={"X-API-KEY": read_only}).status_code == 401  # type: ignore[union-attr]
    assert signed_get(cstack, read_only, "wrong", "/api/session").json()["code"] == -1022
    cstack.admin.set_mark("BTCUSDT", "95000")
    for account in (mine, other):
        with cstack.client(account) as c:
            assert c.account_summary().code == 200
            assert c.set_leverage("BTCUSDT", 7).code == 200

    def journal(**params: Any) -> list[dict[str, Any]]:
        reply = signed_get(cstack, read_only, mine.api_secret, "/api/audit", params).json()
        assert reply["code"] == 200, reply
        entries: list[dict[str, Any]] = reply["data"]["entries"]
        return entries

    entries = wait_until(lambda: len(journal()) >= 2 and journal(), what="the journal has both commands")
    assert {e["account"] for e in entries} == {mine.name}
    assert {"account.summary", "position.leverage"} <= {e["type"] for e in entries}
    assert "amqpUser" not in entries[0]
    assert {e["type"] for e in journal(writes="true")} == {"position.leverage"}
    assert len(journal(limit=1)) == 1
    bad = signed_get(cstack, read_only, mine.api_secret, "/api/audit", {"limit": "0"}).json()
    assert (bad["code"], bad["msg"]) == (400, "limit: must be an integer from 1 to 1000")
    unknown = signed_get(cstack, read_only, mine.api_secret, "/api/audit", {"account": other.name}).json()
    assert unknown["code"] == 400 and "account: not a parameter" in unknown["msg"]


def test_the_page_loads_in_under_a_second(cstack: Stack, browser: Any) -> None:
    timings = []
    for _ in range(3):  # each in a fresh context: nothing cached
        context = browser.new_context()
        tab = context.new_page()
        tab.goto(ui(cstack))
        tab.wait_for_selector("body[data-ready=true]")
        nav = tab.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
        timings.append(json.loads(nav))
        context.close()
    loads = [t["loadEventEnd"] - t["startTime"] for t in timings]
    MEASURED["page load ms (cold, 3 runs)"] = [round(x, 1) for x in loads]
    assert max(loads) < 1000, loads


def test_sign_in_see_a_position_its_lines_a_fired_stop_and_halt_with_flatten(cstack: Stack, page: Any) -> None:
    account = cstack.take_account()
    off_loop(cstack.streamer_leading, account)
    cstack.admin.set_mark("BTCUSDT", "95000")
    sign_in(page, cstack, account.api_key, account.api_secret)
    assert page.text_content("#account") == account.name
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0

    # a position opened through REST appears without a reload, with its SL and TP on the chart
    opened = open_with_sl_tp(cstack, account)
    row = page.wait_for_selector("#positions tr[data-position=BTCUSDT]", timeout=WAIT_MS)
    assert "LONG" in row.text_content()
    page.wait_for_selector("#chart-lines li[data-line=SL][data-price='90000']", timeout=WAIT_MS)
    page.wait_for_selector("#chart-lines li[data-line=TP][data-price='100000']", timeout=WAIT_MS)
    page.wait_for_selector("#chart-lines li[data-line=entry]", timeout=WAIT_MS)
    page.wait_for_selector("#chart-lines li[data-fills='1']", timeout=WAIT_MS)  # the entry's fill
    orders = {o.get_attribute("data-order") for o in page.query_selector_all("#orders tr[data-order]")}
    assert orders == {str(opened["stopLoss"]["orderId"]), str(opened["takeProfit"]["orderId"])}
    # the mark price moves the row (the streamer's 1 s mark price stream)
    cstack.admin.set_mark("BTCUSDT", "95500")
    page.wait_for_selector("#positions tr[data-position=BTCUSDT][data-mark='95500']", timeout=WAIT_MS)
    pnl = Decimal(page.get_attribute("#positions tr[data-position=BTCUSDT]", "data-pnl"))
    entry = Decimal(page.text_content("#positions tr[data-position=BTCUSDT] [data-col=entry]").replace(",", ""))
    assert pnl == ((Decimal(95500) - entry) * Decimal("0.010")).quantize(Decimal("1e-8"))
    page.wait_for_selector("#journal tr[data-type='order.open_market']", timeout=WAIT_MS)
    shot(page, "console", full_page=True)

    # the mark moves past the stop: the position closes, the feed shows the protection event
    cstack.admin.set_mark("BTCUSDT", "89000")
    page.wait_for_selector("#feed li[data-type=protection]", timeout=WAIT_MS)
    page.wait_for_selector("#positions tr[data-position]", state="detached", timeout=WAIT_MS)
    assert "SL of command" in page.text_content("#feed li[data-type=protection]")
    page.wait_for_selector("#chart-lines li[data-fills='2']", timeout=WAIT_MS)  # and the stop's fill
    shot(page, "stop-fired", full_page=True)

    # halt with flatten, behind a confirmation that says what happens
    cstack.admin.set_mark("BTCUSDT", "95000")
    open_with_sl_tp(cstack, account)
    page.wait_for_selector("#positions tr[data-position=BTCUSDT]", timeout=WAIT_MS)
    wait_js(page, "document.querySelectorAll('#orders tr[data-order]').length >= 2", timeout=WAIT_MS)
    n = len(open_orders(cstack.state(account)))  # the new SL and TP, and the TP the fired stop left behind
    wait_js(page, f"document.querySelectorAll('#orders tr[data-order]').length == {n}", timeout=WAIT_MS)
    page.click("#halt-flatten")
    text = page.text_content("#confirm-text")
    assert "Every open order of account" in text and f"({n} now" in text, text
    assert "every position is closed at the market price (1 now)" in text, text
    shot(page, "confirm-halt")
    page.click("#confirm-ok")
    page.wait_for_selector("#notice:has-text('Account halted')", timeout=WAIT_MS)
    state = cstack.state(account)
    assert open_orders(state) == [] and open_positions(state) == [], state
    page.wait_for_selector("#positions tr[data-position]", state="detached", timeout=WAIT_MS)
    page.wait_for_selector("#journal tr[data-type='account.halt']", timeout=WAIT_MS)
    page.wait_for_selector("#halted", state="visible", timeout=WAIT_MS)

    # resume, and cancel (declined first: nothing happens)
    page.click("#resume")
    assert "opening orders are accepted again" in page.text_content("#confirm-text")
    page.click("#confirm-ok")
    page.wait_for_selector("#notice:has-text('Account resumed')", timeout=WAIT_MS)
    page.wait_for_selector("#halted", state="hidden", timeout=WAIT_MS)
    open_with_sl_tp(cstack, account)
    wait_js(page, "document.querySelectorAll('#orders tr[data-order]').length == 2", timeout=WAIT_MS)
    stop = page.query_selector("#orders tr[data-type=STOP_MARKET]")
    stop.query_selector("[data-action=cancel]").click()
    assert "The position will then have no stop loss." in page.text_content("#confirm-text")
    page.click("#confirm-cancel")
    assert len(open_orders(cstack.state(account))) == 2
    page.query_selector("#orders tr[data-type=STOP_MARKET] [data-action=cancel]").click()
    page.click("#confirm-ok")
    wait_js(page, "document.querySelectorAll('#orders tr[data-order]').length == 1", timeout=WAIT_MS)
    page.query_selector("#positions tr[data-position=BTCUSDT] [data-action=close]").click()
    assert "reduce-only MARKET SELL" in page.text_content("#confirm-text")
    page.click("#confirm-ok")
    page.wait_for_selector("#positions tr[data-position]", state="detached", timeout=WAIT_MS)
    wait_until(lambda: not open_positions(cstack.state(account)), what="the position closed at the exchange")
    # the command journal lists what was done, with outcomes
    page.wait_for_selector("#journal tr[data-type='order.close_market']", timeout=WAIT_MS)
    cancel = page.text_content("#journal tr[data-type='order.cancel']")
    assert "200" in cancel and "ui-cancel-" in cancel, cancel
    shot(page, "journal", full_page=True)

    # sign-out forgets everything
    page.click("#sign-out")
    page.wait_for_selector("#signin-form")
    assert page.is_hidden("#console") and page.input_value("#api-secret") == ""
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0


def test_a_read_only_key_sees_everything_and_no_action(cstack: Stack, page: Any) -> None:
    account = cstack.take_account()
    off_loop(cstack.streamer_leading, account)
    cstack.admin.set_mark("BTCUSDT", "95000")
    open_with_sl_tp(cstack, account)
    sign_in(page, cstack, f"{account.api_key}-ro", account.api_secret)
    page.wait_for_selector("#positions tr[data-position=BTCUSDT]", timeout=WAIT_MS)
    wait_js(page, "document.querySelectorAll('#orders tr[data-order]').length == 2", timeout=WAIT_MS)
    page.wait_for_selector("#journal tr[data-type='order.open_market']", timeout=WAIT_MS)
    assert page.text_content("#scopes") == "read"
    page.wait_for_selector("#feed li[data-type=position]", timeout=WAIT_MS)  # history replayed (since=0)
    page.wait_for_selector("#chart-lines li[data-fills='1']", timeout=WAIT_MS)
    assert page.query_selector_all("[data-action]:visible") == []
    assert page.is_hidden("#admin-actions")
    shot(page, "read-only", full_page=True)
    # the interval picker: 1h candles, the same lines
    page.select_option("#interval", "1h")
    page.wait_for_selector("#chart[data-interval='1h']:not([data-candles='0'])", timeout=WAIT_MS)
    assert page.query_selector("#chart-lines li[data-line=SL][data-price='90000']") is not None
    page.click("#sign-out")

    # read + trade: close and cancel, but no kill switch
    sign_in(page, cstack, f"{account.api_key}-rt", account.api_secret)
    page.wait_for_selector("#positions tr[data-position=BTCUSDT] [data-action=close]", timeout=WAIT_MS)
    assert len(page.query_selector_all("#orders [data-action=cancel]")) == 2
    assert page.is_hidden("#admin-actions")

    # a wrong secret is refused, and says so
    page.click("#sign-out")
    page.fill("#api-key", account.api_key)
    page.fill("#api-secret", "not-the-secret")
    page.click("#sign-in")
    page.wait_for_selector("#signin-error:has-text('Signature for this request is not valid')")


def test_200_events_a_second_leave_no_backlog(cstack: Stack, page: Any) -> None:
    """Synthetic account events (200/s) and ETHUSDT mark prices (50/s), published to the events exchange
    for 5 s by a process of their own: every event is drawn, the feed catches up within a moment of the
    last, the lag from publish to drawn (all of the path: bus, gateway, socket, page) does not grow,
    frames keep coming, nothing is dropped as too slow, and the position row shows the last mark."""
    account = cstack.take_account()
    off_loop(cstack.streamer_leading, account)
    cstack.admin.set_mark("ETHUSDT", "3000")
    with cstack.client(account) as c:
        assert c.open_market("ETHUSDT", "BUY", "0.5").code == 200
    sign_in(page, cstack, account.api_key, account.api_secret)
    page.wait_for_selector("#positions tr[data-position=ETHUSDT]", timeout=WAIT_MS)
    time.sleep(1.5)  # the stream has reconnected with market.ETHUSDT.markPrice; the open's events are in
    page.wait_for_selector("#connection[data-state=live]")
    start = page.evaluate("({seq: consoleStats.lastSeq, rendered: consoleStats.rendered})")
    first_seq = int(start["seq"]) + 1
    rate, seconds = 200, 5.0
    total = int(rate * seconds)
    samples: list[dict[str, Any]] = []

    page.evaluate(
        "consoleStats.maxBacklog = 0; consoleStats.maxFrameGap = 0; consoleStats.frameGaps = []; consoleStats.lags = []"
    )
    args = [cstack.amqp_url, EventTopology(cstack.namespace).exchange, account.name, str(first_seq), str(total)]
    publisher = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, *args, str(rate)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        while publisher.poll() is None:
            samples.append(page.evaluate("({received: consoleStats.received, rendered: consoleStats.rendered})"))
            time.sleep(0.25)
        out, err = publisher.communicate(timeout=30)
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()
    assert publisher.returncode == 0, err.decode()
    published = json.loads(out)
    last_seq = first_seq + total - 1
    wait_js(page, f"consoleStats.renderedSeq >= {last_seq}", timeout=5000)
    caught_up = time.monotonic() - published["end"]
    final = page.evaluate("({...consoleStats})")
    page.wait_for_selector(f"#positions tr[data-position=ETHUSDT][data-mark='{published['mark']}']", timeout=3000)
    shot(page, "burst", full_page=True)

    gaps = sorted(final["frameGaps"])
    lags = final["lags"]
    half = len(lags) // 2
    first, second = statistics.median(lags[:half]), statistics.median(lags[half:])
    backlogs = [x["received"] - x["rendered"] for x in samples]
    elapsed = published["end"] - published["start"]
    MEASURED["burst"] = burst = {
        "events/s published": round(total / elapsed, 1),
        "marks/s published": round(published["marks"] / elapsed, 1),
        "events drawn": final["rendered"] - start["rendered"],
        "caught up after the last publish (s)": round(caught_up, 3),
        "lag publish to drawn, median 1st half / 2nd half, p95, max (ms)": [
            first,
            second,
            sorted(lags)[int(len(lags) * 0.95)],
            max(lags),
        ],
        "most events waiting for a frame": final["maxBacklog"],
        "waiting, sampled every 0.25 s": backlogs,
        "frame gap p50/p95/max (ms)": [statistics.median(gaps), gaps[int(len(gaps) * 0.95)], gaps[-1]],
        "socket closes": final["closes"],
    }
    assert burst["events/s published"] >= 0.9 * rate, f"the publisher could not keep the rate: {burst}"
    assert burst["events drawn"] == total, f"not every event drawn: {burst}"
    assert final["closes"] == [], f"the stream was dropped (4008: too slow): {burst}"
    assert caught_up < 1.0, f"the feed lagged behind the last publish: {burst}"
    assert final["maxBacklog"] < rate, f"a second's worth of events waited for a frame: {burst}"
    assert second <= first + 100, f"the lag grew (a backlog building up): {burst}"
    assert gaps[int(len(gaps) * 0.95)] < 100, f"frames stalled: {burst}"


#: The burst's publisher, run as a process of its own (so that it keeps its rate, and takes no CPU from
#: the gateway's thread in this one): `total` account events at `rate` per second (order events of a
#: made-up order, seq continuing the account's), and an ETHUSDT mark price with every fourth. Prints
#: what it did as JSON.
PUBLISHER = """
import asyncio, json, sys, time
from decimal import Decimal
import aio_pika

url, exchange_name, account, first_seq, total, rate = sys.argv[1:7]
first_seq, total, rate = int(first_seq), int(total), int(rate)


async def main():
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
        start = time.monotonic()
        marks, mark = 0, Decimal("3000")
        for i in range(total):
            now = int(time.time() * 1000)
            event = {"type": "order", "account": account, "seq": first_seq + i, "time": now, "data": {
                "orderId": 9000000 + i, "clientOrderId": f"burst-{i}", "symbol": "ETHUSDT", "side": "BUY",
                "type": "LIMIT", "status": "NEW" if i % 2 == 0 else "CANCELED", "price": "2900.00",
                "avgPrice": "0", "origQty": "0.100", "executedQty": "0", "stopPrice": "0",
                "positionSide": "BOTH", "reduceOnly": False, "updateTime": now, "algo": False,
                "execution": "NEW"}}
            await exchange.publish(aio_pika.Message(json.dumps(event).encode()), routing_key=f"{account}.order")
            if i % 4 == 0:
                mark += Decimal("0.5")
                market = {"type": "market", "stream": "markPrice", "symbol": "ETHUSDT", "time": now,
                          "data": {"markPrice": str(mark), "indexPrice": str(mark), "fundingRate": "0.0001",
                                   "time": now}}
                await exchange.publish(aio_pika.Message(json.dumps(market).encode()),
                                       routing_key="market.ETHUSDT.markPrice")
                marks += 1
            if (i + 1) % 10 == 0:  # pace: 10 events every 10/rate seconds
                await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
        end = time.monotonic()
    # the mark as the page writes it (a JS number)
    print(json.dumps({"start": start, "end": end, "marks": marks, "mark": format(mark.normalize(), "f")}))


asyncio.run(main())
"""


def test_the_page_reconnects_and_misses_nothing(cstack: Stack, page: Any) -> None:
    """The gateway goes away; the stop fires meanwhile; a new gateway comes up on the same port: the page
    says reconnecting, then resynced, and its feed has the fired stop with no seq missing."""
    account = cstack.take_account()
    off_loop(cstack.streamer_leading, account)
    cstack.admin.set_mark("BTCUSDT", "95000")
    open_with_sl_tp(cstack, account)
    sign_in(page, cstack, account.api_key, account.api_secret)
    page.wait_for_selector("#positions tr[data-position=BTCUSDT]", timeout=WAIT_MS)
    assert cstack.gateway is not None
    port = cstack.gateway.port
    cstack.gateway.stop()
    page.wait_for_selector("#connection[data-state=reconnecting]", timeout=WAIT_MS)
    cstack.admin.set_mark("BTCUSDT", "89000")  # fired while the page is cut off
    time.sleep(1.0)
    cstack.gateway = ThreadedUvicorn(create_app(console_settings(cstack)), port=port).start()
    page.wait_for_selector("#connection[data-state=resynced]", timeout=WAIT_MS)
    page.wait_for_selector("#feed li[data-type=protection]", timeout=WAIT_MS)
    page.wait_for_selector("#positions tr[data-position]", state="detached", timeout=WAIT_MS)
    seqs = page.evaluate("[...document.querySelectorAll('#feed li[data-seq]')].map((li) => Number(li.dataset.seq))")
    assert sorted(seqs) == list(range(1, max(seqs) + 1)), seqs  # each once, none missing
    page.wait_for_selector("#connection[data-state=live]", timeout=WAIT_MS)
