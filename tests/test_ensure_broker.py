"""aiqt/ensure_broker.py, the one broker check behind `make dev`, `make test`, `.ci/run` and `aiqt dev`.

The script runs for real (a subprocess, as the Makefile runs it). The cases where no broker answers
never touch the shared one: they point it at a free port, and PATH holds only a folder of fakes,
so the real `rabbitmq-server` / `rabbitmqctl` can never be reached (the script also looks in the
`sbin` beside each `bin` on PATH; the fakes' folder has none). The fake `rabbitmq-server` really
starts a listener that answers the AMQP protocol header, so "started, then found" is real.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiqt import ensure_broker
from harness.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "aiqt" / "ensure_broker.py"

# Answers the AMQP 0-9-1 header with the start of a Connection.Start frame, as RabbitMQ does.
LISTENER = """
import os, socket, sys, time
port, pidfile, delay = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
with open(pidfile, "a") as f:
    f.write(f"{os.getpid()}\\n")
time.sleep(delay)
server = socket.create_server(("127.0.0.1", port))
start = b"\\x01\\x00\\x00" + (4).to_bytes(4, "big") + b"\\x00\\x0a\\x00\\x0a\\xce"
while True:
    conn, _ = server.accept()
    with conn:
        try:
            if conn.recv(8) == b"AMQP\\x00\\x00\\x09\\x01":
                conn.sendall(start)
        except OSError:
            pass
