"""compose.yaml and the Dockerfile, checked without Docker (these machines have no engine).

Each service's command must be one `aiqt` really has, each variable it sets one that the process
really reads, and no secret may have a default. Then the services run for real, as plain processes,
with exactly the environment compose would give them (from a `.env` made by `aiqt compose-env`);
only what exists solely inside compose's network is rewritten: the host names `rabbitmq` and `paper`,
and the fixed ports, which become free loopback ports here.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from aiqt import cli
from aiqt.usercli import compose_env
from bus import Topology
from gateway.settings import GatewaySettings
from harness.broker import delete_namespace
from harness.servers import free_port
from paper.settings import PaperSettings
from streamer.settings import StreamerSettings
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
#: The process each `aiqt` subcommand runs, and the settings class (and env prefix) it reads.
PROCESSES: dict[str, tuple[type[BaseSettings], str]] = {
    "paper": (PaperSettings, "AIQT_PAPER_"),
    "worker": (WorkerSettings, "AIQT_"),
    "streamer": (StreamerSettings, "AIQT_"),
    "gateway": (GatewaySettings, "AIQT_"),
}
SECRET = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY")


class MissingVariable(KeyError):
    pass


_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation: $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, $$."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        op, arg = match.group(2), match.group(3) or ""
        value = env.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-") and unset:
            return arg
        if op in (":?", "?") and unset:
            raise MissingVariable(f"{name}: {arg}")
        return value or ""

    return _VAR.sub(one, text)


def resolve(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolve(v, env) for v in node]
    if isinstance(node, dict):
        return {k: resolve(v, env) for k, v in node.items()}
    return node


def dotenv(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def dockerignore() -> set[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def aiqt_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in SERVICES.items() if (svc.get("command") or [None])[0] == "aiqt"}


def allowed_variables(process: str) -> set[str]:
    settings, prefix = PROCESSES[process]
    names = {prefix + field.upper() for field in settings.model_fields}
    cli_source = inspect.getsource(cli._common)
    names |= {v for v in ("AIQT_LOG_LEVEL", "AIQT_JSON_LOGS") if f'"{v}"' in cli_source}
    return names


# --- static checks ----------------------------------------------------------------------------


def test_the_stack_is_all_there() -> None:
    assert set(SERVICES) == {"rabbitmq", "paper", "worker", "streamer", "gateway"}
    assert "management" in SERVICES["rabbitmq"]["image"]
    assert "127.0.0.1:15672:15672" in SERVICES["rabbitmq"]["ports"]
    assert {svc["command"][1] for svc in aiqt_services().values()} == set(PROCESSES)


def test_every_command_is_one_aiqt_has() -> None:
    handlers = {
        "paper": cli.cmd_paper,
        "worker": cli.cmd_worker,
        "streamer": cli.cmd_streamer,
        "gateway": cli.cmd_gateway,
    }
    for name, svc in aiqt_services().items():
        args = cli.build_parser().parse_args(svc["command"][1:])
        assert args.func is handlers[svc["command"][1]], name


def test_every_variable_is_one_the_process_reads() -> None:
    for name, svc in aiqt_services().items():
        env = set(svc["environment"])
        unknown = env - allowed_variables(svc["command"][1])
        assert not unknown, f"{name} sets variables nothing reads: {sorted(unknown)}"


def test_no_secret_has_a_default() -> None:
    text = (ROOT / "compose.yaml").read_text()
    uses = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?", text)
    secrets = {name for name, _ in uses if SECRET.search(name)}
    assert {"AIQT_RABBITMQ_PASSWORD", "AIQT_API_SECRET", "AIQT_EXCHANGE_API_SECRET"} <= secrets
    for name, op in uses:
        if SECRET.search(name):
            assert op == ":?", f"${{{name}}} must be required (:?), not {op or 'optional'}"
    for name in ("rabbitmq", "paper", "worker", "gateway"):
        with pytest.raises(MissingVariable):
            resolve(SERVICES[name], {})
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert not re.search(r"^(ENV|ARG)\b.*(PASSWORD|SECRET|TOKEN|API_KEY)", dockerfile, flags=re.MULTILINE)
    assert ".env" in dockerignore()


def test_workers_scale_and_every_service_has_a_health_check() -> None:
    worker = SERVICES["worker"]
    assert "container_name" not in worker and "ports" not in worker  # `--scale worker=N` needs both absent
    for name, svc in SERVICES.items():
        assert svc.get("healthcheck", {}).get("test"), name
        for dependency, condition in (svc.get("depends_on") or {}).items():
            assert condition == {"condition": "service_healthy"}, (name, dependency)
    assert "/readyz" in " ".join(SERVICES["gateway"]["healthcheck"]["test"])
    for name, svc in aiqt_services().items():
        if name != "paper":
            assert svc["environment"]["AIQT_JSON_LOGS"] == "1", name


def test_the_dockerfile_copies_what_the_package_needs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = {
        src
        for line in dockerfile.splitlines()
        if line.startswith("COPY ")
        for src in line.split()[1:-1]
        if not src.startswith("--")
    }
    for src in copied:
        assert (ROOT / src).exists(), f"Dockerfile copies {src}, which is not in the repository"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied
    assert pyproject["project"]["readme"] in copied
    assert re.search(r'^CMD \["aiqt"', dockerfile, flags=re.MULTILINE)
    assert not copied & dockerignore()


def test_compose_env_fills_every_required_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    env = dotenv(compose_env())
    assert all(value for value in env.values())
    assert env != dotenv(compose_env())  # fresh secrets each time
    resolved = resolve(SERVICES, env)
    for var in [v for v in os.environ if v.startswith("AIQT_")]:
        monkeypatch.delenv(var)
    built: dict[str, Any] = {}
    for name, svc in aiqt_services().items():
        with monkeypatch.context() as m:
            for key, value in resolved[name]["environment"].items():
                m.setenv(key, value)
            built[name] = PROCESSES[svc["command"][1]][0]()
    paper, worker, gateway = built["paper"], built["worker"], built["gateway"]
    assert [a.api_key for a in paper.accounts] == [worker.accounts["main"].api_key] == [env["AIQT_PAPER_API_KEY"]]
    assert worker.exchange_url == "http://paper:8100" and worker.metrics_port == 9100
    assert [(k.key, k.secret.get_secret_value(), k.account) for k in gateway.client_keys] == [
        (env["AIQT_API_KEY"], env["AIQT_API_SECRET"], "main")
    ]
    assert gateway.amqp_url == worker.amqp_url == f"amqp://aiqt:{env['AIQT_RABBITMQ_PASSWORD']}@rabbitmq:5672/"
    assert (gateway.gateway_host, paper.host) == ("0.0.0.0", "0.0.0.0")
    assert resolved["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"] == env["AIQT_RABBITMQ_PASSWORD"]
    # Trading live is a matter of .env: the exchange URL and key pair, nothing else.
    live = resolve(SERVICES["worker"], {**env, "AIQT_EXCHANGE_URL": "https://fapi.binance.com"})
    assert live["environment"]["AIQT_EXCHANGE_URL"] == "https://fapi.binance.com"


# --- the services, run as processes -----------------------------------------------------------


@pytest.fixture
def compose_processes(amqp_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    env = dotenv(compose_env())
    services = resolve(SERVICES, env)
    namespace = f"compose-{uuid.uuid4().hex[:10]}"
    ports = {"paper": free_port(), "gateway": free_port(), "metrics": free_port()}
    overrides = {
        "paper": {"AIQT_PAPER_HOST": "127.0.0.1", "AIQT_PAPER_PORT": str(ports["paper"])}
        | {"AIQT_PAPER_DB": str(tmp_path / "paper.sqlite3")},
        "worker": {"AIQT_EXCHANGE_URL": f"http://127.0.0.1:{ports['paper']}"}
        | {"AIQT_METRICS_PORT": str(ports["metrics"])},
        "gateway": {"AIQT_GATEWAY_HOST": "127.0.0.1", "AIQT_GATEWAY_PORT": str(ports["gateway"])},
    }
    bus = {"AIQT_AMQP_URL": amqp_url, "AIQT_BUS_NAMESPACE": namespace}
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIQT_")}
    procs: dict[str, subprocess.Popen[str]] = {}
    health: dict[str, list[str]] = {}
    for name in ("paper", "worker", "gateway"):  # compose's depends_on order
        svc = services[name]
        service_env = {**svc["environment"], **(bus if "AIQT_AMQP_URL" in svc["environment"] else {})}
        service_env |= overrides[name]
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "aiqt.cli", *svc["command"][1:]],
            env={**base, **service_env},
            stderr=subprocess.PIPE,
            text=True,
        )
        test = svc["healthcheck"]["test"]
        assert test[0] == "CMD"
        port = {"paper": ("8100", ports["paper"]), "worker": ("9100", ports["metrics"])}.get(name)
        port = port or ("8000", ports["gateway"])
        health[name] = [sys.executable if test[1] == "python" else test[1]] + [
            arg.replace(f"127.0.0.1:{port[0]}", f"127.0.0.1:{port[1]}") for arg in test[2:]
        ]
    try:
        yield {"env": env, "procs": procs, "health": health, "ports": ports, "base": base}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            if proc.stderr is not None:
                proc.stderr.close()
        asyncio.run(delete_namespace(amqp_url, Topology(namespace, "quorum")))


def _healthy(command: list[str], timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if subprocess.run(command, capture_output=True, timeout=10, check=False).returncode == 0:
            return True
        time.sleep(0.3)
    return False


@pytest.mark.integration
def test_the_compose_services_run_as_processes(compose_processes: dict[str, Any]) -> None:
    procs, health, env = compose_processes["procs"], compose_processes["health"], compose_processes["env"]
    for name in ("paper", "worker", "gateway"):
        assert _healthy(health[name]), f"{name}'s health check never passed (exit {procs[name].poll()})"

    # A new user, with nothing but the .env that `aiqt compose-env` wrote.
    user = {
        **compose_processes["base"],
        "AIQT_URL": env["AIQT_URL"].replace(":8000", f":{compose_processes['ports']['gateway']}"),
        "AIQT_API_KEY": env["AIQT_API_KEY"],
        "AIQT_API_SECRET": env["AIQT_API_SECRET"],
    }

    def aiqt(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "aiqt.cli", *argv], env=user, capture_output=True, text=True, timeout=60, check=False
        )

    account = aiqt("account")
    assert account.returncode == 0, account.stderr
    assert account.stdout.splitlines()[0].split()[:3] == ["wallet", "balance", "10000.00000000"]
    opened = aiqt("open", "BTCUSDT", "BUY", "0.002", "--json")
    assert opened.returncode == 0, opened.stderr
    assert json.loads(opened.stdout)["data"]["market"]["status"] == "FILLED"

    # compose sets AIQT_JSON_LOGS=1: the worker's log lines are JSON objects.
    procs["worker"].send_signal(signal.SIGINT)
    procs["worker"].wait(10)
    assert procs["worker"].stderr is not None
    lines = [json.loads(line) for line in procs["worker"].stderr.read().splitlines() if line.startswith("{")]
    assert any("consuming" in entry["msg"] for entry in lines), lines
