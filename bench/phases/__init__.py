"""The phases of a benchmark run (`bench/run.py` runs them in this order):

    latency.py     1. latency at concurrency 1, gateway and direct calls to the exchange interleaved
    bus.py         2. the bus ceiling: AIQT's RpcClient vs a bare aio-pika RPC loop, c1 and c64
    throughput.py  3. throughput through the gateway with wrk (c64), 1 then 2 workers; and scaling
                      with workers where the worker is the bottleneck (a slow exchange)

Each phase takes a running `harness.processes.ProcessStack` and returns a JSON-able dict.
"""

from __future__ import annotations

from harness.processes import ROOT, ProcessStack

SYMBOL = "BTCUSDT"
QTY = "0.002"
KLINES = {"symbol": SYMBOL, "interval": "1m", "limit": "100"}
WRK_SCRIPT = ROOT / "bench" / "wrk" / "signed.lua"


def metric_urls(stack: ProcessStack) -> dict[str, str]:
    """role ("gateway", "worker0", …) -> its Prometheus page."""
    return {"gateway": f"{stack.gateway_url}/metrics"} | {
        f"worker{i}": f"http://127.0.0.1:{port}/metrics" for i, (_, port) in enumerate(stack.workers)
    }