"""


class Fakes:
    """A folder of fake commands that is the whole PATH, a log of their calls, the listeners they start."""

    def __init__(self, tmp: Path) -> None:
        self.bin = tmp / "bin"
        self.bin.mkdir()
        self.log = tmp / "calls.log"
        self.log.touch()
        self.pids = tmp / "listener.pids"
        self.pids.touch()
        self.listener = tmp / "listener.py"
        self.listener.write_text(LISTENER)

    def add(self, name: str, body: str) -> None:
        """A fake `name`: Python with `argv`, `log(line)` and `listen(port, delay)` at hand."""
        prelude = f"""\
            #!{sys.executable}
            import os, subprocess, sys
            argv = sys.argv[1:]
            def log(line):
                with open({str(self.log)!r}, "a") as f:
                    f.write(line + "\\n")
            def listen(port, delay):
                subprocess.Popen(
                    [{sys.executable!r}, {str(self.listener)!r}, str(port), {str(self.pids)!r}, str(delay)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            def stop_listeners():
                for pid in open({str(self.pids)!r}).read().split():
                    try:
                        os.kill(int(pid), 15)
                    except ProcessLookupError:
                        pass
            log({name!r} + " " + " ".join(argv))
            """
        path = self.bin / name
        path.write_text(textwrap.dedent(prelude) + textwrap.dedent(body))
        path.chmod(0o755)

    def rabbitmq_server(self, *, starts: bool = True, delay: float = 1.0) -> None:
        body = f"""\
            assert argv == ["-detached"], argv
            if {starts!r}:
                listen(os.environ["RABBITMQ_NODE_PORT"], {delay!r})  # up a moment after -detached returns
            """
        self.add("rabbitmq-server", body)

    def rabbitmqctl(self, *, node_running: bool = False) -> None:
        body = f"""\
            if "status" in argv:
                sys.exit(0 if {node_running!r} else 69)
            if argv == ["shutdown"]:
                stop_listeners()
                sys.exit(0)
            sys.exit(64)
            """
        self.add("rabbitmqctl", body)

    def docker(self, *, engine: bool) -> None:
        body = f"""\
            if not {engine!r}:
                print("Cannot connect to the Docker daemon at unix:///var/run/docker.sock.", file=sys.stderr)
                sys.exit(1)
            if argv[0] == "info":
                print("28.2.2")
            elif argv[0] == "run":
                log("password in env: " + os.environ.get("RABBITMQ_DEFAULT_PASS", "-"))
                port = argv[argv.index("-p") + 1].split(":")[1]
                listen(port, 0.5)
                print("0123456789ab")
            elif argv[0] == "stop":
                stop_listeners()
            """
        self.add("docker", body)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()

    def env(self, url: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIQT_", "RABBITMQ_"))}
        return {**env, "PATH": str(self.bin), "AIQT_AMQP_URL": url, **extra}

    def cleanup(self) -> None:
        for pid in self.pids.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)


@pytest.fixture
def fakes(tmp_path: Path) -> Iterator[Fakes]:
    f = Fakes(tmp_path)
    yield f
    f.cleanup()


def run(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def local_url(port: int, password: str = "guest") -> str:
    return f"amqp://guest:{password}@127.0.0.1:{port}/"


def answers(port: int) -> bool:
    return ensure_broker.probe("127.0.0.1", port, timeout=1) == "amqp"


def eventually_closed(port: int, timeout: float = 10) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if ensure_broker.probe("127.0.0.1", port, timeout=1) == "closed":
            return True
        time.sleep(0.1)
    return False


# --- a broker answers ----------------------------------------------------------------------------


@pytest.mark.integration
def test_an_answering_broker_is_used_as_it_is(amqp_url: str, fakes: Fakes) -> None:
    """A cluster list whose first node is down: the node that answers is enough; nothing is started."""
    fakes.rabbitmq_server()
    fakes.rabbitmqctl()
    urls = f"{local_url(free_port(), 'node1-secret')},{amqp_url}"
    done = run(fakes.env(urls), "--who", "make dev")
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert line.startswith("Broker: amqp://guest@127.0.0.1:") and "(already running: " in line
    assert "secret" not in done.stdout + done.stderr
    assert fakes.calls() == []  # neither rabbitmq-server nor rabbitmqctl


# --- installed but stopped: started, then found --------------------------------------------------


def test_installed_but_stopped_is_started_then_found(fakes: Fakes) -> None:
    fakes.rabbitmq_server(delay=1.5)
    fakes.rabbitmqctl()
    port = free_port()
    done = run(fakes.env(local_url(port)), "--who", "make test")
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0] == f"RabbitMQ does not answer on 127.0.0.1:{port}; starting it: rabbitmq-server -detached"
    assert out[1].startswith(f"Waiting up to 90 s for RabbitMQ to answer on 127.0.0.1:{port}")
    bin_dir = fakes.bin
    assert out[-1] == (
        f"Broker: amqp://guest@127.0.0.1:{port}/ (started by make test; it keeps running "
        f"(stop: {bin_dir}/rabbitmqctl shutdown))"
    )
    assert "rabbitmq-server -detached" in fakes.calls()
    assert answers(port)  # left running: `make test` and CI keep it


def test_aiqt_dev_stops_what_it_started_and_nothing_else(fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    fakes.rabbitmq_server(delay=0.5)
    fakes.rabbitmqctl()
    monkeypatch.setenv("PATH", str(fakes.bin))
    lines: list[str] = []

    port = free_port()
    started = ensure_broker.ensure(local_url(port), who="aiqt dev", keep=False, out=lines.append)
    assert started.describe() == f"Broker: amqp://guest@127.0.0.1:{port}/ (started by aiqt dev)"
    assert answers(port)
    started.stop(out=lines.append)
    assert "rabbitmqctl shutdown" in fakes.calls()
    assert eventually_closed(port)

    # One that was already running is not stopped.
    fakes.log.write_text("")
    other = free_port()
    listener = subprocess.Popen(
        [sys.executable, str(fakes.listener), str(other), str(fakes.pids), "0"], stdout=subprocess.DEVNULL
    )
    try:
        end = time.monotonic() + 10
        while not answers(other) and time.monotonic() < end:
            time.sleep(0.1)
        running = ensure_broker.ensure(local_url(other), who="aiqt dev", keep=False, out=lines.append)
        assert running.describe() == f"Broker: amqp://guest@127.0.0.1:{other}/ (already running)"
        running.stop(out=lines.append)
        assert fakes.calls() == [] and answers(other)
    finally:
        listener.terminate()
        listener.wait(10)


def test_a_node_that_already_runs_elsewhere_is_never_started_over_nor_stopped(fakes: Fakes) -> None:
    """`rabbitmq-server -detached` exits 0 even when the node name is taken, and `rabbitmqctl shutdown`
    would then stop the node that was there: so a running node that does not answer on the configured
    port is waited for, then reported."""
    fakes.rabbitmq_server()
    fakes.rabbitmqctl(node_running=True)
    port = free_port()
    done = run(fakes.env(local_url(port), AIQT_BROKER_WAIT="1"), "--who", "aiqt dev")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"aiqt dev: a RabbitMQ node runs on this machine but did not answer on 127.0.0.1:{port} within 1 s "
        "(AIQT_BROKER_WAIT): point AIQT_AMQP_URL at the port it listens on (`rabbitmq-diagnostics listeners`)"
    )
    assert [c.split()[0] for c in fakes.calls()] == ["rabbitmqctl"]  # `status` only


# --- the bounded wait and a failing start --------------------------------------------------------


def test_the_wait_is_bounded_and_says_so(fakes: Fakes) -> None:
    fakes.rabbitmq_server(starts=False)
    fakes.rabbitmqctl()
    port = free_port()
    began = time.monotonic()
    done = run(fakes.env(local_url(port), AIQT_BROKER_WAIT="2"), "--who", "make test")
    assert time.monotonic() - began < 30
    assert done.returncode == 1
    assert f"Waiting up to 2 s for RabbitMQ to answer on 127.0.0.1:{port}" in done.stdout
    assert done.stderr.strip() == (
        f"make test: RabbitMQ was started but did not answer on 127.0.0.1:{port} within 2 s (AIQT_BROKER_WAIT); "
        "its log says why (`rabbitmq-diagnostics log_tail`, or /var/log/rabbitmq/)"
    )
    assert "rabbitmqctl shutdown" not in fakes.calls()  # make test keeps what it started, even half up


def test_progress_is_printed_while_waiting(fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ensure_broker, "PROGRESS_EVERY", 0.5)
    lines: list[str] = []
    node = ensure_broker.parse_urls(local_url(free_port()))[0]
    assert not ensure_broker.wait_for(node, 1.6, "RabbitMQ", lines.append)
    assert lines[0].startswith("Waiting up to 1.6 s for RabbitMQ")
    assert len(lines) >= 3 and all("still waiting for RabbitMQ" in line for line in lines[1:])


def test_a_start_that_fails_says_how_to_start_it_by_hand(fakes: Fakes) -> None:
    fakes.add("rabbitmq-server", 'print("Only root or rabbitmq should run rabbitmq-server"); sys.exit(1)\n')
    done = run(fakes.env(local_url(free_port())), "--who", "make dev")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "make dev: `rabbitmq-server -detached` failed (exit 1: Only root or rabbitmq should run rabbitmq-server); "
        "start RabbitMQ yourself: `sudo systemctl start rabbitmq-server` on Debian/Ubuntu, "
        "`brew services start rabbitmq` on macOS"
    )


# --- absent: the install command, non-zero -------------------------------------------------------


@pytest.mark.parametrize("mode", [[], ["--tests"], ["--check"]])
def test_absent_prints_the_install_command_and_fails(fakes: Fakes, mode: list[str]) -> None:
    fakes.docker(engine=False)  # a client without an engine, as on these machines
    port = free_port()
    env = fakes.env(local_url(port), AIQT_TEST_AMQP_URL=local_url(port))
    began = time.monotonic()
    done = run(env, *mode, "--who", "make test")
    assert time.monotonic() - began < 30
    assert done.returncode == 1
    assert done.stdout == ""
    source = "AIQT_TEST_AMQP_URL" if mode == ["--tests"] else "AIQT_AMQP_URL"
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"make test: no RabbitMQ answers at 127.0.0.1:{port} ({source}) and none can be started")
    assert "apt-get install rabbitmq-server` on Debian/Ubuntu" in line
    assert "`brew install rabbitmq` on macOS" in line
    assert [c.split()[:2] for c in fakes.calls()] == [["docker", "info"]]


def test_aiqt_dev_without_a_broker_says_what_to_install(fakes: Fakes, tmp_path: Path) -> None:
    fakes.docker(engine=False)
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "aiqt.cli", "dev", "--data-dir", str(tmp_path / "data"), "--port", "0"],
        env=fakes.env(local_url(port)),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"aiqt dev: no RabbitMQ answers at 127.0.0.1:{port}") and "brew install rabbitmq" in line
    assert "AIQT is running" not in done.stdout


def test_a_remote_broker_that_does_not_answer_is_not_started_here(fakes: Fakes) -> None:
    fakes.rabbitmq_server()
    done = run(fakes.env("amqp://guest:guest@broker.invalid:5672/"), "--who", "make dev")
    assert done.returncode == 1
    assert "not on this machine, so nothing was started" in done.stderr
    assert fakes.calls() == []


def test_something_else_on_the_port_is_named(fakes: Fakes) -> None:
    fakes.rabbitmq_server()
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def refuse() -> None:
        for _ in range(5):
            conn, _ = server.accept()
            conn.close()

    threading.Thread(target=refuse, daemon=True).start()
    try:
        done = run(fakes.env(local_url(port)), "--who", "make dev")
    finally:
        server.close()
    assert done.returncode == 1
    assert f"something listens on 127.0.0.1:{port} but does not answer as an AMQP broker" in done.stderr
    assert fakes.calls() == []


# --- Docker --------------------------------------------------------------------------------------


def test_a_docker_engine_gives_a_container(fakes: Fakes) -> None:
    fakes.docker(engine=True)
    port = free_port()
    done = run(fakes.env(local_url(port, "s3cret")), "--who", "make dev")
    assert done.returncode == 0, done.stderr
    name = f"aiqt-rabbitmq-{port}"
    assert done.stdout.splitlines()[-1] == (
        f"Broker: amqp://guest@127.0.0.1:{port}/ (started by make dev in container {name}; "
        f"it keeps running (stop: docker stop {name}))"
    )
    run_call = next(c for c in fakes.calls() if c.startswith("docker run"))
    assert f"-p 127.0.0.1:{port}:5672" in run_call and "s3cret" not in run_call  # the password goes by env
    assert "password in env: s3cret" in fakes.calls()
    assert answers(port)


def test_for_the_tests_docker_is_left_to_testcontainers(fakes: Fakes) -> None:
    fakes.docker(engine=True)
    done = run(fakes.env("", AIQT_TEST_AMQP_URL=local_url(free_port())), "--tests", "--who", "make test")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Broker: none answers; the tests start a RabbitMQ container with testcontainers"
    assert not any(c.startswith("docker run") for c in fakes.calls())


# --- parsing -------------------------------------------------------------------------------------


def test_urls_a_cluster_list_and_redaction() -> None:
    nodes = ensure_broker.parse_urls(
        "amqp://u:p%40ss@10.0.0.1:5673/prod, amqps://rabbit.example, amqp://[::1]/,amqp://localhost"
    )
    assert [(n.host, n.port, n.local) for n in nodes] == [
        ("10.0.0.1", 5673, False),
        ("rabbit.example", 5671, False),
        ("::1", 5672, True),
        ("localhost", 5672, True),
    ]
    assert (nodes[0].user, nodes[0].password, nodes[0].vhost, nodes[1].vhost) == ("u", "p@ss", "prod", "/")
    assert nodes[2].address == "[::1]:5672"
    assert (
        ensure_broker.redact("amqp://u:p%40ss@10.0.0.1:5673/prod,amqp://h/") == "amqp://u@10.0.0.1:5673/prod,amqp://h/"
    )
    with pytest.raises(ensure_broker.BrokerUnavailable, match="not an amqp"):
        ensure_broker.parse_urls("http://user:pw@host/")
