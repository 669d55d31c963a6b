"""The user CLI against a running stack: readable tables, `--json` with exact digits, clear errors
and the exit codes scripts rely on (0 ok, 1 API error, 2 usage/config, 3 gateway unreachable)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from aiqt.cli import build_parser
from aiqt.render import table
from harness.servers import free_port
from harness.stack import Account, Stack
from schemas import codec

pytestmark = pytest.mark.integration


class Cli:
    """Runs `aiqt <argv>` in this process (the same parser and functions as the console script)."""

    def __init__(self, stack: Stack, account: Account, capsys: pytest.CaptureFixture[str]) -> None:
        assert stack.gateway is not None
        self.flags = ["--url", stack.gateway.url, "--key", account.api_key, "--secret", account.api_secret]
        self.capsys = capsys

    def __call__(self, *argv: str, auth: bool = True) -> tuple[int, str, str]:
        flags = self.flags if auth else []
        args = build_parser().parse_args([argv[0], *flags, *argv[1:]])  # so that a flag in argv wins
        code: int = args.func(args)
        out = self.capsys.readouterr()
        return code, out.out, out.err

    def json(self, *argv: str) -> dict[str, Any]:
        code, out, err = self(*argv, "--json")
        assert code == 0, err
        reply: dict[str, Any] = codec.loads(out)
        return reply


def _rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


def test_a_trading_session_in_tables(stack: Stack, account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    aiqt = Cli(stack, account, capsys)

    code, out, _ = aiqt("leverage", "btcusdt", "5")
    assert code == 0 and out.splitlines()[0] == "Leverage updated" and ["leverage", "5"] in _rows(out)
    code, out, _ = aiqt("margin-mode", "BTCUSDT", "isolated")
    assert code == 0 and ["marginType", "ISOLATED"] in _rows(out)
    code, out, _ = aiqt("margin-mode", "BTCUSDT", "ISOLATED")
    assert code == 0 and out.startswith("Margin mode unchanged")  # a retry is not a failure

    klines = aiqt.json("klines", "BTCUSDT", "--interval", "15m", "--limit", "3")["data"]["klines"]
    last = klines[-1]["close"]
    assert isinstance(last, Decimal)
    code, out, _ = aiqt("klines", "BTCUSDT", "--interval", "15m", "--limit", "3")
    assert code == 0 and out.splitlines()[0] == "BTCUSDT 15m (3 klines)"
    assert out.splitlines()[1].split()[:4] == ["open", "time", "(UTC)", "open"] and len(out.splitlines()) == 6

    stop, take = (last * Decimal("0.8")).quantize(Decimal("0.1")), (last * Decimal("1.2")).quantize(Decimal("0.1"))
    code, out, err = aiqt("open", "BTCUSDT", "BUY", "0.004", "--sl", str(stop), "--tp", str(take))
    assert code == 0, err
    legs = {row[0]: row for row in _rows(out)[2:]}
    assert set(legs) == {"entry", "stop", "take"}  # "stop loss", "take profit"
    assert legs["entry"][2:6] == ["MARKET", "BUY", "FILLED", "0.004"]
    assert legs["stop"][3:6] == ["STOP_MARKET", "SELL", "NEW"] and str(stop) in " ".join(legs["stop"])

    code, out, _ = aiqt("account", "BTCUSDT")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["wallet", "balance"]
    position = next(r for r in _rows(out) if r[:2] == ["BTCUSDT", "LONG"])
    assert position[2] == "0.004" and position[-2:] == ["5", "ISOLATED"]
    orders = [
        r for r in _rows(out) if len(r) > 3 and r[1] == "BTCUSDT" and r[2] in {"STOP_MARKET", "TAKE_PROFIT_MARKET"}
    ]
    assert len(orders) == 2
    stop_id = next(r[0] for r in orders if r[2] == "STOP_MARKET")

    code, out, _ = aiqt("cancel", "BTCUSDT", stop_id)
    assert code == 0 and ["status", "CANCELED"] in _rows(out)

    price = (last * Decimal("0.97")).quantize(Decimal("0.1"))
    order_id = stack.limit_order(account, qty="0.002", price=str(price))
    new_price = price - Decimal("10")
    code, out, err = aiqt("modify", "BTCUSDT", str(order_id), "BUY", "0.003", str(new_price))
    assert code == 0, err
    modified = next(r for r in _rows(out) if r and r[0] == "order")
    assert modified[:6] == ["order", str(order_id), "LIMIT", "BUY", "NEW", "0.003"]

    code, out, _ = aiqt("close", "BTCUSDT", "long", "--qty", "0.001")
    assert code == 0 and out.startswith("Position partially closed")
    assert ["remaining", "position", "0.003"] in _rows(out)
    code, out, _ = aiqt("close", "BTCUSDT", "LONG")
    assert code == 0 and out.startswith("Position closed") and ["position", "closed", "yes"] in _rows(out)

    code, out, _ = aiqt("funding", "BTCUSDT", "--limit", "2")
    assert code == 0 and out.splitlines()[0].split() == ["symbol", "BTCUSDT"] and "History" in out
    code, out, _ = aiqt("ping")
    assert code == 0 and ["pong", "yes"] in _rows(out)


def test_json_errors_and_exit_codes(
    stack: Stack, account: Account, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    aiqt = Cli(stack, account, capsys)

    leverage = aiqt.json("leverage", "BTCUSDT", "3")
    assert leverage == {"code": 200, "msg": "Leverage updated", "data": leverage["data"]}
    assert leverage["data"]["leverage"] == 3

    code, out, err = aiqt("cancel", "BTCUSDT", "123456789")
    assert (code, out) == (1, "") and err.splitlines()[0] == "error 404: Order does not exist"
    code, out, err = aiqt("cancel", "BTCUSDT", "123456789", "--json")
    assert code == 1 and json.loads(out) == {"code": 404, "msg": "Order does not exist", "data": None}
    code, _, err = aiqt("leverage", "BTCUSDT", "200")
    assert code == 1 and err.startswith("error 400: Invalid leverage (1-125 allowed)")
    code, _, err = aiqt("klines", "BTCUSDT", "--interval", "7m")
    assert code == 1 and err.startswith("error 400: Invalid interval.")

    code, _, err = aiqt("account", "--key", "key-nobody")  # a later flag wins
    assert code == 1 and err.startswith("error 401: Invalid API key")
    code, _, err = aiqt("account", "--secret", "0" * 32)
    assert code == 1 and err.startswith("error -1022: Signature for this request is not valid.")

    # Usage and configuration errors: 2.
    for argv in (["open", "BTCUSDT", "HOLD", "1"], ["open", "BTCUSDT", "BUY", "lots"], ["close", "BTCUSDT"]):
        with pytest.raises(SystemExit) as exited:
            aiqt(*argv)
        assert exited.value.code == 2, argv
    capsys.readouterr()
    for var in ("AIQT_URL", "AIQT_API_KEY", "AIQT_API_SECRET"):
        monkeypatch.delenv(var, raising=False)
    code, _, err = aiqt("account", auth=False)
    assert code == 2 and "AIQT_API_KEY" in err
    code, _, err = aiqt("account", "--url", "ftp://example.invalid")
    assert code == 2 and "invalid gateway URL" in err

    # Nobody listening: 3, and for a write, how to learn its outcome safely.
    code, _, err = aiqt("account", "--url", f"http://127.0.0.1:{free_port()}")
    assert code == 3 and "cannot reach the gateway" in err

    # Credentials from the environment, as `aiqt dev` prints them.
    assert stack.gateway is not None
    monkeypatch.setenv("AIQT_URL", stack.gateway.url)
    monkeypatch.setenv("AIQT_API_KEY", account.api_key)
    monkeypatch.setenv("AIQT_API_SECRET", account.api_secret)
    code, out, _ = aiqt("account", auth=False)
    assert code == 0 and "Positions: none" in out


def test_console_script_and_idempotent_retry(stack: Stack, account: Account) -> None:
    """The real entry point, configured by environment; a retried `open` with the same key places one order."""
    assert stack.gateway is not None
    env = {
        **os.environ,
        "AIQT_URL": stack.gateway.url,
        "AIQT_API_KEY": account.api_key,
        "AIQT_API_SECRET": account.api_secret,
    }
    argv = [sys.executable, "-m", "aiqt.cli", "open", "BTCUSDT", "SELL", "0.002", "--idempotency-key", "cli-retry-1"]
    first = subprocess.run([*argv, "--json"], env=env, capture_output=True, text=True, timeout=60, check=False)
    second = subprocess.run([*argv, "--json"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert json.loads(first.stdout) == json.loads(second.stdout)
    assert [o["side"] for o in stack.state(account)["orders"]] == ["SELL"]


def test_table_layout() -> None:
    lines = table(["name", "qty"], [["a", Decimal("1.5")], ["bb", Decimal("10")], ["c", None]])
    assert lines == ["name  qty", "----  ---", "a     1.5", "bb     10", "c       -"]


# --- the docs' commands, as written ------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _documented_commands() -> list[list[str]]:
    commands = []
    for page in ("cli.md", "amqp.md"):
        for block in re.findall(r"```(?:sh|text)\n(.*?)```", (DOCS / page).read_text(), flags=re.DOTALL):
            for line in block.splitlines():
                words = shlex.split(line.removeprefix("$ "), comments=True)
                if words and words[0] in {"aiqt", ".venv/bin/aiqt"}:
                    end = next((i for i, w in enumerate(words) if w in {">", "|", "&&", ";"}), len(words))
                    commands.append(words[1:end])
    return commands


def test_every_documented_command_parses() -> None:
    commands = _documented_commands()
    assert len(commands) >= 15
    documented = {c[0] for c in commands}
    assert {
        "account",
        "klines",
        "funding",
        "open",
        "close",
        "cancel",
        "modify",
        "leverage",
        "margin-mode",
    } <= documented
    for argv in commands:
        build_parser().parse_args(argv)  # exits 2 on a usage error


def test_the_documented_python_client_example_runs(stack: Stack, account: Account) -> None:
    assert stack.gateway is not None
    (block,) = re.findall(r"```python\n(.*?)```", (DOCS / "cli.md").read_text(), flags=re.DOTALL)
    env = {
        **os.environ,
        "AIQT_URL": stack.gateway.url,
        "AIQT_API_KEY": account.api_key,
        "AIQT_API_SECRET": account.api_secret,
    }
    done = subprocess.run(
        [sys.executable, "-c", block], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("200 Leverage updated")
    assert done.stdout.splitlines()[-1] == "Position closed"
    assert len([o for o in stack.state(account)["orders"] if o["side"] == "BUY"]) == 1
