"""The CLI's output: replies and events as readable tables and lines (`aiqt account`, `aiqt watch`,
`aiqt audit`). Pure functions of the reply data; `--json` bypasses them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from schemas import codec


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _when(ms: Any) -> str:
    if not isinstance(ms, int) or ms <= 0:
        return _cell(ms)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Aligned columns; numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [
        all(isinstance(row[i], int | Decimal) and not isinstance(row[i], bool) for row in rows if row[i] is not None)
        and bool(rows)
        for i in range(len(headers))
    ]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(row) for row in cells)]


def pairs(items: Sequence[tuple[str, Any]]) -> list[str]:
    width = max(len(k) for k, _ in items)
    return [f"{k.ljust(width)}  {_cell(v)}" for k, v in items]


def render_account(data: dict[str, Any]) -> list[str]:
    info = data.get("accountInfo") or {}
    out = pairs(
        [
            ("wallet balance", info.get("totalWalletBalance")),
            ("unrealized PnL", info.get("totalUnrealizedProfit")),
            ("margin balance", info.get("totalMarginBalance")),
            ("available", info.get("availableBalance")),
            ("position margin", info.get("totalPositionInitialMargin")),
            ("order margin", info.get("totalOpenOrderInitialMargin")),
            ("hedge mode", info.get("isHedgeMode")),
        ]
    )
    balances = data.get("balances") or []
    if balances:
        out += ["", "Balances"]
        out += table(
            ["currency", "balance", "available", "unrealizedPnl"],
            [[b["currency"], b["balance"], b["available"], b["unrealizedPnl"]] for b in balances],
        )
    positions = data.get("positions") or []
    out += ["", "Positions" if positions else "Positions: none"]
    if positions:
        out += table(
            ["symbol", "direction", "qty", "entry", "mark", "liquidation", "uPnL", "ROE %", "lev", "margin"],
            [
                [
                    p["symbol"],
                    p["direction"],
                    p["quantity"],
                    p["entryPrice"],
                    p["markPrice"],
                    p["liquidationPrice"],
                    p["unrealizedPnl"],
                    p["roe"],
                    p["leverage"],
                    p["marginType"],
                ]
                for p in positions
            ],
        )
    orders = data.get("activeOrders") or []
    out += ["", "Open orders" if orders else "Open orders: none"]
    if orders:
        out += table(
            ["orderId", "symbol", "type", "side", "price", "stopPrice", "qty", "filled", "status", "time (UTC)"],
            [
                [
                    o["orderId"],
                    o["symbol"],
                    o["type"],
                    o["side"],
                    o["price"],
                    o["stopPrice"],
                    o["origQty"],
                    o["executedQty"],
                    o["status"],
                    _when(o["time"]),
                ]
                for o in orders
            ],
        )
    return out


def render_klines(data: dict[str, Any]) -> list[str]:
    klines = data.get("klines") or []
    head = [f"{data.get('symbol')} {data.get('interval')} ({len(klines)} klines)"]
    return head + table(
        ["open time (UTC)", "open", "high", "low", "close", "volume"],
        [[_when(k["time"]), k["open"], k["high"], k["low"], k["close"], k["volume"]] for k in klines],
    )


def render_funding(data: dict[str, Any]) -> list[str]:
    current = data.get("currentRate") or {}
    out = pairs(
        [
            ("symbol", data.get("symbol")),
            ("funding rate", current.get("rate")),
            ("as of (UTC)", _when(current.get("time"))),
            ("next funding (UTC)", _when(current.get("nextFundingTime"))),
        ]
    )
    history = data.get("historyRates")
    if history:
        out += ["", "History"]
        rows = [[_when(h["time"]), h["rate"], h["realized"]] for h in history]
        out += table(["time (UTC)", "rate", "realized"], rows)
    return out


_ORDER_COLUMNS = ["leg", "orderId", "type", "side", "status", "qty", "filled", "avgPrice", "stopPrice", "clientOrderId"]


def _order_row(leg: str, o: dict[str, Any]) -> list[Any]:
    return [
        leg,
        o.get("orderId"),
        o.get("type"),
        o.get("side"),
        o.get("status"),
        o.get("origQty"),
        o.get("executedQty"),
        o.get("avgPrice"),
        o.get("stopPrice"),
        o.get("clientOrderId"),
    ]


def render_open(data: dict[str, Any]) -> list[str]:
    rows = [_order_row("entry", data["market"])]
    for leg, key in (("stop loss", "stopLoss"), ("take profit", "takeProfit")):
        if data.get(key):
            rows.append(_order_row(leg, data[key]))
    out = table(_ORDER_COLUMNS, rows)
    protection = data.get("protection")
    if protection:
        out += ["", f"PROTECTION {protection['status']}: {', '.join(protection['failedLegs'])} ({protection['error']})"]
    return out


def render_order(data: dict[str, Any]) -> list[str]:
    return table(_ORDER_COLUMNS, [_order_row("order", data)])


def render_close(data: dict[str, Any]) -> list[str]:
    summary = [
        ("executed price", data.get("executedPrice")),
        ("slippage", data.get("slippage")),
        ("remaining position", data.get("remainingPosition")),
        ("position closed", data.get("positionClosed")),
    ]
    return [*render_order(data), "", *pairs(summary)]


def render_halt(data: dict[str, Any]) -> list[str]:
    canceled = [
        [o["symbol"], o["orderId"], o["type"], "algo (SL/TP)" if o["algo"] else "order", o["clientOrderId"]]
        for o in data.get("canceledOrders", [])
    ]
    closed = [
        [p["symbol"], p["positionSide"], p["quantity"], p["orderId"], p["status"], p["clientOrderId"]]
        for p in data.get("closedPositions", [])
    ]
    out = [f"cancelled {len(canceled)} order(s)"]
    if canceled:
        out += table(["symbol", "orderId", "type", "kind", "clientOrderId"], canceled)
    if data.get("flatten"):
        out += ["", f"closed {len(closed)} position(s)"]
        if closed:
            out += table(["symbol", "positionSide", "quantity", "orderId", "status", "clientOrderId"], closed)
    return out


def render_status(data: dict[str, Any]) -> list[str]:
    rows = [_order_row(o["leg"], o["order"]) for o in data.get("orders", [])]
    out = pairs([("command id", data.get("commandId")), ("searched", ", ".join(data.get("searchedSymbols", [])))])
    return [*out, "", *table(_ORDER_COLUMNS, rows)] if rows else out


def render_pairs(data: Any) -> list[str]:
    if isinstance(data, dict) and data:
        return pairs(list(data.items()))
    return [] if data is None else [_cell(data)]


def render_event(event: dict[str, Any]) -> str:
    """One line per event: time, seq, type, and what happened."""
    stamp = time.strftime("%H:%M:%S", time.gmtime(event.get("time", 0) / 1000)) + f".{event.get('time', 0) % 1000:03d}"
    data = {k: format(v, "f") if isinstance(v, Decimal) else v for k, v in (event.get("data") or {}).items()}
    kind = event.get("type")
    if kind == "order":
        what = (
            f"{data['symbol']} {data['side']} {data['type']} {data['status']} {data['executedQty']}/{data['origQty']}"
            f" @ {data['avgPrice'] if Decimal(str(data['avgPrice'])) else data['price']} (order {data['orderId']})"
        )
    elif kind == "position":
        what = f"{data['symbol']} {data['direction']} {data['quantity']} entry {data['entryPrice']}"
        what += f" uPnL {data['unrealizedPnl']}"
    elif kind == "balance":
        what = f"{data['currency']} {data['balance']} (change {data['change']}) {data['reason']}"
    elif kind == "protection":
        what = f"{data['leg']} of command {data['commandId']} fired: {data['symbol']} {data['quantity']}"
        what += f" @ {data['fillPrice']}"
    elif kind == "stream":
        what = f"{data['status']} {data.get('reason', '')}".strip()
    elif kind == "market":
        what = f"{event.get('symbol')} {event.get('stream')} {codec.dumps(data).decode()}"
    else:
        what = codec.dumps(data).decode()
    seq = f"#{event['seq']}" if "seq" in event else "-"
    return f"{stamp} {seq} {kind} {what}"
