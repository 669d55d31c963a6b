"""Stream fan-out of the paper exchange: delay from an event's E to a client receiving it.

Run by hand (not a test; loopback only, stops by itself):

    .venv/bin/python -m bench.paper_streams                       # 50 clients, 20 orders/s, 30 s
    .venv/bin/python -m bench.paper_streams --clients 50 --orders-per-s 20 --seconds 30

It starts the paper exchange in a subprocess (rate limits off, a temporary SQLite db), connects
`--clients` WebSocket clients to /market/stream, each subscribed to <s>@markPrice@1s and
<s>@kline_1m for every symbol, plus one client on the account's user data (/private/ws), and
places `--orders-per-s` signed MARKET orders per second from a separate process. Each client
stamps every frame on arrival (wall clock, ms) and subtracts the frame's E. It prints p50/p99/max
per stream kind, checks that nothing was dropped (every client got every market frame of the
measured window, the user stream got NEW + TRADE for every order, no connection was closed),
and writes a JSON report to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import json
import multiprocessing as mp
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from bench.paper_throughput import KEY, RESULTS, signed, start_server
from harness.servers import free_port

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT")
WARMUP_S = 3.0


def place_orders(port: int, per_second: float, seconds: float, placed: Any) -> None:
    """Signed MARKET orders at a steady rate (alternating sides), in a process of its own."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    start = time.monotonic()
    n = 0
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * per_second)
        while n < due:
            side = "BUY" if n % 2 == 0 else "SELL"
            params = {"symbol": "ETHUSDT", "side": side, "type": "MARKET", "quantity": "0.010"}
            conn.request(
                "POST", signed("/fapi/v1/order", params, int(time.time() * 1000)), headers={"X-MBX-APIKEY": KEY}
            )
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise SystemExit(f"order failed: {resp.status}")
            n += 1
        time.sleep(max(0.0, (n + 1) / per_second - (time.monotonic() - start)))
    placed.value = n


class Client:
    """One WebSocket client recording (stream, E, delay ms) of every frame it receives."""

    def __init__(self, url: str):
        self.url = url
        self.frames: list[tuple[str, int, float]] = []
        self.closed: str | None = None

    async def run(self, session: aiohttp.ClientSession, until: float) -> None:
        async with session.ws_connect(self.url, max_msg_size=0, heartbeat=None) as ws:
            while (left := until - time.monotonic()) > 0:
                try:
                    msg = await ws.receive(timeout=left)
                except TimeoutError:
                    break
                received = time.time() * 1000
                if msg.type != aiohttp.WSMsgType.TEXT:  # a closed connection is a failure of the run
                    self.closed = f"{msg.type.name} {ws.close_code}"
                    return
                frame = orjson.loads(msg.data)
                data = frame.get("data", frame)
                stream = frame.get("stream") or data.get("e", "?")
                self.frames.append((stream, int(data["E"]), received - data["E"]))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


def client_process(urls: list[str], start_wall: float, seconds: float, out: Any) -> None:
    """Run some of the clients in a process of their own; send back what they recorded."""
    clients = [Client(url) for url in urls]

    async def run_all() -> None:
        async with aiohttp.ClientSession() as session:
            until = time.monotonic() + (start_wall - time.time()) + seconds + 1.5
            tasks = [asyncio.create_task(c.run(session, until)) for c in clients]
            await asyncio.sleep(max(0.0, start_wall - time.time()))
            # the recorder's own garbage collections (its lists grow to ~10^5 tuples) would show
            # up as delivery delays; keep them out of the measurement
            gc.collect()
            gc.freeze()
            gc.disable()
            await asyncio.gather(*tasks)

    uvloop.run(run_all())
    out.put([(c.url, c.frames, c.closed) for c in clients])


