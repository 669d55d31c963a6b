"""A real crash: the paper exchange in a subprocess, SIGKILLed right after a burst of acknowledged
orders. Everything acknowledged more than the write-behind window (5 ms) before the kill is on disk."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from paper.embedded import EmbeddedPaper, PaperAdmin
from paper.settings import PaperSettings

from .conftest import Fapi

ROOT = Path(__file__).resolve().parents[2]
KEY, SECRET = "C" * 64, "D" * 64


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigkill_loses_nothing_acknowledged_before_the_flush_window(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite3"
    port = _free_port()
    env = {
        **os.environ,
        "AIQT_PAPER_PORT": str(port),
        "AIQT_PAPER_DB": str(db),
        "AIQT_PAPER_ADMIN_TOKEN": "t",
        "AIQT_PAPER_ACCOUNTS": json.dumps([{"name": "c", "api_key": KEY, "api_secret": SECRET}]),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "paper.main"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/_paper/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        f = Fapi(url, KEY, SECRET)
        acked = []
        for i in range(40):
            side = "BUY" if i % 2 == 0 else "SELL"
            r = f.raw(
                "POST",
                "/fapi/v1/order",
                {
                    "symbol": "XRPUSDT",
                    "side": side,
                    "type": "MARKET",
                    "quantity": "10",
                    "newClientOrderId": f"crash-{i}",
                },
            )
            assert r.status_code == 200, r.text
            acked.append(r.json()["orderId"])
        f.close()
        time.sleep(0.05)  # > flush_interval_ms
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    s = PaperSettings(port=0, db=db, admin_token="t", tick_interval_s=3600)
    with EmbeddedPaper(s) as paper, PaperAdmin(paper.url, "t") as admin:
        st = admin.state(KEY)
        assert [o["orderId"] for o in st["orders"]] == acked
        assert all(o["status"] == "FILLED" for o in st["orders"])
        assert len([i for i in st["income"] if i["incomeType"] == "COMMISSION"]) == 40
