"""A whole AIQT stack in this process, for integration tests and the chaos run: workers and a gateway
(in threads) in front of a running paper exchange, on a bus namespace of their own, with a pool of
separate paper accounts (one per test). `stop()` ends what it started and deletes the namespace."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiqt.client import AiqtClient, AsyncAiqtClient
from bus import BusSettings, Topology
from bus.connection import connect_first
from bus.events import EventTopology, read_journal
from gateway.app import create_app
from gateway.settings import ClientKey, GatewaySettings
from harness.broker import delete_namespace
from harness.fapi import fapi
from harness.servers import LoopThread, ThreadedUvicorn
from paper.embedded import PaperAdmin
from streamer.service import Streamer
from streamer.settings import StreamerSettings
from worker.service import Worker
from worker.settings import ExchangeCredentials, WorkerSettings


@dataclass(frozen=True)
class Account:
    name: str
    api_key: str  # AIQT REST key
    api_secret: str
    exchange_key: str  # the paper exchange's key of this account
    exchange_secret: str


class Stack:
    def __init__(
        self,
        amqp_url: str,
        paper_url: str,
        admin: PaperAdmin,
        *,
        accounts: int = 8,
        queue_type: str = "quorum",
        worker: dict[str, Any] | None = None,
        gateway: dict[str, Any] | None = None,
    ) -> None:
        self.amqp_url = amqp_url
        self.paper_url = paper_url
        self.admin = admin
        self.namespace = f"test-{uuid.uuid4().hex[:12]}"
        self.queue_type = queue_type
        self.accounts: list[Account] = []
        for i in range(accounts):
            created = admin.create_account(name=f"{self.namespace}-{i}")
            self.accounts.append(
                Account(
                    f"acct{i}", f"key-{uuid.uuid4().hex}", uuid.uuid4().hex, created["apiKey"], created["apiSecret"]
                )
            )
        self._free = list(self.accounts)
        self._worker_overrides = worker or {}
        self._gateway_overrides = gateway or {}
        self._loops: list[tuple[LoopThread, Worker]] = []
        self._streamers: list[tuple[LoopThread, Streamer]] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self.gateway: ThreadedUvicorn | None = None
        self._stopped = False

    # --- settings ---------------------------------------------------------------------------

    @property
    def bus(self) -> BusSettings:
        return BusSettings(amqp_url=self.amqp_url, bus_namespace=self.namespace, queue_type=self.queue_type)

    @property
    def topology(self) -> Topology:
        return Topology(self.namespace, self.queue_type)

    def worker_settings(self, **overrides: Any) -> WorkerSettings:
        return WorkerSettings(
            amqp_url=self.amqp_url,
            bus_namespace=self.namespace,
            queue_type=self.queue_type,
            exchange_url=self.paper_url,
            accounts={
                a.name: ExchangeCredentials(api_key=a.exchange_key, api_secret=a.exchange_secret) for a in self.accounts
            },
            # The shared test paper exchange enforces no rate limits: ungoverned unless a test asks.
            **{"worker_concurrency": 32, "governor": False, **self._worker_overrides, **overrides},
        )

    def worker_env(self, **overrides: Any) -> dict[str, str]:
        s = self.worker_settings(**overrides)
        env = {
            "AIQT_AMQP_URL": s.amqp_url,
            "AIQT_BUS_NAMESPACE": s.bus_namespace,
            "AIQT_QUEUE_TYPE": s.queue_type,
            "AIQT_EXCHANGE_URL": s.exchange_url,
            "AIQT_ACCOUNTS": json.dumps(
                {
                    n: {"api_key": c.api_key, "api_secret": c.api_secret.get_secret_value()}
                    for n, c in s.accounts.items()
                }
            ),
            "AIQT_PROTECTION_POLICY": s.protection_policy,
            "AIQT_EXCHANGE_TIMEOUT": str(s.exchange_timeout),
            "AIQT_RECV_WINDOW": str(s.recv_window),
            "AIQT_WORKER_CONCURRENCY": str(s.worker_concurrency),
            "AIQT_GOVERNOR": str(s.governor).lower(),
        }
        return env

    def gateway_settings(self, **overrides: Any) -> GatewaySettings:
        return GatewaySettings(
            amqp_url=self.amqp_url,
            bus_namespace=self.namespace,
            queue_type=self.queue_type,
            client_keys=[ClientKey(key=a.api_key, secret=a.api_secret, account=a.name) for a in self.accounts],
            **{**self._gateway_overrides, **overrides},
        )

    # --- processes --------------------------------------------------------------------------

    @property
    def workers(self) -> list[Worker]:
        """The workers running in threads of this process (not the spawned ones)."""
        return [worker for _, worker in self._loops]

    def start_worker(self, **overrides: Any) -> Worker:
        """A worker on its own event loop in a thread of this process; any setting may be overridden."""
        loop = LoopThread()
        worker = Worker(self.worker_settings(**overrides))
        loop.run(worker.start())
        self._loops.append((loop, worker))
        return worker

    def streamer_settings(self, **overrides: Any) -> StreamerSettings:
        base = self.worker_settings().model_dump()
        tuned = {"stream_symbols": [], "leader_retry": 0.5, "listen_key_keepalive": 2.0}
        return StreamerSettings(**{**base, **tuned, **overrides})

    def start_streamer(self, **overrides: Any) -> Streamer:
        """A streamer on its own event loop in a thread of this process."""
        loop = LoopThread()
        streamer = Streamer(self.streamer_settings(**overrides))
        loop.run(streamer.start())
        self._streamers.append((loop, streamer))
        return streamer

    def spawn_streamer(self, **overrides: Any) -> subprocess.Popen[bytes]:
        """A streamer in its own OS process (`aiqt streamer`), for tests that kill it."""
        env = {**os.environ, **self.worker_env(), "AIQT_STREAM_SYMBOLS": "[]", "AIQT_LEADER_RETRY": "0.5"}
        env["AIQT_LISTEN_KEY_KEEPALIVE"] = "2"
        env.update({f"AIQT_{k.upper()}": str(v) for k, v in overrides.items()})
        proc = subprocess.Popen([sys.executable, "-m", "aiqt.cli", "streamer", "--log-level", "WARNING"], env=env)
        self._procs.append(proc)
        return proc

    def streamer_leading(self, account: Account, timeout: float = 60.0) -> None:
        """Wait until a streamer leads the account and has finished its first resync (from the journal)."""

        async def resynced() -> bool:
            connection, _ = await connect_first(self.amqp_url)
            async with connection:
                since = int(time.time() * 1000) - 120_000
                events = await read_journal(connection, EventTopology(self.namespace), since_ms=since, until_idle=0.3)
            return any(
                e.get("account") == account.name and e.get("type") == "stream" and e["data"].get("status") == "resynced"
                for e in events
            )

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if asyncio.run(resynced()):
                return
            time.sleep(0.2)
        raise AssertionError(f"no streamer resynced {account.name} within {timeout}s")

    def spawn_worker(self, **overrides: Any) -> subprocess.Popen[bytes]:
        """A worker in its own OS process (`aiqt worker`), for tests that kill it."""
        env = {**os.environ, **self.worker_env(**overrides)}
        proc = subprocess.Popen([sys.executable, "-m", "aiqt.cli", "worker", "--log-level", "WARNING"], env=env)
        return self.adopt(proc)

    def adopt(self, proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        """A process started elsewhere that `stop()` should end with the stack's own."""
        self._procs.append(proc)
        return proc

    def start_gateway(self, **overrides: Any) -> ThreadedUvicorn:
        self.gateway = ThreadedUvicorn(create_app(self.gateway_settings(**overrides))).start()
        return self.gateway

    def start(self, workers: int = 1) -> Stack:
        for _ in range(workers):
            self.start_worker()
        self.start_gateway()
        return self

    def take_account(self) -> Account:
        return self._free.pop(0)

    def client(self, account: Account) -> AiqtClient:
        assert self.gateway is not None
        return AiqtClient(self.gateway.url, account.api_key, account.api_secret)

    def async_client(self, account: Account) -> AsyncAiqtClient:
        assert self.gateway is not None
        return AsyncAiqtClient(self.gateway.url, account.api_key, account.api_secret)

    def fapi(self, account: Account, method: str, path: str, **params: Any) -> Any:
        """A signed call straight to the paper exchange as this account (another client of it)."""
        return fapi(self.paper_url, account.exchange_key, account.exchange_secret, method, path, **params)

    def limit_order(
        self, account: Account, *, side: str = "BUY", price: str = "92000", qty: str = "0.010", symbol: str = "BTCUSDT"
    ) -> int:
        """A resting LIMIT order placed at the exchange directly (the REST API has no limit orders)."""
        body = self.fapi(
            account,
            "POST",
            "/fapi/v1/order",
            symbol=symbol,
            side=side,
            type="LIMIT",
            timeInForce="GTC",
            quantity=qty,
            price=price,
        )
        assert "orderId" in body, body
        return int(body["orderId"])

    def state(self, account: Account) -> dict[str, Any]:
        """What the paper exchange holds for this account."""
        state: dict[str, Any] = self.admin.state(account.exchange_key)
        return state

    def stop_streamers(self) -> None:
        for loop, streamer in self._streamers:
            try:
                loop.run(streamer.close())
            finally:
                loop.stop()
        self._streamers.clear()

    def stop_workers(self) -> None:
        for loop, worker in self._loops:
            try:
                loop.run(worker.close())
            finally:
                loop.stop()
        self._loops.clear()
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        self._procs.clear()

    def stop(self) -> None:
        """Stop the gateway and the workers, and delete the namespace; a second call does nothing."""
        if self._stopped:
            return
        self._stopped = True
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None
        self.stop_streamers()
        self.stop_workers()
        asyncio.run(delete_namespace(self.amqp_url, self.topology, [a.name for a in self.accounts]))


