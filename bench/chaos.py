"""Chaos run from the command line: order commands through gateway and bus while faults are injected
at random (seeded), then a count of duplicates, lost commands, hung requests and unprotected positions
(the run itself, and what each count means: harness/chaos.py).

    .venv/bin/python -m bench.chaos                      # 1,000 commands, seed 1
    .venv/bin/python -m bench.chaos --commands 3000 --seed 7 --broker-restarts 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from harness.chaos import Config, run_chaos
from paper.embedded import EmbeddedPaper, PaperAdmin
from paper.settings import PaperSettings


def main(argv: list[str] | None = None) -> int:
    defaults = Config()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    for name, value in asdict(defaults).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    p.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    p.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = p.parse_args(argv)
    cfg = Config(**{k: getattr(args, k) for k in asdict(defaults)})

    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        settings = PaperSettings(
            port=0, db=Path(tmp) / "paper.sqlite3", admin_token=secrets.token_hex(8), rate_limits=False
        )
        with EmbeddedPaper(settings) as paper:
            admin = PaperAdmin(paper.url, paper.admin_token)
            report = asyncio.run(run_chaos(cfg, args.amqp_url, paper.url, admin))
    print(report.text())
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2, default=str))
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
