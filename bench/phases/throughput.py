"""Phase 3: throughput through the gateway with wrk at concurrency 64 (pre-signed requests), 1 then 2
workers; and scaling with workers where the worker is the bottleneck (the exchange answers late).
Each wrk run also reports CPU seconds per process and the processes' histogram means."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from aiqt.client import sign_request
from bench.phases import SYMBOL, WRK_SCRIPT, metric_urls
from bench.stats import cpu_seconds, histogram_means, rabbit_pids, scrape_all
from harness.processes import ROOT, ProcessStack


def _profilers(
    pids: dict[str, list[int]], seconds: int, profile_dir: Path | None, tag: str
) -> list[subprocess.Popen[bytes]]:
    """py-spy on the gateway and the first worker for the length of a wrk run (when asked for and installed)."""
    spy = shutil.which("py-spy") or str(ROOT / ".venv" / "bin" / "py-spy")
    if profile_dir is None or not Path(spy).exists():
        return []
    spies = []
    for role in ("gateway", "worker"):
        for i, pid in enumerate(pids[role][:1]):
            out = profile_dir / f"{tag}-{role}{i}.txt"
            argv = [spy, "record", "-p", str(pid), "-d", str(max(seconds - 2, 1)), "-r", "200", "-f", "raw"]
            spies.append(
                subprocess.Popen(
                    [*argv, "-o", str(out), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
    return spies


def _wrk(stack: ProcessStack, pool: str, *, seconds: int, connections: int, threads: int) -> dict[str, Any]:
    """wrk's own summary (the WRKJSON line bench/wrk/signed.lua prints)."""
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s"]
    argv += ["-s", str(WRK_SCRIPT), stack.gateway_url, "--", pool, stack.keys.api_key]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {proc.stdout}\n{proc.stderr}")
    summary: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
    return summary


