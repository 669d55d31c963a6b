"""Make sure a RabbitMQ answers before AIQT needs one, or say in one line what to do.

`make dev`, `make test` and `.ci/run` (through `make test`) all run this file, and `aiqt dev` imports
it, so the four cannot drift apart. The order of the decision:

1. one of the configured nodes (`AIQT_AMQP_URL`, comma-separated for a cluster) answers AMQP: use it;
2. it is on this machine and `rabbitmq-server` is installed: start it in the background
   (`rabbitmq-server -detached`) and wait, bounded by `AIQT_BROKER_WAIT` seconds, until it answers;
3. a Docker engine answers `docker info`: start a RabbitMQ container (for the tests, testcontainers
   starts its own, see tests/support/broker.py, so nothing is started here);
4. otherwise print the exact install command for Debian/Ubuntu and macOS and exit non-zero.

It never waits silently: every wait prints where it waits and for how long. It is standard library
only and is run by path (`python3 aiqt/ensure_broker.py`), because the Makefile runs it before the
virtualenv exists, so that a machine without any broker learns it before a minutes-long install.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
DOCKER_IMAGE = "rabbitmq:3.13-management"  # the image compose.yaml and testcontainers use
DEFAULT_WAIT = 90.0
LOOPBACK = {"localhost", "127.0.0.1", "::1"}
PROGRESS_EVERY = 10.0

# The AMQP 0-9-1 protocol header; a broker answers it with Connection.Start (class 10, method 10).
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


class BrokerUnavailable(Exception):
    """No broker answers and none could be started; the message is the one line to show."""


@dataclasses.dataclass(frozen=True)
class Node:
    """One broker node from an AMQP URL."""

    url: str
    host: str
    port: int
    user: str
    password: str
    vhost: str

    @property
    def local(self) -> bool:
        return self.host in LOOPBACK or self.host.startswith("127.")

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_urls(value: str) -> list[Node]:
    """The nodes of `AIQT_AMQP_URL`: one URL or several separated by commas (a cluster)."""
    nodes = []
    for raw in value.split(","):
        url = raw.strip()
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in {"amqp", "amqps"}:
            raise BrokerUnavailable(f"not an amqp:// or amqps:// URL: {redact(url)}")
        nodes.append(
            Node(
                url=url,
                host=parts.hostname or "127.0.0.1",
                port=parts.port or (5671 if parts.scheme == "amqps" else 5672),
                user=unquote(parts.username or "guest"),
                password=unquote(parts.password or "guest"),
                vhost=unquote(parts.path[1:]) if len(parts.path) > 1 else "/",
            )
        )
    if not nodes:
        raise BrokerUnavailable("no AMQP URL configured")
    return nodes


def redact(urls: str) -> str:
    """The URL(s) without their passwords, for printing."""
    shown = []
    for raw in urls.split(","):
        parts = urlsplit(raw.strip())
        if parts.password is not None:
            host = parts.netloc.rpartition("@")[2]
            parts = parts._replace(netloc=f"{parts.username}@{host}")
        shown.append(parts.geturl())
    return ",".join(shown)


def probe(host: str, port: int, timeout: float = 3.0) -> str:
    """ "amqp" if an AMQP 0-9-1 broker answers there, "closed" if nothing listens, "other" otherwise."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return "closed"
    with sock:
        try:
            sock.sendall(PROTOCOL_HEADER)
            reply = b""
            while len(reply) < 11:
                chunk = sock.recv(11 - len(reply))
                if not chunk:
                    break
                reply += chunk
        except OSError:
            return "other"
    # A frame: type 1 (method), channel 0, size (4 bytes), then class 10 method 10 = Connection.Start.
    # A broker that speaks another AMQP version answers with its own protocol header instead.
    if reply.startswith(b"AMQP") or (
        len(reply) == 11 and reply[:3] == b"\x01\x00\x00" and reply[7:11] == b"\x00\x0a\x00\x0a"
    ):
        return "amqp"
    return "other"


