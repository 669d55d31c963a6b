"""Issue 13's figures: the governor under a storm, cached reads, the read lane, time to wire.

    .venv/bin/python -m bench.governor            # about 2 minutes
    .venv/bin/python -m bench.governor --quick    # shorter runs, fewer samples

Starts its own paper exchange with Binance's limits ON (2400 weight/min per IP, 300/10 s and
1200/min orders per account) behind a stopwatch (`bench/paper_probe.py`), two workers with the
governor on, and a gateway, as OS processes on loopback on a bench-only bus namespace. Prints the
figures and writes them to bench/results/governor-<time>.json.

Phases:
1. cached klines, concurrency 1: AIQT `GET /api/market/klines` (100 one-minute candles, served from
   the worker's cache) interleaved with the same call straight to the paper exchange; p50 overhead;
2. cached klines, concurrency 64, 2 workers: answers/s;
3. storm: 64 clients polling klines, funding rate (with 3 rows of history) and account summary
   through the 2 workers: answers by status, the exchange's 429/418 count (GET /_paper/limits);
4. bus: the read lane (RpcClient → worker `system.ping`, transient, no confirms) against a bare
   aio-pika RPC loop with the same transient settings, and the write lane (the same ping forced onto
   the quorum queue: persistent, confirms) against the bare loop with those settings; c1 and c64;
5. time to wire: from the REST request to the paper exchange receiving `POST /fapi/v1/order`, for a
   proven first attempt (no Idempotency-Key), for a client key (the look-up first), and for a
   direct signed call; and what the worker adds before the wire (lock, start marker).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx

from aiqt.client import sign_request
from bench import busloop
from bench.stats import server_timing, summary_ms
from harness.fapi import signed_query
from harness.processes import ROOT, ProcessStack

RESULTS = ROOT / "bench" / "results"
KLINES = {"symbol": "BTCUSDT", "interval": "1m", "limit": "100"}
OPEN = "/api/order/open/market"


class GovernorStack(ProcessStack):
    """The bench stack with the paper exchange's Binance limits on, behind the arrival probe."""

    paper_rate_limits = True
    paper_module = "bench.paper_probe"

    def limited(self) -> dict[str, int]:
        body: Any = self.paper_admin("GET", "limits")
        ips = body["ips"].values()
        return {"429": sum(int(ip["count429"]) for ip in ips), "418": sum(int(ip["count418"]) for ip in ips)}

    def arrivals(self) -> dict[str, int]:
        return {k: int(v) for k, v in httpx.get(f"{self.paper_url}/_probe/arrivals", timeout=10).json().items()}


