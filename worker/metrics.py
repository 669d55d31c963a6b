"""Prometheus series of a worker process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

COMMANDS = Counter("aiqt_worker_commands_total", "Commands handled", ["type", "code"])
COMMAND_SECONDS = Histogram("aiqt_worker_command_seconds", "Handler time per command", ["type"], buckets=_LATENCY)
QUEUE_WAIT_SECONDS = Histogram("aiqt_worker_queue_wait_seconds", "Publish to receipt, per command", buckets=_LATENCY)
EXCHANGE_SECONDS = Histogram("aiqt_exchange_request_seconds", "Exchange HTTP calls", ["path"], buckets=_LATENCY)
EXCHANGE_ERRORS = Counter("aiqt_exchange_errors_total", "Exchange errors by Binance code", ["code"])
RETRIES = Counter("aiqt_exchange_retries_total", "Retried exchange requests", ["path"])
RECONCILIATIONS = Counter("aiqt_reconciliations_total", "Unknown outcomes resolved by client id", ["outcome"])
WEIGHT_USED = Gauge("aiqt_exchange_weight_used_1m", "X-MBX-USED-WEIGHT-1M last seen")
CLOCK_OFFSET = Gauge("aiqt_exchange_clock_offset_ms", "Exchange clock minus ours")
DEAD_LETTERS = Counter("aiqt_worker_dead_letters_total", "Commands dead-lettered", ["reason"])
UNPROTECTED = Counter("aiqt_unprotected_entries_total", "Entries whose SL/TP could not be placed", ["policy"])
AUDIT_WRITTEN = Counter("aiqt_audit_entries_total", "Audit entries written to the journal stream")
AUDIT_FAILURES = Counter("aiqt_audit_failures_total", "Audit entries that could not be written", ["reason"])
