"""Markdown tables from several `bench.run` results: the median of the runs, and their range.

    .venv/bin/python -m bench.summarize bench/results/run-*.json

On a shared 2-core machine one run is one sample of the background load; the median of a few runs
and their spread say more. A phase with failed requests is left out of its table (`--all` keeps it).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.report import targets


def _cell(values: list[float], fmt: str = "{:.2f}") -> str:
    if not values:
        return "–"
    med = fmt.format(statistics.median(values))
    if len(values) == 1:
        return med
    return f"{med} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def _collect(runs: list[dict[str, Any]], section: str, key: str, field: str) -> list[float]:
    out = []
    for r in runs:
        row = r.get(section, {}).get(key)
        if isinstance(row, dict) and field in row:
            out.append(float(row[field]))
    return out


def clean(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs with each disturbed part (a phase with failed requests) removed."""
    out = []
    for r in runs:
        r = dict(r)
        if r.get("latency", {}).get("errors"):
            r.pop("latency")
        if any(s.get("errors") for s in r.get("bus", {}).values()):
            r.pop("bus")
        for section in ("throughput", "scaling"):
            if section in r:
                r[section] = {
                    k: v
                    for k, v in r[section].items()
                    if not isinstance(v, dict) or not (v["non_2xx"] or v["socket_errors"])
                }
        out.append(r)
    return out


def _latency(runs: list[dict[str, Any]]) -> list[str]:
    """Latency, gateway overhead and Server-Timing tables."""
    lines: list[str] = []
    add = lines.append
    lat = [r["latency"]["latency"] for r in runs if "latency" in r]
    if not lat:
        return lines
    add("**Latency at concurrency 1, ms**")
    add("")
    add("| path | p50 | p99 | max |")
    add("|---|---|---|---|")
    for name in lat[0]:
        vals = {f: [x[name][f] for x in lat if name in x] for f in ("p50", "p99", "max")}
        add(f"| {name} | {_cell(vals['p50'])} | {_cell(vals['p99'])} | {_cell(vals['max'])} |")
    add("")
    add("**Overhead of the gateway over the direct call, ms** (per run: gateway minus direct, same percentile)")
    add("")
    add("| comparison | p50 | p99 |")
    add("|---|---|---|")
    for op, base in (
        ("ping", None),
        ("klines", "direct klines"),
        ("summary", "direct summary"),
        ("open+close", "direct open+close"),
        ("open+close", "direct open+close, same calls"),
    ):
        if base is None:
            continue
        p50 = [x[f"gateway {op}"]["p50"] - x[base]["p50"] for x in lat if base in x and f"gateway {op}" in x]
        p99 = [x[f"gateway {op}"]["p99"] - x[base]["p99"] for x in lat if base in x and f"gateway {op}" in x]
        add(f"| gateway {op} − {base} | {_cell(p50, '{:+.2f}')} | {_cell(p99, '{:+.2f}')} |")
    add("")
    add("**Server-Timing at concurrency 1, median per request, ms**")
    add("")
    add("| command | publish + confirm | queue (publish → worker) | worker | round trip | HTTP total p50 |")
    add("|---|---|---|---|---|---|")
    st = [r["latency"]["server_timing_p50_ms"] for r in runs if "latency" in r]
    for name in st[0]:
        cells = [
            _cell([x[name][k] for x in st if k in x.get(name, {})]) for k in ("publish", "queue", "worker", "roundtrip")
        ]
        total = _cell([x[f"gateway {name}"]["p50"] for x in lat if f"gateway {name}" in x])
        add(f"| {name} | " + " | ".join(cells) + f" | {total} |")
    add("")
    return lines


def _bus(runs: list[dict[str, Any]]) -> list[str]:
    """The bus round trip table."""
    lines: list[str] = []
    add = lines.append
    if not any("bus" in r for r in runs):
        return lines
    add("**Bus round trip without HTTP** (AIQT `RpcClient` → worker `system.ping` vs bare aio-pika echo)")
    add("")
    add("| loop | p50 ms | p99 ms | round trips/s | CPU ms/call client | server | RabbitMQ |")
    add("|---|---|---|---|---|---|---|")
    for name in next(r["bus"] for r in runs if "bus" in r):
        rates = _collect(runs, "bus", name, "rate")
        cpu = [r["bus"][name]["cpu_ms_per_call"] for r in runs if name in r.get("bus", {})]
        add(
            f"| {name} | {_cell(_collect(runs, 'bus', name, 'p50'))} | {_cell(_collect(runs, 'bus', name, 'p99'))} "
            f"| {_cell(rates, '{:.0f}')} | "
            + " | ".join(_cell([c[k] for c in cpu], "{:.3f}") for k in ("client", "server", "rabbitmq"))
            + " |"
        )
    add("")
    return lines


