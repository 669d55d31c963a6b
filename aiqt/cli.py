"""`aiqt`: start the processes (paper, worker, gateway, dev) and talk to a running gateway."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import platformdirs

from aiqt import audit, ensure_broker, usercli
from bus import logs


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", default=os.environ.get("AIQT_LOG_LEVEL", "INFO"))
    p.add_argument(
        "--json-logs",
        action="store_true",
        default=os.environ.get("AIQT_JSON_LOGS") == "1",
        help="one JSON object per log line (also AIQT_JSON_LOGS=1)",
    )


def cmd_paper(args: argparse.Namespace) -> int:
    from paper.main import run
    from paper.settings import PaperSettings

    settings = PaperSettings()
    if args.port is not None:
        settings = settings.model_copy(update={"port": args.port})
    run(settings)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from worker.service import run_worker
    from worker.settings import WorkerSettings

    settings = WorkerSettings()
    if not settings.accounts:
        print("aiqt worker: no accounts configured (set AIQT_ACCOUNTS or AIQT_ACCOUNTS_FILE)", file=sys.stderr)
        return 2
    _run_async(run_worker(settings))
    return 0


def cmd_streamer(args: argparse.Namespace) -> int:
    from streamer.service import run_streamer
    from streamer.settings import StreamerSettings

    settings = StreamerSettings()
    if not settings.accounts:
        print("aiqt streamer: no accounts configured (set AIQT_ACCOUNTS or AIQT_ACCOUNTS_FILE)", file=sys.stderr)
        return 2
    _run_async(run_streamer(settings))
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway import server
    from gateway.app import create_app
    from gateway.settings import GatewaySettings

    settings = GatewaySettings()
    if args.port is not None:
        settings = settings.model_copy(update={"gateway_port": args.port})
    if not settings.client_keys:
        print(
            "aiqt gateway: no client keys configured (set AIQT_CLIENT_KEYS or AIQT_CLIENT_KEYS_FILE)", file=sys.stderr
        )
        return 2
    from aiqt.mcp import KeyPair, gateway_mount

    keys = [KeyPair(k.key, k.secret.get_secret_value()) for k in settings.client_keys]
    app = create_app(settings, mounts=[gateway_mount(keys)])  # composed here: the gateway may not import aiqt
    config = server.config(app, settings.gateway_host, settings.gateway_port, loop="uvloop", log_config=None)
    uvicorn.Server(config).run()
    return 0


def _credentials(args: argparse.Namespace) -> tuple[str, str, str] | None:
    url = args.url or os.environ.get("AIQT_URL") or usercli.DEFAULT_URL
    key = args.key or os.environ.get("AIQT_API_KEY")
    secret = args.secret or os.environ.get("AIQT_API_SECRET")
    if not key or not secret:
        print(f"aiqt {args.command}: set AIQT_API_KEY and AIQT_API_SECRET (or --key/--secret)", file=sys.stderr)
        return None
    return url, key, secret


def cmd_mcp(args: argparse.Namespace) -> int:
    """An MCP server on stdio; its tool calls are signed REST requests to the gateway at AIQT_URL."""
    import anyio

    from aiqt.mcp import serve_stdio

    creds = _credentials(args)
    if creds is None:
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(lambda: serve_stdio(*creds, timeout=args.timeout))
    return 0


def cmd_mcp_token(args: argparse.Namespace) -> int:
    from aiqt.mcp import bearer_token

    creds = _credentials(args)
    if creds is None:
        return 2
    print(bearer_token(creds[1], creds[2]))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from bus.contract import write_contract

    for path in write_contract(Path(args.out)):
        print(path)
    return 0


def _run_async(coro: Any) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:  # pragma: no cover
        asyncio.run(coro)
    except KeyboardInterrupt:
        pass


# --- aiqt dev ----------------------------------------------------------------------------------


def _dev_state(path: Path) -> dict[str, str]:
    """Keys that stay the same across `aiqt dev` runs (kept in the user's config dir)."""
    if path.exists():
        state: dict[str, str] = json.loads(path.read_text())
        return state
    state = {
        "api_key": "aiqt-" + secrets.token_hex(16),
        "api_secret": secrets.token_hex(32),
        "exchange_key": secrets.token_urlsafe(48)[:64].replace("-", "a").replace("_", "b"),
        "exchange_secret": secrets.token_urlsafe(48)[:64].replace("-", "a").replace("_", "b"),
        "admin_token": secrets.token_hex(16),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2))
    path.chmod(0o600)
    return state


