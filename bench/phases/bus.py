"""Phase 2: the bus ceiling. AIQT's RpcClient to a worker's `system.ping`, and a bare aio-pika RPC
loop with the same queue type and safety settings (bench/busloop.py), at concurrency 1 and 64,
alternated over rounds; CPU milliseconds per call for client, server and RabbitMQ."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from bench import busloop
from bench.stats import cpu_seconds, rabbit_pids, summary_ms
from bus import BusSettings, RpcClient
from harness.processes import ROOT, ProcessStack


async def bus_phase(stack: ProcessStack, n1: int, n64: int, seconds: float, rounds: int) -> dict[str, Any]:
    bare_queue = f"{stack.namespace}.bare"
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
        [sys.executable, "-m", "bench.busloop", "serve", stack.amqp_url, bare_queue, stack.queue_type],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    if b"ready" not in line:
        server.kill()
        server.wait(5)
        raise RuntimeError(f"bare echo server did not start: {line!r}")
    bare = busloop.BareRpc(stack.amqp_url, bare_queue)
    rpc = RpcClient(
        BusSettings(amqp_url=stack.amqp_url, bus_namespace=stack.namespace, queue_type=stack.queue_type),
        name="aiqt-bench",
    )
    body = json.dumps({"type": "system.ping", "account": "main", "payload": {}}).encode()

    async def aiqt_call() -> Any:
        # The write lane (quorum, persistent, confirms): the same safety settings as the bare loop.
        # bench/governor.py measures the read lane against a bare loop with transient settings.
        reply = await rpc.call("system.ping", body, command_id=uuid.uuid4().hex, timeout=10, lane="write")
        if reply.code != 200:
            raise RuntimeError(reply.body)
        return reply

    out: dict[str, Any] = {}
    try:
        await bare.start()
        await rpc.start()
        for fn in (bare.call, aiqt_call):
            await busloop.closed_loop(fn, concurrency=8, count=400, seconds=5)  # warm-up
        runs: dict[str, list[dict[str, Any]]] = {}
        rabbit = rabbit_pids()
        servers = {"bare aio-pika": server.pid, "AIQT bus": stack.workers[0][0].pid}
        for _ in range(rounds):  # alternate, so drift in the background load hits both alike
            for name, fn in (("bare aio-pika", bare.call), ("AIQT bus", aiqt_call)):
                for conc, n in ((1, n1), (64, n64)):
                    cpu0 = (time.process_time(), cpu_seconds(servers[name]), sum(map(cpu_seconds, rabbit)))
                    r = await busloop.closed_loop(fn, concurrency=conc, count=n, seconds=seconds)
                    cpu1 = (time.process_time(), cpu_seconds(servers[name]), sum(map(cpu_seconds, rabbit)))
                    r["cpu"] = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
                    runs.setdefault(f"{name} c{conc}", []).append(r)
        for key, rs in runs.items():
            lat = [x for r in rs for x in r["latencies"]]
            calls = max(len(lat), 1)
            out[key] = {
                **summary_ms(lat),
                "rate": round(statistics.median(r["rate"] for r in rs), 1),
                "rates": [round(r["rate"], 1) for r in rs],
                "errors": sum(r["errors"] for r in rs),
                "cpu_ms_per_call": {
                    role: round(1000 * sum(r["cpu"][i] for r in rs) / calls, 3)
                    for i, role in enumerate(("client", "server", "rabbitmq"))
                },
            }
    finally:
        await bare.close()
        await rpc.close()
        server.terminate()
        server.wait(10)
        await busloop.delete(stack.amqp_url, [bare_queue], [])
    return out