def measure(port: int, clients: int, seconds: float, orders_per_s: float, processes: int) -> dict[str, Any]:
    base = f"ws://127.0.0.1:{port}"
    names = [f"{s.lower()}@markPrice@1s" for s in SYMBOLS] + [f"{s.lower()}@kline_1m" for s in SYMBOLS]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": KEY})
    key = json.loads(conn.getresponse().read())["listenKey"]
    urls = [f"{base}/market/stream?streams={'/'.join(names)}"] * clients + [f"{base}/private/ws?listenKey={key}"]
    start_wall = time.time() + WARMUP_S
    results: Any = mp.Queue()
    workers = [
        mp.Process(target=client_process, args=(urls[i::processes], start_wall, seconds, results))
        for i in range(processes)
    ]
    for w in workers:
        w.start()
    time.sleep(max(0.0, start_wall - time.time()))
    placed = mp.Value("i", 0)
    driver = mp.Process(target=place_orders, args=(port, orders_per_s, seconds, placed))
    driver.start()
    recorded = [row for _ in workers for row in results.get(timeout=seconds + 60)]
    for w in [*workers, driver]:
        w.join(10)
    market, user = [], Client("")
    for url, frames, closed in recorded:
        c = Client(url)
        c.frames, c.closed = frames, closed
        if "/private/" in url:
            user = c
        else:
            market.append(c)
    return summarize(market, user, placed.value, start_wall * 1000, start_wall * 1000 + seconds * 1000)


def summarize(market: list[Client], user: Client, orders: int, start: float, end: float) -> dict[str, Any]:
    def in_window(f: tuple[str, int, float]) -> bool:
        return start <= f[1] <= end

    delays: dict[str, list[float]] = {"markPrice@1s": [], "kline_1m": [], "user data": []}
    for c in market:
        for stream, _, delay in filter(in_window, c.frames):
            delays["markPrice@1s" if "markPrice" in stream else "kline_1m"].append(delay)
    delays["user data"] = [d for _, _, d in filter(in_window, user.frames)]
    seen = [{(s, e) for s, e, _ in filter(in_window, c.frames)} for c in market]
    every = set().union(*seen)
    missing = sum(len(every - s) for s in seen)
    order_events = [s for s, _, _ in user.frames if s == "ORDER_TRADE_UPDATE"]
    report: dict[str, Any] = {
        "clients": len(market),
        "orders_placed": orders,
        "market_frames_received": sum(len(c.frames) for c in market),
        "user_frames_received": len(user.frames),
        "distinct_market_frames_in_window": len(every),
        "market_frames_missing": missing,
        "order_updates_expected": 2 * orders,
        "order_updates_received": len(order_events),
        "connections_closed": [c.closed for c in [*market, user] if c.closed],
        "delay_ms": {
            kind: {
                "count": len(v),
                "p50": round(statistics.median(v), 2) if v else None,
                "p99": round(percentile(v, 0.99), 2),
                "max": round(max(v), 2) if v else None,
            }
            for kind, v in delays.items()
        },
    }
    all_delays = [d for v in delays.values() for d in v]
    report["delay_ms"]["all"] = {
        "count": len(all_delays),
        "p50": round(statistics.median(all_delays), 2),
        "p99": round(percentile(all_delays, 0.99), 2),
        "max": round(max(all_delays), 2),
    }
    report["dropped_nothing"] = missing == 0 and len(order_events) == 2 * orders and not report["connections_closed"]
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--orders-per-s", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--client-processes", type=int, default=2, help="processes the clients are spread over")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        proc = start_server(port, Path(d) / "paper.sqlite3")
        try:
            report = measure(port, args.clients, args.seconds, args.orders_per_s, args.client_processes)
        finally:
            proc.terminate()
            proc.wait(15)
    report.update(
        {
            "seconds": args.seconds,
            "orders_per_s": args.orders_per_s,
            "client_processes": args.client_processes,
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1m": os.getloadavg()[0],
        }
    )
    for kind, d in report["delay_ms"].items():
        print(f"{kind:>13}: n={d['count']:>6}  p50={d['p50']} ms  p99={d['p99']} ms  max={d['max']} ms")
    print(
        f"orders placed {report['orders_placed']}, ORDER_TRADE_UPDATE received {report['order_updates_received']}"
        f" (expected {report['order_updates_expected']}); market frames missing {report['market_frames_missing']};"
        f" connections closed {len(report['connections_closed'])}; dropped nothing: {report['dropped_nothing']}"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"paper_streams_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
