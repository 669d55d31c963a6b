"""The events chaos run from the command line (the run itself: harness/events_chaos.py).

.venv/bin/python -m bench.events_chaos --orders 500 --seed 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from harness.events_chaos import Config, run_events_chaos
from paper.embedded import PaperAdmin

DESCRIPTION = (
    """Events-out chaos run: does every fill and every fired stop reach a WebSocket client, whatever breaks?"""
)


def main(argv: list[str] | None = None) -> int:
    defaults = Config()
    p = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter)
    for name, value in asdict(defaults).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    p.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    p.add_argument("--json", type=Path, help="also write the summary here")
    args = p.parse_args(argv)
    cfg = Config(**{k: getattr(args, k) for k in asdict(defaults)})

    import logging

    from paper.embedded import EmbeddedPaper
    from paper.settings import PaperSettings

    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        settings = PaperSettings(
            port=0, db=Path(tmp) / "paper.sqlite3", admin_token=secrets.token_hex(8), rate_limits=False
        )
        with EmbeddedPaper(settings) as paper:
            admin = PaperAdmin(paper.url, paper.admin_token)
            report = asyncio.run(run_events_chaos(cfg, args.amqp_url, paper.url, admin))
    summary = json.dumps(report.summary(), indent=2, default=str)
    print(summary)
    if args.json:
        args.json.write_text(summary)
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