def find_executable(name: str) -> str | None:
    """`name` on PATH, or in the `sbin` beside a `bin` on PATH: Debian puts `rabbitmq-server` in
    /usr/sbin and Homebrew in $(brew --prefix)/sbin, neither of which is on a normal user's PATH."""
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    candidates = dirs + [str(Path(d).parent / "sbin") for d in dirs if Path(d).name == "bin"]
    for directory in candidates:
        path = Path(directory) / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def node_running() -> bool:
    """Whether a RabbitMQ node already runs on this machine (`rabbitmqctl status`); True when unsure,
    so that a node that is not ours is never started over, nor stopped."""
    ctl = find_executable("rabbitmqctl")
    if ctl is None:
        return False
    try:
        done = subprocess.run(
            [ctl, "-q", "status"], stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        return True
    except OSError:
        return False
    return done.returncode == 0


def docker_engine(timeout: float = 10.0) -> bool:
    """Whether a Docker engine answers (a `docker` client alone is not enough)."""
    docker = find_executable("docker")
    if docker is None:
        return False
    try:
        done = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


def install_hint() -> str:
    sudo = "" if hasattr(os, "geteuid") and os.geteuid() == 0 else "sudo "
    return (
        f"install RabbitMQ: `{sudo}apt-get update && {sudo}apt-get install rabbitmq-server` on Debian/Ubuntu, "
        "`brew install rabbitmq` on macOS; then run this again"
    )


@dataclasses.dataclass(frozen=True)
class Plan:
    """What `ensure` would do: "answering", "booting" (a node runs: wait for it), "local" (start
    rabbitmq-server), "docker" or "testcontainers"."""

    action: str
    node: Node
    executable: str | None = None


def decide(urls: str, *, source: str = "AIQT_AMQP_URL", tests: bool = False) -> Plan:
    """The decision alone, without starting anything; raises BrokerUnavailable with the one line."""
    nodes = parse_urls(urls)
    states = {node: probe(node.host, node.port) for node in nodes}
    for node, state in states.items():
        if state == "amqp":
            return Plan("answering", node)
    where = ", ".join(node.address for node in nodes)
    local = next((node for node in nodes if node.local), None)
    if local is None:
        raise BrokerUnavailable(
            f"no RabbitMQ answers at {where} ({source}) and it is not on this machine, so nothing was started: "
            f"start it there, or point {source} at a running one"
        )
    if states[local] == "other":
        raise BrokerUnavailable(
            f"something listens on {local.address} but does not answer as an AMQP broker: "
            f"stop it, or point {source} at your RabbitMQ"
        )
    server = find_executable("rabbitmq-server")
    if server is not None:
        # A node that runs but does not answer here is booting, or listens elsewhere: starting another
        # would fail (the node name is taken) and "stopping what we started" would stop that one.
        return Plan("booting" if node_running() else "local", local, server)
    if docker_engine():
        return Plan("testcontainers" if tests else "docker", local)
    raise BrokerUnavailable(
        f"no RabbitMQ answers at {where} ({source}) and none can be started here "
        f"(rabbitmq-server is not installed and no Docker engine answers); {install_hint()}"
    )


@dataclasses.dataclass
class Broker:
    """The broker in use, and how to stop it if `ensure` started it."""

    urls: str
    how: str
    stop_argv: list[str] | None = None
    stop_env: dict[str, str] | None = None

    @property
    def started(self) -> bool:
        return self.stop_argv is not None

    def describe(self) -> str:
        """The line to print: `Broker: <urls without passwords> (<how>)`."""
        return f"Broker: {redact(self.urls)} ({self.how})" if self.urls else f"Broker: {self.how}"

    def stop(self, out: Callable[[str], None] = print) -> None:
        """Stop the broker if (and only if) `ensure` started it; idempotent."""
        if self.stop_argv is None:
            return
        argv, self.stop_argv = self.stop_argv, None
        out(f"Stopping the RabbitMQ it started ({' '.join(argv)})")
        try:
            done = subprocess.run(
                argv,
                env={**os.environ, **(self.stop_env or {})},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            out(f"could not stop it ({exc}); stop it by hand: {' '.join(argv)}")
            return
        if done.returncode != 0:
            out(f"could not stop it: {_last_line(done.stdout + done.stderr)}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def wait_for(node: Node, timeout: float, what: str, out: Callable[[str], None]) -> bool:
    """Wait until `node` answers AMQP, printing progress; False after `timeout` seconds."""
    out(f"Waiting up to {timeout:g} s for {what} to answer on {node.address}")
    start = time.monotonic()
    next_note = start + PROGRESS_EVERY
    while True:
        if probe(node.host, node.port, timeout=2.0) == "amqp":
            return True
        now = time.monotonic()
        if now - start >= timeout:
            return False
        if now >= next_note:
            out(f"  still waiting for {what} on {node.address} ({now - start:.0f} s of {timeout:g} s)")
            next_note += PROGRESS_EVERY
        time.sleep(min(0.5, max(0.0, timeout - (now - start))))


def _wait_or_stop(node: Node, wait: float, what: str, out: Callable[[str], None], stop: Broker | None) -> bool:
    """`wait_for`; if it fails or is interrupted, stop what was just started (when `stop` is given)."""
    try:
        answered = wait_for(node, wait, what, out)
    except BaseException:
        if stop is not None:
            stop.stop(out)
        raise
    if not answered and stop is not None:
        stop.stop(out)
    return answered


def _start_local(plan: Plan, who: str, wait: float, keep: bool, out: Callable[[str], None]) -> Broker:
    assert plan.executable is not None
    node = plan.node
    env = {"RABBITMQ_NODE_PORT": str(node.port)}
    out(f"RabbitMQ does not answer on {node.address}; starting it: rabbitmq-server -detached")
    with tempfile.TemporaryFile("w+") as log:
        # Output to a file, not a pipe: the daemon inherits its descriptors and would hold a pipe open.
        try:
            code = subprocess.run(
                [plan.executable, "-detached"],
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal does not hit the broker; `stop` does
                timeout=120,
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            code = -1
        log.seek(0)
        output = log.read()
    if code != 0:
        raise BrokerUnavailable(
            f"`rabbitmq-server -detached` failed (exit {code}: {_last_line(output)}); start RabbitMQ yourself: "
            "`sudo systemctl start rabbitmq-server` on Debian/Ubuntu, `brew services start rabbitmq` on macOS"
        )
    ctl = find_executable("rabbitmqctl")
    stop = Broker("", "", [ctl, "shutdown"], env) if ctl else None
    if not _wait_or_stop(node, wait, "RabbitMQ", out, None if keep else stop):
        raise BrokerUnavailable(
            f"RabbitMQ was started but did not answer on {node.address} within {wait:g} s (AIQT_BROKER_WAIT); "
            "its log says why (`rabbitmq-diagnostics log_tail`, or /var/log/rabbitmq/)"
        )
    if keep or stop is None:  # without rabbitmqctl there is no clean way to stop it: say so
        hint = f"; it keeps running (stop: {ctl or 'rabbitmqctl'} shutdown)"
        return Broker(node.url, f"started by {who}{hint}")
    return Broker(node.url, f"started by {who}", stop.stop_argv, env)


def _start_container(plan: Plan, who: str, wait: float, keep: bool, out: Callable[[str], None]) -> Broker:
    node = plan.node
    docker = find_executable("docker") or "docker"
    name = f"aiqt-rabbitmq-{node.port}"
    bind = "[::1]" if node.host == "::1" else "127.0.0.1"
    # The credentials go in the environment (`-e NAME` copies it), not on a command line anyone can read.
    env = {
        "RABBITMQ_DEFAULT_USER": node.user,
        "RABBITMQ_DEFAULT_PASS": node.password,
        "RABBITMQ_DEFAULT_VHOST": node.vhost,
    }
    argv = [docker, "run", "-d", "--rm", "--name", name, "-p", f"{bind}:{node.port}:5672"]
    argv += [arg for key in env for arg in ("-e", key)]
    out(f"RabbitMQ does not answer on {node.address}; starting a container: docker run {DOCKER_IMAGE} (as {name})")
    try:
        done = subprocess.run(
            [*argv, DOCKER_IMAGE],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,  # the container id; the image download's progress goes to the terminal
            text=True,
            timeout=900,
            check=False,
        )
        code = done.returncode
    except subprocess.TimeoutExpired:
        code = -1
    if code != 0:
        raise BrokerUnavailable(f"`docker run {DOCKER_IMAGE}` failed (exit {code}); {install_hint()}")
    stop = Broker("", "", [docker, "stop", name])
    if not _wait_or_stop(node, wait, f"the RabbitMQ container {name}", out, None if keep else stop):
        raise BrokerUnavailable(
            f"the RabbitMQ container {name} did not answer on {node.address} within {wait:g} s (AIQT_BROKER_WAIT); "
            f"its log says why: `docker logs {name}`"
        )
    if keep:
        return Broker(node.url, f"started by {who} in container {name}; it keeps running (stop: docker stop {name})")
    return Broker(node.url, f"started by {who} in container {name}", stop.stop_argv)


def wait_seconds() -> float:
    value = os.environ.get("AIQT_BROKER_WAIT", "")
    try:
        return float(value) if value else DEFAULT_WAIT
    except ValueError:
        raise BrokerUnavailable(f"AIQT_BROKER_WAIT must be a number of seconds, not {value!r}") from None


def ensure(
    urls: str,
    *,
    who: str,
    keep: bool,
    source: str = "AIQT_AMQP_URL",
    tests: bool = False,
    out: Callable[[str], None] = print,
) -> Broker:
    """A broker that answers at `urls`, started here if need be; raises BrokerUnavailable otherwise.

    `keep`: leave what was started running (make test, .ci/run) instead of handing back how to stop it
    (aiqt dev). `tests`: where only Docker could give a broker, leave it to testcontainers."""
    plan = decide(urls, source=source, tests=tests)
    if plan.action == "answering":
        nodes = len(parse_urls(urls))
        how = "already running" if nodes == 1 else f"already running: {plan.node.address} answers"
        return Broker(urls, how)
    if plan.action == "booting":
        node, wait = plan.node, wait_seconds()
        out(f"A RabbitMQ node runs on this machine but does not answer on {node.address} yet")
        if not wait_for(node, wait, "RabbitMQ", out):
            raise BrokerUnavailable(
                f"a RabbitMQ node runs on this machine but did not answer on {node.address} within "
                f"{wait:g} s (AIQT_BROKER_WAIT): point {source} at the port it listens on "
                "(`rabbitmq-diagnostics listeners`)"
            )
        return Broker(urls, "already running")
    if plan.action == "testcontainers":
        return Broker("", "none answers; the tests start a RabbitMQ container with testcontainers")
    start = _start_local if plan.action == "local" else _start_container
    return start(plan, who, wait_seconds(), keep, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tests", action="store_true", help="for the test suite: AIQT_TEST_AMQP_URL; testcontainers")
    parser.add_argument("--check", action="store_true", help="start nothing; fail only if no broker can be had")
    parser.add_argument("--who", default="ensure_broker", help="who is asking, for the messages")
    parser.add_argument("--url", help="AMQP URL(s), comma-separated (default: AIQT_AMQP_URL)")
    args = parser.parse_args(argv)
    source = "AIQT_TEST_AMQP_URL" if args.tests else "AIQT_AMQP_URL"
    urls = args.url or os.environ.get(source) or DEFAULT_URL

    def out(line: str) -> None:
        print(line, flush=True)

    try:
        if args.check:
            decide(urls, source=source, tests=args.tests)
            return 0
        broker = ensure(urls, who=args.who, keep=True, source=source, tests=args.tests, out=out)
    except BrokerUnavailable as exc:
        print(f"{args.who}: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    out(broker.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
