"""The report of a benchmark run: the machine it ran on, the tables printed at the end, the targets
(met, not met, or for information) and the warnings that say a run was disturbed."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any


def machine(amqp_url: str) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    try:
        rabbit = subprocess.run(["rabbitmqctl", "version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        rabbit = "unknown"
    try:
        wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=5)
        wrk_version = (wrk_v.stdout or wrk_v.stderr).splitlines()[0]
    except (OSError, IndexError):
        wrk_version = "unknown"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "rabbitmq": rabbit,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "wrk": wrk_version,
        "packages": {
            p: version(p)
            for p in ("aio-pika", "aiormq", "fastapi", "uvicorn", "uvloop", "httptools", "httpx", "orjson", "pydantic")
        },
        "loadavg_before": os.getloadavg(),
    }


def overhead_rows(lat: dict[str, dict[str, float]]) -> list[tuple[str, str, str]]:
    rows = []
    for op, base in (
        ("klines", "direct klines"),
        ("summary", "direct summary"),
        ("open+close", "direct open+close"),
        ("open+close", "direct open+close, same calls"),
    ):
        g, d = lat.get(f"gateway {op}"), lat.get(base)
        if g and d:
            rows.append((f"gateway {op} vs {base}", f"{g['p50'] - d['p50']:+.2f}", f"{g['p99'] - d['p99']:+.2f}"))
    return rows


def print_report(r: dict[str, Any]) -> None:
    m = r["machine"]
    print(
        f"\nmachine: {m['nproc']} CPU ({m['cpu']}), RabbitMQ {m['rabbitmq']}, Python {m['python']}, "
        f"queue type {r['queue_type']}, persistent + confirms; load before {m['loadavg_before']}"
    )
    if "latency" in r:
        _print_latency(r)
    if "bus" in r:
        _print_bus(r)
    if "throughput" in r:
        _print_throughput(r, "throughput")
    if "scaling" in r:
        _print_throughput(r, "scaling")
    for t in r.get("targets", []):
        mark = "info" if t["met"] is None else "met" if t["met"] else "NOT met"
        print(f"  [{mark}] {t['target']}: {t['value']}")


def _print_latency(r: dict[str, Any]) -> None:
    print("\nlatency at concurrency 1 (ms)")
    print(f"  {'path':<34} {'n':>5} {'p50':>8} {'p99':>8} {'max':>8}")
    for name, s in r["latency"]["latency"].items():
        print(f"  {name:<34} {s['n']:>5} {s['p50']:>8.2f} {s['p99']:>8.2f} {s['max']:>8.2f}")
    print("\noverhead of the gateway (ms)")
    for name, p50, p99 in overhead_rows(r["latency"]["latency"]):
        print(f"  {name:<58} p50 {p50:>7}  p99 {p99:>7}")
    print("\nServer-Timing medians at concurrency 1 (ms)")
    for name, st in r["latency"]["server_timing_p50_ms"].items():
        print(f"  {name:<10} " + "  ".join(f"{k} {v:.3f}" for k, v in st.items()))


def _print_bus(r: dict[str, Any]) -> None:
    print("\nbus round trip (no HTTP); CPU ms per call: client / server (echo or worker) / RabbitMQ")
    print(f"  {'loop':<22} {'p50 ms':>8} {'p99 ms':>8} {'per s':>9}  {'cpu ms/call':<22} rounds")
    for name, s in r["bus"].items():
        c = s["cpu_ms_per_call"]
        cpu = f"{c['client']:.3f}/{c['server']:.3f}/{c['rabbitmq']:.3f}"
        print(f"  {name:<22} {s['p50']:>8.2f} {s['p99']:>8.2f} {s['rate']:>9.0f}  {cpu:<22} {s['rates']}")


def _print_throughput(r: dict[str, Any], section: str) -> None:
    print(f"\n{section} through the gateway, wrk, concurrency 64")
    print("  CPU ms per request: gateway / worker(s) / RabbitMQ / paper / wrk; 'bound' = cores x 1000 / their sum")
    print(f"  {'run':<44} {'per s':>7} {'p50 ms':>7} {'p99 ms':>7}  {'cpu ms per request':<30} {'bound':>6}")
    for name, s in r[section].items():
        if not isinstance(s, dict):
            continue
        c = s["cpu_ms_per_request"]
        cpu = "/".join(f"{c.get(k, 0):.2f}" for k in ("gateway", "worker", "rabbitmq", "paper", "wrk"))
        print(
            f"  {name:<44} {s['rate']:>7.0f} {s['p50_ms']:>7.1f} {s['p99_ms']:>7.1f}  {cpu:<30} "
            f"{s['cpu_bound_rate']:>6}" + (f"  non-2xx {s['non_2xx']}" if s["non_2xx"] else "")
        )


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    lat = r["latency"]["latency"]
    out = []
    worst50 = worst99 = 0.0
    for op, base in (("klines", "direct klines"), ("summary", "direct summary"), ("open+close", "direct open+close")):
        worst50 = max(worst50, lat[f"gateway {op}"]["p50"] - lat[base]["p50"])
        worst99 = max(worst99, lat[f"gateway {op}"]["p99"] - lat[base]["p99"])
    out.append(
        {
            "target": "end-to-end overhead over the direct call <= 1.5 ms p50 (worst of klines/summary/open+close)",
            "value": f"{worst50:.2f} ms",
            "met": worst50 <= 1.5,
        }
    )
    out.append(
        {
            "target": "end-to-end overhead over the direct call <= 5 ms p99",
            "value": f"{worst99:.2f} ms",
            "met": worst99 <= 5,
        }
    )
    bus = r["bus"]
    ratio = bus["AIQT bus c64"]["rate"] / bus["bare aio-pika c64"]["rate"]
    out.append(
        {
            "target": "AIQT bus round trip >= 80 % of the bare aio-pika ceiling (c64, per s)",
            "value": f"{100 * ratio:.0f} %",
            "met": ratio >= 0.8,
        }
    )
    tp = r["throughput"]
    best = max(tp["ping, 1 worker"]["rate"], tp["ping, 2 workers"]["rate"])
    out.append(
        {
            "target": "end to end through the gateway >= 1,000 commands/s at c64 (ping)",
            "value": f"{best:.0f}/s",
            "met": best >= 1000,
        }
    )
    for name in ("ping", "klines"):
        s = tp[f"{name}, 2 workers"]["rate"] / tp[f"{name}, 1 worker"]["rate"]
        out.append(
            {
                "target": f"2 workers vs one ({name}, c64; CPU-bound on this machine, so the worker is NOT the "
                "bottleneck: for information)",
                "value": f"{s:.2f}x",
                "met": None,
            }
        )
    sc = r["scaling"]
    rates = [v["rate"] for k, v in sc.items() if k.startswith("klines")]
    s = rates[1] / rates[0]
    out.append(
        {
            "target": f"2 workers >= 1.6x one worker where the worker is the bottleneck (exchange {sc['delay_ms']} ms "
            f"away, {sc['in_flight_per_worker']} commands in flight per worker)",
            "value": f"{s:.2f}x",
            "met": s >= 1.6,
        }
    )

    def failed(rows: list[dict[str, Any]]) -> bool:
        return any(x.get("errors") or x.get("non_2xx") or x.get("socket_errors") for x in rows)

    lat_bad = bool(r["latency"].get("errors"))
    disturbed = [
        lat_bad,
        lat_bad,
        failed(list(bus.values())),
        failed([tp["ping, 1 worker"], tp["ping, 2 workers"]]),
        failed([tp["ping, 1 worker"], tp["ping, 2 workers"]]),
        failed([tp["klines, 1 worker"], tp["klines, 2 workers"]]),
        failed([v for v in sc.values() if isinstance(v, dict)]),
    ]
    for t, bad in zip(out, disturbed, strict=True):
        if bad:  # failed requests in that phase: its figure says nothing about AIQT
            t["value"] = f"{t['value']} (disturbed: failed requests in this phase)"
            t["met"] = None
    return out


def run_warnings(r: dict[str, Any]) -> list[str]:
    """Failed requests mean something else disturbed the run (on a shared machine, most often a test
    restarting RabbitMQ): its figures are then not comparable."""
    out = []
    errors = r.get("latency", {}).get("errors", {})
    if errors:
        out.append(f"latency phase: failed requests {errors}")
    for name, s in r.get("bus", {}).items():
        if s["errors"]:
            out.append(f"bus loop {name}: {s['errors']} failed calls")
    for section in ("throughput", "scaling"):
        for name, s in r.get(section, {}).items():
            if isinstance(s, dict) and (s["non_2xx"] or s["socket_errors"]):
                out.append(f"{section} {name}: {s['non_2xx']} non-2xx, {s['socket_errors']} socket errors")
    if out:
        out.append("this run was disturbed (a broker restart?); rerun before quoting its figures")
    return out
