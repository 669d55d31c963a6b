"""The numbers of a benchmark run: percentiles of latencies, Server-Timing headers, deltas of the
processes' Prometheus histograms between two scrapes, and CPU seconds per process (from /proc)."""

from __future__ import annotations

import os
import re
import statistics
from pathlib import Path

import httpx


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def summary_ms(values: list[float]) -> dict[str, float]:
    """p50/p99/max/mean in ms of latencies given in seconds."""
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "p50": round(pct(ms, 50), 3),
        "p99": round(pct(ms, 99), 3),
        "max": round(max(ms), 3) if ms else float("nan"),
        "mean": round(statistics.fmean(ms), 3) if ms else float("nan"),
    }


def server_timing(header: str | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in (header or "").split(","):
        name, _, dur = part.strip().partition(";dur=")
        if dur:
            out[name] = float(dur)
    return out


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rabbit_pids() -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (p / "comm").read_text().strip() in ("beam.smp", "beam"):
                    pids.append(int(p.name))
            except OSError:
                continue
    return pids


# Prometheus text, just enough to take deltas of histograms.
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def scrape(url: str) -> dict[str, float]:
    """`name{labels}` -> value, for every sample of a Prometheus text page."""
    out: dict[str, float] = {}
    for line in httpx.get(url, timeout=5).text.splitlines():
        m = _SAMPLE.match(line)
        if m and not line.startswith("#"):
            try:
                out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
            except ValueError:
                continue
    return out


def histogram_means(before: dict[str, float], after: dict[str, float], name: str) -> dict[str, tuple[int, float]]:
    """label set -> (count, mean seconds) of histogram `name` between two scrapes."""
    out: dict[str, tuple[int, float]] = {}
    for key, total in after.items():
        if not key.startswith(name + "_sum"):
            continue
        labels = key[len(name + "_sum") :]
        count = after.get(f"{name}_count{labels}", 0.0) - before.get(f"{name}_count{labels}", 0.0)
        spent = total - before.get(key, 0.0)
        if count > 0:
            out[labels or "{}"] = (int(count), spent / count)
    return out


def stage_means_ms(before: dict[str, float], after: dict[str, float], name: str) -> dict[str, dict[str, float]]:
    """label set -> {count, mean_ms} of histogram `name` between two scrapes."""
    return {
        labels: {"count": count, "mean_ms": round(mean * 1000, 3)}
        for labels, (count, mean) in histogram_means(before, after, name).items()
    }


def scrape_all(urls: dict[str, str]) -> dict[str, dict[str, float]]:
    """One scrape of every process: role -> samples."""
    return {role: scrape(url) for role, url in urls.items()}


def worker_means_ms(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], name: str
) -> dict[str, dict[str, float]]:
    """`stage_means_ms` of histogram `name` over every worker's scrapes (later workers win a label)."""
    out: dict[str, dict[str, float]] = {}
    for role in after:
        if role.startswith("worker"):
            out.update(stage_means_ms(before[role], after[role], name))
    return out
