"""`aiqt audit`: read the audit journal (bus/audit.py) — every command and its outcome.

    aiqt audit                       the last hour, as a table
    aiqt audit --since 30m --account main --json
    aiqt audit --since 2026-11-29T08:00 --follow

It reads the `{ns}.audit` stream straight from RabbitMQ (AIQT_AMQP_URL, AIQT_BUS_NAMESPACE), starting at
a point in time (`x-stream-offset` as a timestamp): the journal is an operator's record, so reading it
takes broker credentials, not an API key. Reading never removes anything.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from datetime import UTC, datetime, timedelta

from bus import BusSettings, BusUnavailable
from schemas.audit import AuditEntry

_AGO = re.compile(r"^([0-9]+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, *, now: datetime | None = None) -> datetime | str:
    """`1h`, `30m`, `2d` ago; an ISO time (UTC unless it says otherwise); or `all` (the whole journal)."""
    text = text.strip()
    if text in ("all", "first"):
        return "first"
    match = _AGO.match(text)
    if match:
        ago = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return (now or datetime.now(UTC)) - ago
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        msg = f"not a duration (1h, 30m, 2d), a time (2026-11-29T08:00) or 'all': {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _who(entry: AuditEntry) -> str:
    if entry.keyId:
        return entry.keyId if len(entry.keyId) <= 16 else entry.keyId[:13] + "..."
    return f"amqp:{entry.amqpUser}" if entry.amqpUser else "amqp"


def render(entries: list[AuditEntry]) -> list[str]:
    from aiqt.render import table

    rows = [
        [
            _when(e.time),
            e.account,
            e.type,
            e.code,
            e.msg if len(e.msg) <= 60 else e.msg[:57] + "...",
            " ".join(str(i) for i in e.orderIds),
            _who(e),
            round(e.durationMs, 1),
        ]
        for e in entries
    ]
    return table(["time (UTC)", "account", "type", "code", "msg", "orders", "by", "ms"], rows)


def wanted(entry: AuditEntry, args: argparse.Namespace) -> bool:
    return (args.account is None or entry.account == args.account) and (args.type is None or entry.type == args.type)


async def _read(args: argparse.Namespace) -> int:
    from bus.audit import NoJournal, encode, journal

    settings = BusSettings()
    shown: list[AuditEntry] = []
    try:
        async for entry in journal(settings, since=args.since, follow=args.follow):
            if not wanted(entry, args):
                continue
            if args.json:
                print(encode(entry).decode(), flush=True)
            elif args.follow:
                print(render([entry])[-1], flush=True)
            else:
                shown.append(entry)
    except BusUnavailable as exc:
        print(f"aiqt audit: {exc}", file=sys.stderr)
        return 3
    except NoJournal as exc:
        print(f"aiqt audit: {exc} (namespace {settings.bus_namespace!r})", file=sys.stderr)
        return 1
    if not args.json and not args.follow:
        print("\n".join(render(shown)) if shown else "no entries")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_read(args))
    except KeyboardInterrupt:
        return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = "the audit journal: every command and its outcome (reads RabbitMQ at AIQT_AMQP_URL)"
    p = sub.add_parser("audit", help=text, description=text)
    p.add_argument(
        "--since", type=parse_since, default="1h", help="1h, 30m, 2d (ago), 2026-11-29T08:00 (UTC), or all; default 1h"
    )
    p.add_argument("--account", help="only this account")
    p.add_argument("--type", help="only this command type, e.g. order.open_market")
    p.add_argument("--json", action="store_true", help="one JSON entry per line")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new entries (Ctrl-C stops)")
    p.set_defaults(func=cmd_audit, log_level="WARNING", json_logs=False)
