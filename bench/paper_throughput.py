"""Throughput of the paper exchange: signed MARKET orders/s and signed reads/s, with p50/p99.

Run by hand (not a test):

    .venv/bin/python -m bench.paper_throughput                 # wrk if installed, else Python load processes
    .venv/bin/python -m bench.paper_throughput --duration 20 --connections 64 --loader python

It starts the paper exchange in a subprocess (rate limits off, a temporary SQLite db), pre-signs
requests (HMAC-SHA256, generous recvWindow; MARKET orders carry no client id, so the same signed
request may be sent many times, as Binance allows), drives them with `wrk` (a Lua script cycles
through the pre-signed requests) or with several Python load processes, prints orders/s and
p50/p99 latency, and writes a JSON report to bench/results/.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.fapi import signed_query
from harness.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
KEY = "B" * 64
#: What a Python load process reports: its latencies (seconds) and how many answers were not 2xx.
Latencies = tuple[list[float], int]
SECRET = "s3cr3t" * 10

LUA = r"""
local reqs = {}
local n = 0
local i = 0
local method = os.getenv("BENCH_METHOD")
for line in io.lines(os.getenv("BENCH_REQS")) do
  n = n + 1
  reqs[n] = line
end
local headers = {["X-MBX-APIKEY"] = os.getenv("BENCH_KEY")}

function setup(thread)
  thread:set("id", tostring(thread))
end

request = function()
  i = i % n + 1
  return wrk.format(method, reqs[i], headers, nil)
end