class Client:
    """Signed requests to the gateway and unsigned/signed ones to the paper exchange (aiohttp: less
    client CPU than httpx, which matters on a 2-core machine)."""

    def __init__(self, stack: GovernorStack, session: aiohttp.ClientSession) -> None:
        self.stack = stack
        self.session = session

    async def aiqt(
        self, method: str, path: str, params: dict[str, str] | None = None, body: bytes = b"", **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        k = self.stack.keys
        query = sign_request(k.api_secret, method, path, params, body)
        h = {"X-API-KEY": k.api_key, **headers}
        if body:
            h["Content-Type"] = "application/json"
        async with self.session.request(method, f"{self.stack.gateway_url}{path}?{query}", data=body, headers=h) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read()

    async def direct_klines(self) -> int:
        async with self.session.get(f"{self.stack.paper_url}/fapi/v1/klines?{urlencode(KLINES)}") as r:
            await r.read()
            return r.status

    async def direct_order(self, side: str, client_id: str) -> int:
        k = self.stack.keys
        params = {
            "symbol": "BTCUSDT",
            "side": side,
            "type": "MARKET",
            "quantity": "0.002",
            "newClientOrderId": client_id,
            "newOrderRespType": "RESULT",
        }
        query = signed_query(k.exchange_secret, params)
        url = f"{self.stack.paper_url}/fapi/v1/order?{query}"
        async with self.session.post(url, headers={"X-MBX-APIKEY": k.exchange_key}) as r:
            await r.read()
            return r.status


# --- phases ---------------------------------------------------------------------------------


async def klines_latency(c: Client, n: int) -> dict[str, Any]:
    aiqt: list[float] = []
    direct: list[float] = []
    sources: Counter[str] = Counter()
    stages: list[dict[str, float]] = []
    for _ in range(20):  # warm-up: the cache fills, connections open
        await c.aiqt("GET", "/api/market/klines", KLINES)
        await c.direct_klines()
    for _ in range(n):
        t0 = time.perf_counter()
        status, headers, _ = await c.aiqt("GET", "/api/market/klines", KLINES)
        aiqt.append(time.perf_counter() - t0)
        sources[f"{status} {headers.get('x-aiqt-source', '-')}"] += 1
        stages.append(server_timing(headers.get("server-timing")))
        t0 = time.perf_counter()
        await c.direct_klines()
        direct.append(time.perf_counter() - t0)
    a, d = summary_ms(aiqt), summary_ms(direct)
    timing = {
        k: round(statistics.median(st[k] for st in stages if k in st), 3)
        for k in ("publish", "queue", "worker", "roundtrip")
    }
    return {
        "aiqt": a,
        "direct": d,
        "overhead_p50_ms": round(a["p50"] - d["p50"], 3),
        "sources": dict(sources),
        "server_timing_p50_ms": timing,
    }


async def load(
    c: Client, concurrency: int, seconds: float, kinds: tuple[str, ...], pause_on_429: float = 0.0
) -> dict[str, Any]:
    answers: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    no_retry_after = 0
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    started = time.perf_counter()

    async def one(i: int) -> None:
        nonlocal no_retry_after
        n = 0
        while time.perf_counter() < stop_at:
            n += 1
            kind = kinds[(i + n) % len(kinds)]
            t0 = time.perf_counter()
            if kind == "klines":
                status, headers, _ = await c.aiqt("GET", "/api/market/klines", {**KLINES, "symbol": SYMBOLS[i % 3]})
            elif kind == "funding":
                status, headers, _ = await c.aiqt(
                    "GET", "/api/market/funding-rate", {"symbol": "BTCUSDT", "limit": "3"}
                )
            else:
                status, headers, _ = await c.aiqt("GET", "/api/account/summary")
            latencies.append(time.perf_counter() - t0)
            answers[f"{kind} {status}"] += 1
            sources[f"{kind} {headers.get('x-aiqt-source', '-')}"] += 1
            if status == 429:
                if not headers.get("retry-after", "").isdigit():
                    no_retry_after += 1
                if pause_on_429:
                    await asyncio.sleep(pause_on_429)

    await asyncio.gather(*(one(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    total = sum(answers.values())
    return {
        "seconds": round(elapsed, 2),
        "answers": total,
        "answers_per_s": round(total / elapsed, 1),
        "by_status": dict(sorted(answers.items())),
        "by_source": dict(sorted(sources.items())),
        "latency": summary_ms(latencies),
        "429_without_retry_after": no_retry_after,
    }


SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


async def bus_phase(stack: GovernorStack, n1: int, seconds: float) -> dict[str, Any]:
    from bus import BusSettings, RpcClient

    rpc = RpcClient(BusSettings(amqp_url=stack.amqp_url, bus_namespace=stack.namespace, queue_type="quorum"))
    body = json.dumps({"type": "system.ping", "account": "main", "payload": {}}).encode()
    out: dict[str, Any] = {}
    servers: list[subprocess.Popen[bytes]] = []
    bares: dict[str, busloop.BareRpc] = {}
    queues = []
    try:
        await rpc.start()
        for mode in ("transient", "quorum"):
            queue = f"{stack.namespace}.bare-{mode}"
            queues.append(queue)
            proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
                [sys.executable, "-m", "bench.busloop", "serve", stack.amqp_url, queue, mode],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            servers.append(proc)
            assert proc.stdout is not None
            if b"ready" not in proc.stdout.readline():
                raise RuntimeError(f"bare {mode} echo server did not start")
            bares[mode] = busloop.BareRpc(stack.amqp_url, queue, transient=mode == "transient")
            await bares[mode].start()

        def aiqt(lane: str) -> Any:
            async def call() -> Any:
                reply = await rpc.call("system.ping", body, command_id=uuid.uuid4().hex, timeout=10, lane=lane)
                if reply.code != 200:
                    raise RuntimeError(reply.body)
                return reply

            return call

        pairs = {
            "read lane": (aiqt("read"), bares["transient"].call),
            "write lane": (aiqt("write"), bares["quorum"].call),
        }
        for name, (ours, bare) in pairs.items():
            for fn in (ours, bare):
                await busloop.closed_loop(fn, concurrency=8, count=300, seconds=3)  # warm-up
            row: dict[str, Any] = {}
            for _ in range(2):  # alternate rounds, so background load hits both alike
                for who, fn in (("aiqt", ours), ("bare", bare)):
                    for conc, n in ((1, n1), (64, 20 * n1)):
                        r = await busloop.closed_loop(fn, concurrency=conc, count=n, seconds=seconds)
                        key = f"{who} c{conc}"
                        row.setdefault(key, {"lat": [], "rates": [], "errors": 0})
                        row[key]["lat"] += r["latencies"]
                        row[key]["rates"].append(r["rate"])
                        row[key]["errors"] += r["errors"]
            summary: dict[str, Any] = {
                key: {**summary_ms(v["lat"]), "rate": round(statistics.median(v["rates"]), 1), "errors": v["errors"]}
                for key, v in row.items()
            }
            summary["p50 ratio c1 (aiqt/bare)"] = round(summary["aiqt c1"]["p50"] / summary["bare c1"]["p50"], 3)
            summary["rate ratio c64 (aiqt/bare)"] = round(summary["aiqt c64"]["rate"] / summary["bare c64"]["rate"], 3)
            out[name] = summary
    finally:
        for bare_client in bares.values():
            await bare_client.close()
        await rpc.close()
        for proc in servers:
            proc.terminate()
            proc.wait(10)
        await busloop.delete(stack.amqp_url, queues, [])
    return out


async def time_to_wire(stack: GovernorStack, c: Client, n: int) -> dict[str, Any]:
    """Open 0.002 BTCUSDT, alternating BUY and SELL so the position stays small."""
    sent: dict[str, dict[str, Any]] = {"first attempt": {}, "client key": {}, "direct": {}}
    timing: dict[str, list[dict[str, float]]] = {"first attempt": [], "client key": []}
    for i in range(n + 5):
        # Paced: 3 orders per 150 ms stays under the account's 300 orders / 10 s (with the governor's
        # margins); this phase measures one order's way to the wire, not the order rate.
        pace = asyncio.get_running_loop().create_task(asyncio.sleep(0.15))
        side = ("BUY", "SELL")[i % 2]
        for variant in ("first attempt", "client key", "direct"):
            if variant == "direct":
                cid = f"bench-{uuid.uuid4().hex[:20]}"
                t0 = time.time_ns()
                status = await c.direct_order(side, cid)
                if i >= 5 and status == 200:
                    sent[variant][cid] = t0
                continue
            body = json.dumps({"symbol": "BTCUSDT", "side": side, "quantity": "0.002"}).encode()
            extra = {"Idempotency-Key": uuid.uuid4().hex} if variant == "client key" else {}
            t0 = time.time_ns()
            status, headers, raw = await c.aiqt("POST", OPEN, None, body, **extra)
            if status != 200:
                raise RuntimeError(f"{variant}: {status} {raw[:200]!r}")
            if i >= 5:  # the first ones warm the worker's position-mode cache and connections
                sent[variant][json.loads(raw)["data"]["market"]["clientOrderId"]] = t0
                timing[variant].append(server_timing(headers.get("server-timing")))
        await pace
    arrivals = stack.arrivals()
    out: dict[str, Any] = {}
    for variant, by_id in sent.items():
        wire = [(arrivals[cid] - t0) / 1e9 for cid, t0 in by_id.items() if cid in arrivals]
        out[variant] = {"to_wire": summary_ms(wire), "samples": len(wire)}
        if variant in timing:
            stages = timing[variant]
            out[variant]["server_timing_p50_ms"] = {
                k: round(statistics.median(s[k] for s in stages if k in s), 3) for k in ("publish", "queue", "worker")
            }
    return out


async def worker_pre_wire(stack: GovernorStack, n: int) -> dict[str, Any]:
    """What a worker does on the bus before the order: the command lock and the start marker."""
    from bus.connection import ClusterConnection
    from bus.lock import CommandLocks
    from bus.marker import StartMarkers
    from bus.topology import Topology

    async def nothing(_: Any) -> None:
        return None

    conn = ClusterConnection(stack.amqp_url, name="aiqt-bench-marker", on_connect=nothing)
    await conn.start()
    topology = Topology(stack.namespace, "quorum")
    locks, markers = CommandLocks(conn, topology), StartMarkers(conn, topology)
    lock_t: list[float] = []
    mark_t: list[float] = []
    names: list[str] = []
    try:
        for _ in range(n):
            cid = f"bench.{uuid.uuid4().hex}"
            names.append(markers.queue(cid))
            t0 = time.perf_counter()
            async with locks.hold(cid, wait=5):
                t1 = time.perf_counter()
                await markers.mark(cid)
                t2 = time.perf_counter()
            lock_t.append(t1 - t0)
            mark_t.append(t2 - t1)
    finally:
        await asyncio.sleep(0.2)
        await busloop.delete(stack.amqp_url, names, [])
        await conn.close()
    return {"lock": summary_ms(lock_t), "marker": summary_ms(mark_t)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stack = GovernorStack(os.environ.get("AIQT_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    result: dict[str, Any] = {"started": datetime.now(UTC).isoformat(), "quick": args.quick, "cpus": os.cpu_count()}
    try:
        stack.start_paper()
        stack.start_worker()
        stack.start_worker()
        stack.start_gateway()
        stack.wait_ready(2)
        await asyncio.sleep(2.5)  # each worker reads the live worker count (2) before the load
        limited0 = stack.limited()
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            c = Client(stack, session)
            q, only = args.quick, set(args.only.split(","))
            if "klines" in only:
                result["klines c1"] = await klines_latency(c, 150 if q else 400)
                print("klines c1", json.dumps(result["klines c1"]), flush=True)
                result["klines c64"] = await load(c, 64, 5 if q else 10, ("klines",))
                print("klines c64", json.dumps(result["klines c64"]), flush=True)
            if "storm" in only:
                await asyncio.sleep(61 - time.time() % 60)  # a fresh weight window: the storm alone in it
                result["storm"] = await load(c, 64, 12 if q else 30, ("klines", "funding", "summary"))
                result["storm"]["exchange 429/418"] = {k: v - limited0.get(k, 0) for k, v in stack.limited().items()}
                print("storm", json.dumps(result["storm"]), flush=True)
        if "wire" in only:
            if "storm" in only:
                await asyncio.sleep(61 - time.time() % 60)  # a fresh weight window for the orders
            # A fresh session: the gateway closed the idle keep-alive connections meanwhile, and
            # aiohttp does not retry a POST on a connection that turns out closed.
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                c = Client(stack, session)
                result["time to wire"] = await time_to_wire(stack, c, 40 if args.quick else 100)
            print("time to wire", json.dumps(result["time to wire"]), flush=True)
        if "wire" in only:
            result["worker pre-wire"] = await worker_pre_wire(stack, 100 if q else 300)
            print("worker pre-wire", json.dumps(result["worker pre-wire"]), flush=True)
        if "bus" in only:
            result["bus"] = await bus_phase(stack, 200 if q else 500, 5 if q else 10)
            print("bus", json.dumps(result["bus"]), flush=True)
        result["exchange 429/418 overall"] = {k: v - limited0.get(k, 0) for k, v in stack.limited().items()}
    finally:
        stack.stop()
        from bench.busloop import delete
        from bus.topology import Topology

        t = Topology(stack.namespace, "quorum")
        await delete(
            stack.amqp_url,
            [t.commands_queue, t.dead_queue, t.reads_queue, f"{t.namespace}.governor.freeze"],
            [t.commands_exchange, t.dead_exchange, f"{t.namespace}.governor"],
        )
    return result


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="klines,storm,wire,bus", help="comma-separated phases to run")
    args = parser.parse_args(argv)
    import uvloop

    load_before = _loadavg()
    result = uvloop.run(run(args))
    # A shared machine: the load says how much the figures can be trusted.
    result["loadavg"] = {"before": load_before, "after": _loadavg()}
    print("load average before/after", result["loadavg"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"governor-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