class StackFactory:
    """`make(**options) -> Stack`: stacks in front of one paper exchange, each on its own namespace;
    `close()` (or leaving the `with` block) stops every stack it made. The tests' `make_stack`
    fixtures are this, at function and module scope.

    `workers` threaded workers are started, then the gateway if `gateway_up`; everything else
    (`accounts`, `queue_type`, `worker` and `gateway` settings overrides, another `amqp_url`) goes
    to `Stack`.
    """

    def __init__(self, amqp_url: str, paper_url: str, admin: PaperAdmin) -> None:
        self.amqp_url = amqp_url
        self.paper_url = paper_url
        self.admin = admin
        self._made: list[Stack] = []

    def __call__(
        self,
        *,
        workers: int = 0,
        gateway_up: bool = False,
        amqp_url: str | None = None,
        accounts: int = 8,
        queue_type: str = "quorum",
        worker: dict[str, Any] | None = None,
        gateway: dict[str, Any] | None = None,
    ) -> Stack:
        stack = Stack(
            amqp_url or self.amqp_url,
            self.paper_url,
            self.admin,
            accounts=accounts,
            queue_type=queue_type,
            worker=worker,
            gateway=gateway,
        )
        self._made.append(stack)
        for _ in range(workers):
            stack.start_worker()
        if gateway_up:
            stack.start_gateway()
        return stack

    def close(self) -> None:
        """Stop every stack made, the last first; each is stopped even if another fails to stop."""
        with contextlib.ExitStack() as stops:
            for stack in self._made:
                stops.callback(stack.stop)
            self._made.clear()

    def __enter__(self) -> StackFactory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
