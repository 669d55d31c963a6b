"""A throwaway 3-node RabbitMQ cluster on this machine, beside the broker other tests use.

The recipe of `rabbitmq-cluster.md`: Debian's `rabbitmq-server` and `rabbitmqctl` run as the
`rabbitmq` user (its HOME holds the Erlang cookie every node and CLI call must share), so the real
scripts in /usr/lib/rabbitmq/bin are called through `su rabbitmq`. Each node gets its own config
(listener port), data and log directories, and an empty plugins file so that no two nodes fight over
the management or Prometheus ports. Node names and ports are picked per run, so two runs (or another
engineer's cluster on the documented ports 5681–5683) do not collide.

`stop()` stops only these nodes (by name, then by their own pid file if that failed) and removes the
directory; it is safe to call on a half-started cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from harness.servers import free_port
from tests.support.broker import skip_unless_ci

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def require_rabbitmq() -> None:
    """Skip (fail under CI) unless this machine can run extra RabbitMQ nodes."""
    if not (RABBIT_BIN / "rabbitmq-server").exists() or shutil.which("su") is None:
        skip_unless_ci(f"rabbitmq-server is not installed ({RABBIT_BIN})")
    try:
        pwd.getpwnam("rabbitmq")
    except KeyError:
        skip_unless_ci("there is no rabbitmq user to run the cluster's nodes as")
    if os.geteuid() != 0:
        skip_unless_ci("starting RabbitMQ nodes as the rabbitmq user needs root")


class Cluster:
    def __init__(self, size: int = 3) -> None:
        run = uuid.uuid4().hex[:6]
        self.dir = Path(tempfile.mkdtemp(prefix=f"aiqt-cluster-{run}-"))
        self.dir.chmod(0o755)
        self.names = [f"aiqt{run}n{i}@localhost" for i in range(1, size + 1)]
        self.ports = [free_port() for _ in range(size)]
        self.dist_ports = [free_port() for _ in range(size)]
        self.started: list[int] = []

    def url(self, i: int) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.ports[i]}/"

    @property
    def amqp_url(self) -> str:
        """Every node's URL, comma-separated: what AIQT_AMQP_URL holds for a cluster."""
        return ",".join(self.url(i) for i in range(len(self.names)))

    def node_of_port(self, port: int) -> int:
        return self.ports.index(port)

    # --- running the scripts as the rabbitmq user -----------------------------------------------

    def _as_rabbitmq(self, command: str, env: dict[str, str] | None = None, timeout: float = 60) -> str:
        prefix = " ".join(f"{k}={v}" for k, v in (env or {}).items())
        line = f"env {prefix} {command}" if prefix else command
        done = subprocess.run(
            ["su", "rabbitmq", "-s", "/bin/sh", "-c", line], capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command!r} failed ({done.returncode}): {done.stdout}{done.stderr}")
        return done.stdout

    def ctl(self, i: int, *args: str, timeout: float = 60) -> str:
        return self._as_rabbitmq(f"{RABBIT_BIN}/rabbitmqctl -n {self.names[i]} {' '.join(args)}", timeout=timeout)

    def quorum_states(self, queue: str, *, via: int = 0) -> dict[str, str]:
        """node name → Raft state (leader, follower, noproc, …) of each member of a quorum queue."""
        out = self._as_rabbitmq(
            f"{RABBIT_BIN}/rabbitmq-queues -n {self.names[via]} quorum_status {queue} --formatter json"
        )
        rows = json.loads(out[out.index("[") :])
        return {str(row["Node Name"]): str(row["Raft State"]) for row in rows}

    # --- life cycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> Cluster:
        for i in range(len(self.names)):
            d = self.dir / f"n{i + 1}"
            (d / "mnesia").mkdir(parents=True)
            (d / "log").mkdir()
            (d / "enabled_plugins").write_text("[].\n")
            conf = f"listeners.tcp.local = 127.0.0.1:{self.ports[i]}\nloopback_users = none\n"
            (d / "rabbitmq.conf").write_text(conf)
            subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(d)], check=True)
            env = {
                "RABBITMQ_NODENAME": self.names[i],
                "RABBITMQ_NODE_PORT": str(self.ports[i]),
                "RABBITMQ_DIST_PORT": str(self.dist_ports[i]),
                "RABBITMQ_MNESIA_BASE": f"{d}/mnesia",
                "RABBITMQ_LOG_BASE": f"{d}/log",
                "RABBITMQ_ENABLED_PLUGINS_FILE": f"{d}/enabled_plugins",
                "RABBITMQ_CONFIG_FILE": f"{d}/rabbitmq.conf",
                "RABBITMQ_PID_FILE": f"{d}/pid",
                "RABBITMQ_ADVANCED_CONFIG_FILE": f"{d}/advanced.config",
            }
            self._as_rabbitmq(f"{RABBIT_BIN}/rabbitmq-server -detached", env)
            self.started.append(i)
        end = time.monotonic() + timeout
        for i in range(len(self.names)):
            self._await_node(i, end)
        for i in range(1, len(self.names)):
            self.ctl(i, "stop_app")
            self.ctl(i, "join_cluster", self.names[0])
            self.ctl(i, "start_app")
        status = self.ctl(0, "cluster_status")
        assert all(name in status for name in self.names), status
        return self

    def _await_node(self, i: int, end: float) -> None:
        # `await_startup` right after -detached fails (the node is not yet known to epmd): poll first.
        while True:
            try:
                self.ctl(i, "await_startup", "--timeout", "30", timeout=40)
                return
            except (RuntimeError, subprocess.TimeoutExpired):
                if time.monotonic() > end:
                    raise
                time.sleep(1)

    def stop_app(self, i: int) -> None:
        self.ctl(i, "stop_app")

    def start_app(self, i: int) -> None:
        self.ctl(i, "start_app")
        self.ctl(i, "await_startup", "--timeout", "30", timeout=40)

    def stop(self) -> None:
        """Stop only this cluster's nodes and remove its directory (also after a failed start)."""
        for i in reversed(self.started):
            try:
                self.ctl(i, "stop", timeout=30)
            except (RuntimeError, subprocess.TimeoutExpired):
                pid_file = self.dir / f"n{i + 1}" / "pid"
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        self.started.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
