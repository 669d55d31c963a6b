"""Prometheus series of the streamer (served on AIQT_METRICS_PORT, like the worker's)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS = Counter("aiqt_streamer_events_total", "Events published", ["type"])
LEADING = Gauge("aiqt_streamer_leading", "1 while this streamer leads the account's stream", ["account"])
RESYNCS = Counter("aiqt_streamer_resyncs_total", "Resyncs from REST after a gap", ["reason"])