def _wait_http(url: str, timeout: float) -> bool:
    import httpx

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def dev_environment(args: argparse.Namespace, state: dict[str, str], data_dir: Path) -> dict[str, dict[str, str]]:
    """The environment of each process `aiqt dev` starts."""
    paper_url = f"http://127.0.0.1:{args.paper_port}"
    base = {"AIQT_AMQP_URL": args.amqp_url}
    return {
        "paper": {
            **base,
            "AIQT_PAPER_PORT": str(args.paper_port),
            "AIQT_PAPER_DB": str(data_dir / "paper.sqlite3"),
            "AIQT_PAPER_ADMIN_TOKEN": state["admin_token"],
            "AIQT_PAPER_ACCOUNTS": json.dumps(
                [{"name": "main", "api_key": state["exchange_key"], "api_secret": state["exchange_secret"]}]
            ),
        },
        "worker": {
            **base,
            "AIQT_EXCHANGE_URL": paper_url,
            "AIQT_ACCOUNTS": json.dumps(
                {"main": {"api_key": state["exchange_key"], "api_secret": state["exchange_secret"]}}
            ),
        },
        "streamer": {
            **base,
            "AIQT_EXCHANGE_URL": paper_url,
            "AIQT_ACCOUNTS": json.dumps(
                {"main": {"api_key": state["exchange_key"], "api_secret": state["exchange_secret"]}}
            ),
        },
        "gateway": {
            **base,
            "AIQT_GATEWAY_PORT": str(args.port),
            "AIQT_CLIENT_KEYS": json.dumps(
                [
                    {
                        "key": state["api_key"],
                        "secret": state["api_secret"],
                        "account": "main",
                        # The developer's own key: everything, the kill switch included.
                        "scopes": ["read", "trade", "admin"],
                    }
                ]
            ),
        },
    }


def _dev_broker(amqp_url: str) -> ensure_broker.Broker | None:
    """The broker `aiqt dev` uses, started by it if need be (aiqt/ensure_broker.py); None after
    printing why there is none. It says which broker, and whether it was already running."""
    try:
        broker = ensure_broker.ensure(amqp_url, who="aiqt dev", keep=False, out=lambda line: print(line, flush=True))
    except ensure_broker.BrokerUnavailable as exc:
        print(f"aiqt dev: {exc}", file=sys.stderr, flush=True)
        return None
    except KeyboardInterrupt:
        return None
    print(broker.describe(), flush=True)
    return broker


