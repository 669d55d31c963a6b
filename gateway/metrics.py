"""Prometheus series of a gateway process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REQUESTS = Counter("aiqt_gateway_requests_total", "REST requests", ["command", "code"])
REQUEST_SECONDS = Histogram("aiqt_gateway_request_seconds", "REST request time", ["command"], buckets=_LATENCY)
STAGE_SECONDS = Histogram(
    "aiqt_gateway_stage_seconds",
    "Time per stage: auth, publish, worker, queue, roundtrip",
    ["stage"],
    buckets=_LATENCY,
)
BUS_CONNECTED = Gauge("aiqt_gateway_bus_connected", "1 while the gateway is connected to RabbitMQ")
QUEUE_DEPTH = Gauge("aiqt_queue_depth", "Commands waiting in the command queue (at the last readiness check)")
QUEUE_CONSUMERS = Gauge("aiqt_queue_consumers", "Workers consuming the command queue (at the last readiness check)")