def wrk(
    stack: ProcessStack,
    lines: list[str],
    *,
    seconds: int,
    connections: int,
    threads: int,
    profile_dir: Path | None = None,
    tag: str = "",
) -> dict[str, Any]:
    """Run wrk against the gateway with a pool of pre-signed requests; CPU seconds per process too."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        pool = f.name
    pids = stack.pids()
    pids["rabbitmq"] = rabbit_pids()
    urls = metric_urls(stack)
    before = scrape_all(urls)
    cpu0 = {role: sum(cpu_seconds(p) for p in ps) for role, ps in pids.items()}
    spies = _profilers(pids, seconds, profile_dir, tag)
    t0 = time.monotonic()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        w = _wrk(stack, pool, seconds=seconds, connections=connections, threads=threads)
    finally:
        os.unlink(pool)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1 = {role: sum(cpu_seconds(p) for p in ps) for role, ps in pids.items()}
    for spy_proc in spies:
        spy_proc.wait(30)
    after = scrape_all(urls)
    ok = w["requests"] - w["non_2xx"]
    result: dict[str, Any] = {
        "rate": round(ok / (w["duration_us"] / 1e6), 1),
        "requests": w["requests"],
        "non_2xx": w["non_2xx"],
        "socket_errors": w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["timeouts"],
        "p50_ms": w["p50_us"] / 1000,
        "p99_ms": w["p99_us"] / 1000,
        "max_ms": w["max_us"] / 1000,
        "cpu_percent": {role: round(100 * (cpu1[role] - cpu0[role]) / wall, 1) for role in pids},
        # CPU time per successful request, per process: unlike the rate, this hardly depends on what
        # else the machine is running, and its sum bounds the rate the cores could reach.
        "cpu_ms_per_request": {
            **{role: round(1000 * (cpu1[role] - cpu0[role]) / max(ok, 1), 3) for role in pids},
            "wrk": round(1000 * (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / max(ok, 1), 3),
        },
        "cpu_bound_rate": 0,
        "gateway_stage_means_ms": {
            labels: round(mean * 1000, 3)
            for labels, (_, mean) in histogram_means(
                before["gateway"], after["gateway"], "aiqt_gateway_stage_seconds"
            ).items()
        },
        "worker_means_ms": _worker_means_ms(before, after),
    }
    spent = sum(result["cpu_ms_per_request"].values())
    result["cpu_bound_rate"] = round((os.cpu_count() or 1) * 1000 / spent) if spent else 0
    return result


def _worker_means_ms(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict[str, float]:
    ex: dict[str, float] = {}
    for k in after:
        if k.startswith("worker"):
            for labels, (_, mean) in histogram_means(before[k], after[k], "aiqt_worker_command_seconds").items():
                ex[f"{k} command {labels}"] = round(mean * 1000, 3)
            for labels, (_, mean) in histogram_means(before[k], after[k], "aiqt_exchange_request_seconds").items():
                ex[f"{k} exchange {labels}"] = round(mean * 1000, 3)
    return ex


def presigned(stack: ProcessStack, path: str, params: dict[str, str], count: int) -> list[str]:
    lines = []
    for _ in range(count):
        q = sign_request(stack.keys.api_secret, "GET", path, params, recv_window=60000)
        lines.append(f"GET\t{path}?{q}\t")
        time.sleep(0.0002)  # distinct timestamps
    return lines


def throughput_phase(stack: ProcessStack, seconds: int, connections: int, profile_dir: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    targets = [
        ("ping", "/api/system/ping", {}),
        ("klines", "/api/market/klines", {"symbol": SYMBOL, "interval": "1m", "limit": "10"}),
    ]
    out["healthz (gateway HTTP only, no auth, no bus)"] = wrk(
        stack, ["GET\t/healthz\t"], seconds=min(seconds, 5), connections=connections, threads=2
    )
    for workers in (1, 2):
        while len(stack.workers) < workers:
            stack.start_worker()
        stack.wait_ready(workers)
        for name, path, params in targets:
            # recvWindow 60 s: signatures are made just before each run, and each run is far shorter
            lines = presigned(stack, path, params, 200)
            wrk(stack, lines, seconds=2, connections=connections, threads=2)  # warm-up
            lines = presigned(stack, path, params, 200)
            out[f"{name}, {workers} worker{'s' if workers > 1 else ''}"] = wrk(
                stack,
                lines,
                seconds=seconds,
                connections=connections,
                threads=2,
                profile_dir=profile_dir,
                tag=f"{name}-w{workers}",
            )
    return out


def scaling_phase(
    stack: ProcessStack, seconds: int, connections: int, delay_ms: int, in_flight: int, profile_dir: Path | None
) -> dict[str, Any]:
    """Where the worker is the bottleneck: the exchange answers after `delay_ms` (a paper `delay`
    fault, as a remote Binance would) and each worker takes `in_flight` commands at a time
    (AIQT_WORKER_CONCURRENCY), so one worker serves at most in_flight / delay commands a second."""
    while stack.workers:
        stack.stop_worker()
    stack.paper_admin(
        "POST",
        "faults",
        {"kind": "delay", "delayMs": delay_ms, "count": 10**7, "method": "GET", "path": "/fapi/v1/klines"},
    )
    params = {"symbol": SYMBOL, "interval": "1m", "limit": "1"}
    out: dict[str, Any] = {"delay_ms": delay_ms, "in_flight_per_worker": in_flight}
    try:
        # 1, 2, 1, 2 workers; each configuration keeps its best run. Capacity is what is measured
        # here, and load from other processes on a shared machine can only lower a run.
        for rnd, workers in enumerate((1, 2, 1, 2)):
            while len(stack.workers) > workers:
                stack.stop_worker()
            while len(stack.workers) < workers:
                stack.start_worker(AIQT_WORKER_CONCURRENCY=str(in_flight))
            stack.wait_ready(workers)
            wrk(
                stack,
                presigned(stack, "/api/market/klines", params, 200),
                seconds=2,
                connections=connections,
                threads=2,
            )
            result = wrk(
                stack,
                presigned(stack, "/api/market/klines", params, 200),
                seconds=seconds,
                connections=connections,
                threads=2,
                profile_dir=profile_dir if rnd < 2 else None,
                tag=f"scaling-w{workers}",
            )
            key = f"klines, exchange {delay_ms} ms away, {workers} worker{'s' if workers > 1 else ''}"
            rates = [*out.get(key, {}).get("rates", []), result["rate"]]
            if key not in out or result["rate"] > out[key]["rate"]:
                out[key] = result
            out[key]["rates"] = rates
    finally:
        stack.paper_admin("DELETE", "faults")
    return out