done = function(summary, latency, requests)
  io.write(string.format(
    "BENCHJSON {\"requests\": %d, \"duration_us\": %d, \"non2xx\": %d, \"socket_errors\": %d, "
    .. "\"p50_us\": %d, \"p90_us\": %d, \"p99_us\": %d, \"max_us\": %d, \"mean_us\": %.1f}\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def start_server(port: int, db: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AIQT_PAPER_HOST": "127.0.0.1",
        "AIQT_PAPER_PORT": str(port),
        "AIQT_PAPER_DB": str(db),
        "AIQT_PAPER_RATE_LIMITS": "false",
        "AIQT_PAPER_ADMIN_TOKEN": "bench",
        "AIQT_PAPER_STARTING_BALANCE": "100000000",
        "AIQT_PAPER_ACCOUNTS": json.dumps([{"name": "bench", "api_key": KEY, "api_secret": SECRET}]),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "paper.main"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/_paper/health")
            if c.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("paper exchange did not start: " + (proc.stderr.read().decode() if proc.stderr else ""))


def signed(path: str, params: dict[str, str], ts: int) -> str:
    return f"{path}?{signed_query(SECRET, params, timestamp=ts, recv_window=600000)}"


def presign(kind: str, count: int) -> tuple[str, list[str]]:
    ts = int(time.time() * 1000)
    if kind == "orders":
        # alternate BUY/SELL so the position (and the margin it needs) stays bounded
        reqs = [
            signed(
                "/fapi/v1/order",
                {"symbol": "ETHUSDT", "side": "BUY" if i % 2 == 0 else "SELL", "type": "MARKET", "quantity": "0.010"},
                ts + i % 50,
            )
            for i in range(count)
        ]
        return "POST", reqs
    reqs = [signed("/fapi/v3/account", {}, ts + i) for i in range(count)]
    return "GET", reqs


def run_wrk(port: int, method: str, reqs: list[str], duration: int, connections: int, threads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        req_file = Path(d) / "reqs.txt"
        req_file.write_text("\n".join(reqs) + "\n")
        lua = Path(d) / "bench.lua"
        lua.write_text(LUA)
        env = {**os.environ, "BENCH_REQS": str(req_file), "BENCH_METHOD": method, "BENCH_KEY": KEY}
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{duration}s",
                "--latency",
                "-s",
                str(lua),
                f"http://127.0.0.1:{port}",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    m = re.search(r"BENCHJSON (\{.*\})", out.stdout)
    if not m:
        raise SystemExit("wrk output not understood:\n" + out.stdout + out.stderr)
    r = json.loads(m.group(1))
    secs = r["duration_us"] / 1e6
    return {
        "loader": "wrk",
        "requests": r["requests"],
        "seconds": round(secs, 2),
        "per_second": round(r["requests"] / secs, 1),
        "non2xx": r["non2xx"],
        "socket_errors": r["socket_errors"],
        "p50_ms": r["p50_us"] / 1000,
        "p90_ms": r["p90_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "max_ms": r["max_us"] / 1000,
        "connections": connections,
        "threads": threads,
    }


def _py_worker(port: int, method: str, reqs: list[str], conns: int, duration: float, q: mp.Queue[Latencies]) -> None:
    """One load process: `conns` keep-alive connections, each with one request in flight (round-robin)."""
    import selectors

    sel = selectors.DefaultSelector()
    lat: list[float] = []
    bad = 0
    i = 0
    head = "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-MBX-APIKEY: " + KEY + "\r\nContent-Length: 0\r\n\r\n"
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append(s)
    state: dict[socket.socket, tuple[float, bytearray]] = {}

    def send(s: socket.socket) -> None:
        nonlocal i
        i += 1
        s.sendall(head.format(method=method, path=reqs[i % len(reqs)]).encode())
        state[s] = (time.perf_counter(), bytearray())

    for s in socks:
        s.setblocking(True)
        send(s)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    end = time.perf_counter() + duration
    while time.perf_counter() < end:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj  # type: ignore[assignment]
            t0, buf = state[s]
            buf += s.recv(65536)
            hdr_end = buf.find(b"\r\n\r\n")
            if hdr_end < 0:
                continue
            m = re.search(rb"content-length: (\d+)", bytes(buf[:hdr_end]).lower())
            need = hdr_end + 4 + (int(m.group(1)) if m else 0)
            if len(buf) < need:
                continue
            lat.append(time.perf_counter() - t0)
            if not buf.startswith(b"HTTP/1.1 200"):
                bad += 1
            s.setblocking(True)
            send(s)
            s.setblocking(False)
    for s in socks:
        s.close()
    q.put((lat, bad))


def run_python(port: int, method: str, reqs: list[str], duration: int, connections: int, procs: int) -> dict[str, Any]:
    q: mp.Queue[Latencies] = mp.Queue()
    per = max(1, connections // procs)
    ps = [mp.Process(target=_py_worker, args=(port, method, reqs, per, duration, q)) for _ in range(procs)]
    t0 = time.perf_counter()
    for p in ps:
        p.start()
    lat: list[float] = []
    bad = 0
    for _ in ps:
        latencies, b = q.get()
        lat += latencies
        bad += b
    for p in ps:
        p.join()
    secs = min(time.perf_counter() - t0, duration)
    lat.sort()

    def pct(x: float) -> float:
        return round(lat[min(len(lat) - 1, int(len(lat) * x))] * 1000, 3) if lat else 0.0

    return {
        "loader": "python",
        "requests": len(lat),
        "seconds": round(secs, 2),
        "per_second": round(len(lat) / secs, 1),
        "non2xx": bad,
        "p50_ms": pct(0.5),
        "p90_ms": pct(0.9),
        "p99_ms": pct(0.99),
        "max_ms": round(lat[-1] * 1000, 3) if lat else 0.0,
        "connections": per * procs,
        "processes": procs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--procs", type=int, default=2, help="Python load processes (--loader python)")
    ap.add_argument("--loader", choices=("auto", "wrk", "python"), default="auto")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before measuring")
    args = ap.parse_args()
    loader = args.loader
    if loader == "auto":
        loader = "wrk" if shutil.which("wrk") else "python"
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "paper.sqlite3"
        proc = start_server(port, db)
        report: dict[str, Any] = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "loader": loader,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "scenarios": {},
        }
        try:
            for kind in ("orders", "account_read"):
                method, reqs = presign(kind, 2000)
                runner = run_wrk if loader == "wrk" else run_python
                extra = args.threads if loader == "wrk" else args.procs
                if args.warmup:
                    runner(port, method, reqs, args.warmup, args.connections, extra)
                res = runner(port, method, reqs, args.duration, args.connections, extra)
                report["scenarios"][kind] = res
                label = "signed MARKET orders" if kind == "orders" else "signed GET /fapi/v3/account"
                print(
                    f"{label:30s} {res['per_second']:>9.1f}/s  p50 {res['p50_ms']:.2f} ms  "
                    f"p99 {res['p99_ms']:.2f} ms  (non-2xx {res['non2xx']}, {res['requests']} requests, "
                    f"{res['connections']} connections, {loader})"
                )
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", f"/_paper/accounts/{KEY}/state", headers={"X-Paper-Admin-Token": "bench"})
            st = json.loads(c.getresponse().read())
            report["orders_held"] = len(st["orders"])
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        # every acknowledged order is on disk after the graceful stop
        import sqlite3

        n = sqlite3.connect(db).execute("SELECT COUNT(*) FROM orders").fetchone()[0]
        report["orders_in_sqlite_after_stop"] = n
        print(f"orders held in memory: {report['orders_held']}, in SQLite after stop: {n}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"paper_throughput_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
