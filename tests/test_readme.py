"""The README's examples, run as written against a live stack: the curl call, the Python client
and the standard-library signing example."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.stack import Account, Stack

pytestmark = pytest.mark.integration

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _env(stack: Stack, account: Account) -> dict[str, str]:
    assert stack.gateway is not None
    return {
        **os.environ,
        "AIQT_URL": stack.gateway.url,
        "AIQT_API_KEY": account.api_key,
        "AIQT_API_SECRET": account.api_secret,
    }


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.DOTALL)


def test_readme_curl_example(stack: Stack, account: Account) -> None:
    (block,) = [b for b in _blocks("bash") if "curl" in b]
    stack.admin.set_mark("BTCUSDT", "95000")
    done = subprocess.run(
        ["bash", "-c", block], env=_env(stack, account), capture_output=True, text=True, timeout=30, check=False
    )
    reply = json.loads(done.stdout)
    assert (reply["code"], reply["msg"]) == (200, "订单提交成功"), reply
    assert reply["data"]["stopLoss"]["type"] == "STOP_MARKET"
    assert [o["clientOrderId"] for o in stack.state(account)["orders"]] == [reply["data"]["market"]["clientOrderId"]]


def test_readme_python_examples(stack: Stack, account: Account) -> None:
    client_example, stdlib_example = _blocks("python")
    stack.admin.set_mark("BTCUSDT", "95000")
    env = _env(stack, account)
    done = subprocess.run(
        [sys.executable, "-c", client_example], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("200 200 订单提交成功")
    prelude = (
        "import os\n"
        "URL, KEY, SECRET = os.environ['AIQT_URL'], os.environ['AIQT_API_KEY'], os.environ['AIQT_API_SECRET']\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + stdlib_example],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "'code': 200" in done.stdout and "'leverage': 10" in done.stdout
