"""What the bus costs: AIQT end to end versus calling the (paper) exchange directly.

    .venv/bin/python -m bench.run                 # the full run, about 3 minutes
    .venv/bin/python -m bench.run --quick         # fewer samples, shorter wrk runs
    .venv/bin/python -m bench.run --profile       # also py-spy the gateway and a worker under load

Needs RabbitMQ (AIQT_AMQP_URL, default the local broker) and `wrk` on PATH. Starts its own paper
exchange, workers and gateway (OS processes, loopback only, a bench-only bus namespace that is
deleted afterwards), prints tables and writes everything to bench/results/run-<time>.json.

Phases:
1. latency, concurrency 1, gateway and direct calls interleaved: klines, account summary, open +
   close market (direct: the minimal signed calls a user would make; "direct, same calls": the
   exact exchange calls the worker makes, including its idempotency look-up);
2. bus ceiling: AIQT's RpcClient → worker `system.ping`, and a bare aio-pika RPC loop with the same
   queue type and safety settings, at concurrency 1 and 64;
3. throughput through the gateway with wrk at concurrency 64 (pre-signed requests), 1 then 2 workers;
4. where the time goes: Server-Timing per request, the gateway's and workers' Prometheus histograms,
   and CPU seconds per process during each throughput run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx

from bench import busloop
from bench.phases.bus import bus_phase
from bench.phases.latency import latency_phase
from bench.phases.throughput import scaling_phase, throughput_phase
from bench.report import machine, print_report, run_warnings, targets
from harness.processes import ROOT, ProcessStack

RESULTS = ROOT / "bench" / "results"


async def wait_for_broker(url: str, timeout: float = 60.0) -> None:
    """Until RabbitMQ accepts a connection (a test elsewhere may be restarting it)."""
    end = time.monotonic() + timeout
    while True:
        try:
            connection = await aio_pika.connect(url, timeout=5)
            await connection.close()
            return
        except Exception:
            if time.monotonic() > end:
                raise
            await asyncio.sleep(1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--amqp-url", default=os.environ.get("AIQT_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    p.add_argument("--queue-type", choices=["quorum", "classic"], default="quorum")
    p.add_argument("--quick", action="store_true", help="fewer samples and shorter runs (a smoke test)")
    p.add_argument("--profile", action="store_true", help="py-spy the gateway and worker 0 during each wrk run")
    p.add_argument("--skip", action="append", default=[], choices=["latency", "bus", "throughput", "scaling"])
    p.add_argument("--out", type=Path, default=None, help="results JSON (default bench/results/run-<time>.json)")
    args = p.parse_args(argv)
    args.reads, args.writes = (60, 20) if args.quick else (400, 150)
    args.bus_c1, args.bus_c64, args.bus_seconds, args.rounds = (200, 3000, 5, 1) if args.quick else (1000, 20000, 10, 2)
    seconds = 4 if args.quick else 10
    if shutil.which("wrk") is None and "throughput" not in args.skip:
        print("wrk is not on PATH (Debian: apt-get install -y wrk)", file=sys.stderr)
        return 2

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_path = args.out or RESULTS / f"run-{stamp}.json"
    profile_dir = RESULTS / f"profile-{stamp}" if args.profile else None
    if profile_dir:
        profile_dir.mkdir(parents=True)
    report: dict[str, Any] = {
        "command": " ".join(["python -m bench.run", *(argv if argv is not None else sys.argv[1:])]),
        "started": stamp,
        "queue_type": args.queue_type,
        "machine": machine(args.amqp_url),
    }
    failures: list[str] = []
    stack = ProcessStack(args.amqp_url, args.queue_type)
    try:
        print(f"starting paper + 1 worker + gateway on namespace {stack.namespace} ...", flush=True)
        stack.start_paper()
        stack.start_worker()
        stack.start_gateway()
        stack.wait_ready(1)
        import uvloop

        if "latency" not in args.skip or "bus" not in args.skip:
            print("latency (concurrency 1) and bus ceiling ...", flush=True)

            async def phases() -> None:
                if "latency" not in args.skip:
                    report["latency"] = await latency_phase(stack, args.reads, args.writes)
                if "bus" not in args.skip:
                    await wait_for_broker(args.amqp_url)
                    try:
                        report["bus"] = await bus_phase(stack, args.bus_c1, args.bus_c64, args.bus_seconds, args.rounds)
                    except (RuntimeError, OSError) as exc:  # the broker went away under it
                        failures.append(f"bus phase failed: {exc!r:.300}")

            uvloop.run(phases())
        if "throughput" not in args.skip:
            print("throughput (wrk, concurrency 64) ...", flush=True)
            report["throughput"] = throughput_phase(stack, seconds, 64, profile_dir)
        if "scaling" not in args.skip:
            print("scaling with workers (exchange 100 ms away) ...", flush=True)
            try:
                report["scaling"] = scaling_phase(stack, seconds, 64, 100, 8, profile_dir)
            except (RuntimeError, OSError, httpx.HTTPError) as exc:
                failures.append(f"scaling phase failed: {exc!r:.300}")
    finally:
        stack.stop()
        asyncio.run(
            busloop.delete(
                args.amqp_url,
                [f"{stack.namespace}.commands", f"{stack.namespace}.dead"],
                [f"{stack.namespace}.commands", f"{stack.namespace}.dead"],
            )
        )
    report["machine"]["loadavg_after"] = os.getloadavg()
    report["warnings"] = failures + run_warnings(report)
    if not args.skip:
        try:
            report["targets"] = targets(report)
        except (KeyError, IndexError, ZeroDivisionError) as exc:  # a phase lost all its samples
            report["warnings"].append(f"targets not evaluated: no samples for {exc}")
    out_path.write_text(json.dumps(report, indent=2, default=str))
    print_report(report)
    for w in report["warnings"]:
        print(f"WARNING: {w}")
    print(f"\nresults: {out_path}" + (f"\nprofiles: {profile_dir}" if profile_dir else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