def _throughput(runs: list[dict[str, Any]]) -> list[str]:
    """The throughput and scaling tables."""
    lines: list[str] = []
    add = lines.append
    for section, title in (
        ("throughput", "Throughput through the gateway, wrk, 64 connections"),
        ("scaling", "Scaling with workers where the worker is the bottleneck"),
    ):
        if not any(section in r for r in runs):
            continue
        add(f"**{title}**")
        add("")
        add(
            "| run | requests/s | p50 ms | p99 ms | CPU ms/request: gateway | worker(s) | RabbitMQ | paper | wrk "
            "| CPU bound/s |"
        )
        add("|---|---|---|---|---|---|---|---|---|---|")
        first = next(r[section] for r in runs if section in r)
        for name, row in first.items():
            if not isinstance(row, dict):
                continue
            cpu = [r[section][name]["cpu_ms_per_request"] for r in runs if name in r.get(section, {})]
            add(
                f"| {name} | {_cell(_collect(runs, section, name, 'rate'), '{:.0f}')} "
                f"| {_cell(_collect(runs, section, name, 'p50_ms'), '{:.0f}')} "
                f"| {_cell(_collect(runs, section, name, 'p99_ms'), '{:.0f}')} | "
                + " | ".join(
                    _cell([c.get(k, 0) for c in cpu]) for k in ("gateway", "worker", "rabbitmq", "paper", "wrk")
                )
                + f" | {_cell(_collect(runs, section, name, 'cpu_bound_rate'), '{:.0f}')} |"
            )
        add("")
    return lines


def _targets(all_runs: list[dict[str, Any]]) -> list[str]:
    """The targets of every run, recomputed, so older result files get today's rules."""
    lines: list[str] = []
    add = lines.append
    add("**Targets, per run** (✔ met, ✘ not met; † the run was disturbed somewhere)")
    add("")

    with_targets = []
    for r in all_runs:
        try:
            with_targets.append({**r, "targets": targets(r)})
        except (KeyError, IndexError, ZeroDivisionError):
            continue
    add("| target | " + " | ".join(r["started"] + (" †" if r.get("warnings") else "") for r in with_targets) + " |")
    add("|---|" + "---|" * len(with_targets))
    for i, t in enumerate(with_targets[0]["targets"] if with_targets else []):
        cells = []
        for r in with_targets:
            tt = r["targets"][i]
            mark = "" if tt["met"] is None else (" ✔" if tt["met"] else " ✘")
            cells.append(f"{tt['value']}{mark}")
        add(f"| {t['target']} | " + " | ".join(cells) + " |")
    add("")
    return lines


def summarize(all_runs: list[dict[str, Any]], *, keep_all: bool = False) -> str:
    lines: list[str] = []
    add = lines.append
    runs = all_runs if keep_all else clean(all_runs)
    add(
        f"Median over {len(runs)} run(s) (range in brackets): "
        + ", ".join(r["started"] for r in runs)
        + ". A phase with failed requests (a broker restarted by a test meanwhile) is left out of its table."
    )
    add("")
    lines += _latency(runs)
    lines += _bus(runs)
    lines += _throughput(runs)
    lines += _targets(all_runs)
    loads = ", ".join(
        f"{r['machine']['loadavg_before'][0]:.1f}→{r['machine'].get('loadavg_after', [0])[0]:.1f}" for r in runs
    )
    add(f"1-minute load average before → after each run (2 cores): {loads}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    keep_all = "--all" in argv
    paths = [Path(a) for a in argv if not a.startswith("--")]
    runs = []
    for p in sorted(paths):
        r = json.loads(p.read_text())
        if not any(k in r for k in ("latency", "bus", "throughput", "scaling")):
            print(f"skipping {p}: no results", file=sys.stderr)
            continue
        runs.append(r)
    if not runs:
        print("no complete runs", file=sys.stderr)
        return 1
    print(summarize(runs, keep_all=keep_all))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
