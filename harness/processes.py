"""The processes a benchmark run starts for itself: the paper exchange, workers and a gateway, each
an `aiqt` OS process with explicit environment, on a bench-only bus namespace (deleted at the end).

RabbitMQ must already be running; nothing else is assumed. Every process listens on loopback only.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from harness.servers import free_port, wait_http

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Keys:
    """The bench account: its AIQT REST key pair and its paper-exchange key pair."""

    api_key: str = field(default_factory=lambda: "bench-" + secrets.token_hex(12))
    api_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    exchange_key: str = field(default_factory=lambda: "bx" + secrets.token_hex(30))
    exchange_secret: str = field(default_factory=lambda: "bs" + secrets.token_hex(30))
    admin_token: str = field(default_factory=lambda: secrets.token_hex(16))


class ProcessStack:
    """paper + N workers + gateway as subprocesses; `stop()` ends them and deletes the namespace."""

    def __init__(self, amqp_url: str, queue_type: str = "quorum", *, log_level: str = "WARNING") -> None:
        self.amqp_url = amqp_url
        self.queue_type = queue_type
        self.namespace = f"bench-{uuid.uuid4().hex[:10]}"
        self.keys = Keys()
        self.log_level = log_level
        self._tmp = tempfile.TemporaryDirectory(prefix="aiqt-bench-")
        self.data_dir = Path(self._tmp.name)
        self.paper_port = free_port()
        self.gateway_port = free_port()
        self.paper_url = f"http://127.0.0.1:{self.paper_port}"
        self.gateway_url = f"http://127.0.0.1:{self.gateway_port}"
        self.paper: subprocess.Popen[bytes] | None = None
        self.gateway: subprocess.Popen[bytes] | None = None
        self.workers: list[tuple[subprocess.Popen[bytes], int]] = []  # (process, metrics port)

    # --- environment ------------------------------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIQT_")}
        env.update(
            AIQT_AMQP_URL=self.amqp_url,
            AIQT_BUS_NAMESPACE=self.namespace,
            AIQT_QUEUE_TYPE=self.queue_type,
            PYTHONPATH=str(ROOT),
        )
        return env

    def _spawn(self, role: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.data_dir / f"{role}-{len(self.workers)}.log", "ab")  # noqa: SIM115 - owned by the child
        return subprocess.Popen(
            [sys.executable, "-m", "aiqt.cli", role, "--log-level", self.log_level],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    #: The paper exchange's Binance rate limits, and the module that serves it (a subclass may wrap it).
    paper_rate_limits = False
    paper_module = "aiqt.cli"

    def start_paper(self) -> None:
        env = self._base_env()
        env.update(
            AIQT_PAPER_PORT=str(self.paper_port),
            AIQT_PAPER_DB=str(self.data_dir / "paper.sqlite3"),
            AIQT_PAPER_ADMIN_TOKEN=self.keys.admin_token,
            AIQT_PAPER_RATE_LIMITS=str(self.paper_rate_limits).lower(),
            AIQT_PAPER_STARTING_BALANCE="1000000",
            AIQT_PAPER_ACCOUNTS=json.dumps(
                [{"name": "bench", "api_key": self.keys.exchange_key, "api_secret": self.keys.exchange_secret}]
            ),
        )
        if self.paper_module == "aiqt.cli":
            self.paper = self._spawn("paper", env)
        else:
            log = open(self.data_dir / "paper.log", "ab")  # noqa: SIM115 - owned by the child
            self.paper = subprocess.Popen(
                [sys.executable, "-m", self.paper_module], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        wait_http(f"{self.paper_url}/_paper/health")

    def start_worker(self, **env_overrides: str) -> int:
        """Start one more worker (extra AIQT_* variables may be given); returns its Prometheus port."""
        port = free_port()
        env = self._base_env()
        env.update(
            AIQT_EXCHANGE_URL=self.paper_url,
            AIQT_ACCOUNTS=json.dumps(
                {"main": {"api_key": self.keys.exchange_key, "api_secret": self.keys.exchange_secret}}
            ),
            AIQT_METRICS_PORT=str(port),
            **env_overrides,
        )
        proc = self._spawn("worker", env)
        self.workers.append((proc, port))
        wait_http(f"http://127.0.0.1:{port}/metrics")
        return port

    def paper_admin(self, method: str, path: str, body: dict[str, object] | None = None) -> object:
        """A /_paper/ test control (faults, clock), with the admin token."""
        r = httpx.request(
            method,
            f"{self.paper_url}/_paper/{path}",
            json=body,
            headers={"X-Paper-Admin-Token": self.keys.admin_token},
            timeout=10,
        )
        r.raise_for_status()
        return r.json()

    def stop_worker(self) -> None:
        proc, _ = self.workers.pop()
        stop_process(proc)

    def start_gateway(self) -> None:
        env = self._base_env()
        env.update(
            AIQT_GATEWAY_PORT=str(self.gateway_port),
            AIQT_CLIENT_KEYS=json.dumps(
                [{"key": self.keys.api_key, "secret": self.keys.api_secret, "account": "main"}]
            ),
        )
        self.gateway = self._spawn("gateway", env)
        wait_http(f"{self.gateway_url}/healthz")

    def wait_ready(self, workers: int, timeout: float = 30.0) -> None:
        """Until the gateway sees `workers` consumers on the command queue."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                detail = httpx.get(f"{self.gateway_url}/readyz", timeout=2).json().get("data") or {}
                if detail.get("workers") == workers:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the gateway did not see {workers} worker(s) within {timeout:g}s")

    def pids(self) -> dict[str, list[int]]:
        return {
            "paper": [self.paper.pid] if self.paper else [],
            "gateway": [self.gateway.pid] if self.gateway else [],
            "worker": [p.pid for p, _ in self.workers],
        }

    def stop(self) -> None:
        procs = [p for p, _ in self.workers] + [p for p in (self.gateway, self.paper) if p is not None]
        for proc in procs:
            stop_process(proc)
        self.workers.clear()
        self._tmp.cleanup()


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