def cmd_dev(args: argparse.Namespace) -> int:
    from aiqt.mcp import bearer_token
    from bus.connection import describe  # host:port of each node, never the password

    data_dir = Path(args.data_dir or platformdirs.user_data_dir("aiqt"))
    state = _dev_state(data_dir / "dev-keys.json")
    env = dev_environment(args, state, data_dir)
    exe = [sys.executable, "-m", "aiqt.cli"]
    flags = ["--log-level", args.log_level] + (["--json-logs"] if args.json_logs else [])
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> None:
        procs.append(subprocess.Popen([*exe, name, *flags], env={**os.environ, **env[name]}))

    def stop_on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_on_sigterm)
    broker = _dev_broker(args.amqp_url)
    if broker is None:
        return 1
    try:
        start("paper")
        if not _wait_http(f"http://127.0.0.1:{args.paper_port}/_paper/health", 30):
            print("aiqt dev: the paper exchange did not start", file=sys.stderr)
            return 1
        for _ in range(args.workers):
            start("worker")
        start("streamer")
        start("gateway")
        if not _wait_http(f"http://127.0.0.1:{args.port}/healthz", 30):
            print("aiqt dev: the gateway did not start", file=sys.stderr)
            return 1
        print(
            f"""
AIQT is running (Ctrl-C stops it):
  REST API        http://127.0.0.1:{args.port}        docs: http://127.0.0.1:{args.port}/docs
  paper exchange  http://127.0.0.1:{args.paper_port}        admin token: {state["admin_token"]}
  workers         {args.workers}, on {describe(args.amqp_url)}
  events          ws://127.0.0.1:{args.port}/api/stream (`aiqt watch` prints them; streamer running)
  data            {data_dir}

Your API key (account "main" on the paper exchange):
  export AIQT_URL=http://127.0.0.1:{args.port}
  export AIQT_API_KEY={state["api_key"]}
  export AIQT_API_SECRET={state["api_secret"]}

MCP for AI agents: `aiqt mcp` (stdio, with the three variables above), or Streamable HTTP at
  http://127.0.0.1:{args.port}/mcp   with  Authorization: Bearer {bearer_token(state["api_key"], state["api_secret"])}
""",
            flush=True,
        )
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("aiqt dev: a process exited; stopping the others", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.stop()  # only if `aiqt dev` started it


def _mcp_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help=f"gateway URL (default AIQT_URL or {usercli.DEFAULT_URL})")
    p.add_argument("--key", help="API key (default AIQT_API_KEY)")
    p.add_argument("--secret", help="API secret (default AIQT_API_SECRET; prefer the variable: argv is visible)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiqt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("paper", help="run the paper exchange (settings AIQT_PAPER_*)")
    p.add_argument("--port", type=int)
    _common(p)
    p.set_defaults(func=cmd_paper)

    p = sub.add_parser("worker", help="run a worker (settings AIQT_*)")
    _common(p)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("streamer", help="run a streamer: exchange streams in, AIQT events out (settings AIQT_*)")
    _common(p)
    p.set_defaults(func=cmd_streamer)

    p = sub.add_parser("gateway", help="run the REST gateway (settings AIQT_*)")
    p.add_argument("--port", type=int)
    _common(p)
    p.set_defaults(func=cmd_gateway)

    p = sub.add_parser(
        "dev",
        help="paper exchange + worker(s) + streamer + gateway; starts RabbitMQ if it is installed and not running",
    )
    p.add_argument("--port", type=int, default=8000, help="REST API port")
    p.add_argument("--paper-port", type=int, default=8100)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument(
        "--amqp-url",
        default=os.environ.get("AIQT_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        help="broker URL(s), comma-separated (default AIQT_AMQP_URL)",
    )
    p.add_argument("--data-dir", help="where the paper exchange and the dev keys live")
    _common(p)
    p.set_defaults(func=cmd_dev)

    mcp_help = "an MCP server for AI agents on stdin/stdout, calling the gateway at AIQT_URL (docs/agents.md)"
    p = sub.add_parser("mcp", help=mcp_help, description=mcp_help)
    _mcp_options(p)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds a tool call waits for the gateway")
    p.set_defaults(func=cmd_mcp, log_level=os.environ.get("AIQT_LOG_LEVEL", "WARNING"), json_logs=False)

    token_help = "print the bearer token of AIQT_API_KEY for the gateway's /mcp endpoint"
    p = sub.add_parser("mcp-token", help=token_help, description=token_help)
    _mcp_options(p)
    p.set_defaults(func=cmd_mcp_token, log_level="WARNING", json_logs=False)

    p = sub.add_parser("schema", help="write the JSON Schemas and the AsyncAPI document of the AMQP contract")
    p.add_argument("--out", default="contract")
    p.set_defaults(func=cmd_schema, log_level="WARNING", json_logs=False)

    usercli.register(sub)
    audit.register(sub)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(getattr(args, "log_level", "INFO"), json_lines=getattr(args, "json_logs", False))
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
