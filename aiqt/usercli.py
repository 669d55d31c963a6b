"""The human side of `aiqt`: one command per REST endpoint, on the signed client.

    aiqt account [SYMBOL]                      aiqt open SYMBOL BUY|SELL QTY [--sl P] [--tp P]
    aiqt klines SYMBOL [--interval 1h]         aiqt close SYMBOL LONG|SHORT [--qty Q]
    aiqt funding SYMBOL [--limit N]            aiqt cancel SYMBOL ORDER_ID
    aiqt leverage SYMBOL N                     aiqt modify SYMBOL ORDER_ID BUY|SELL QTY PRICE
    aiqt margin-mode SYMBOL ISOLATED|CROSSED   aiqt ping
    aiqt halt [--flatten]                      aiqt resume           (kill switch; admin scope)
    aiqt status IDEMPOTENCY_KEY [--symbol S]   (what became of a command, e.g. after a 504)
    aiqt compose-env > .env                    (fresh secrets for compose.yaml)

Readable tables by default, `--json` prints the reply envelope (exact digits) for scripts.
Credentials: `AIQT_URL`, `AIQT_API_KEY`, `AIQT_API_SECRET` (what `aiqt dev` prints) or
`--url/--key/--secret`.

Exit codes: 0 success; 1 the API answered with an error (its code and msg on stderr); 2 usage or
configuration error; 3 the gateway cannot be reached (nothing was sent, or the outcome is unknown:
retry a write with the `--idempotency-key` printed on stderr, or look it up with `aiqt status KEY`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import httpx

from aiqt.client import AiqtClient, AsyncAiqtClient, Reply, StreamError
from aiqt.render import (
    render_account,
    render_close,
    render_event,
    render_funding,
    render_halt,
    render_klines,
    render_open,
    render_order,
    render_pairs,
    render_status,
)
from schemas import codec, errors
from schemas.enums import CommandType
from schemas.registry import COMMANDS

OK, API_ERROR, USAGE, UNREACHABLE = 0, 1, 2, 3
#: Success messages that say nothing the table does not (other messages, like "Position partially
#: closed", are printed above it).
QUIET = {"success", "ok", "pong", COMMANDS[CommandType.ORDER_OPEN_MARKET].success_msg}
DEFAULT_URL = "http://127.0.0.1:8000"

Call = Callable[[AiqtClient, str | None], Reply]
Render = Callable[[Any], list[str]]


# --- argument types ----------------------------------------------------------------------------


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number greater than 0: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
    return value


def _upper(text: str) -> str:
    return text.strip().upper()


# --- running a command ------------------------------------------------------------------------


def cmd_watch(args: argparse.Namespace) -> int:
    creds = _credentials(args)
    if creds is None:
        print(
            "aiqt watch: no API key. Set AIQT_API_KEY and AIQT_API_SECRET or pass --key and --secret.", file=sys.stderr
        )
        return USAGE
    url, key, secret = creds
    topics = [t.strip() for t in args.topics.split(",")] if args.topics else None

    async def watch() -> int:
        seen = 0
        async with AsyncAiqtClient(url, key, secret) as client:
            async for event in client.events(topics, since=args.since):
                print(codec.dumps(event).decode() if args.json else render_event(event), flush=True)
                seen += 1
                if args.count and seen >= args.count:
                    return OK
        return OK

    try:
        return asyncio.run(watch())
    except StreamError as exc:
        print(f"aiqt watch: error {exc.code}: {exc.msg}", file=sys.stderr)
        return API_ERROR
    except KeyboardInterrupt:
        return OK
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK


def _credentials(args: argparse.Namespace) -> tuple[str, str, str] | None:
    url = args.url or os.environ.get("AIQT_URL") or DEFAULT_URL
    key = args.key or os.environ.get("AIQT_API_KEY")
    secret = args.secret or os.environ.get("AIQT_API_SECRET")
    if not key or not secret:
        return None
    return url, key, secret


def run(args: argparse.Namespace, command: CommandType, call: Call, render: Render) -> int:
    """Call the API and print the outcome; return the exit code. A command that changes state at the
    exchange (`mutating` in the registry) is sent with an Idempotency-Key, given or generated."""
    try:
        return _run(args, call, render, write=COMMANDS[command].mutating)
    except BrokenPipeError:  # `aiqt ... | head`: the reader has gone, which is not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK


def _run(args: argparse.Namespace, call: Call, render: Render, *, write: bool) -> int:
    err = sys.stderr
    creds = _credentials(args)
    if creds is None:
        print(
            f"aiqt {args.command}: no API key. Set AIQT_API_KEY and AIQT_API_SECRET (`aiqt dev` prints them) "
            "or pass --key and --secret.",
            file=err,
        )
        return USAGE
    url, key, secret = creds
    idem = getattr(args, "idempotency_key", None) if write else None
    if write and idem is None:
        import uuid

        idem = uuid.uuid4().hex
    try:
        with AiqtClient(url, key, secret, timeout=args.timeout) as client:
            reply = call(client, idem)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        print(f"aiqt {args.command}: invalid gateway URL {url!r}: {exc}", file=err)
        return USAGE
    except httpx.HTTPError as exc:
        print(f"aiqt {args.command}: cannot reach the gateway at {url}: {exc or type(exc).__name__}", file=err)
        if write and not isinstance(exc, httpx.ConnectError):
            print(
                f"the outcome is unknown: `aiqt status {idem}` looks it up; retrying with --idempotency-key {idem} "
                "is safe",
                file=err,
            )
        return UNREACHABLE

    if args.json:
        print(codec.dumps({"code": reply.code, "msg": reply.msg, "data": reply.data}).decode())
    if not reply.ok:
        print(f"error {reply.code}: {reply.msg}", file=err)
        if reply.data is not None and not args.json:
            print(codec.dumps(reply.data).decode(), file=err)
        if write and not errors.is_final(reply.code, reply.data):
            print(f"retry with --idempotency-key {reply.idempotency_key or idem} (never executes twice)", file=err)
        return API_ERROR
    if not args.json:
        lines = render(reply.data) if reply.data is not None else []
        if reply.msg and reply.msg.lower() not in QUIET:
            lines = [reply.msg, *([""] if lines else []), *lines]
        print("\n".join(lines))
    return OK


# --- the commands ------------------------------------------------------------------------------


def cmd_account(args: argparse.Namespace) -> int:
    return run(
        args,
        CommandType.ACCOUNT_SUMMARY,
        lambda c, _: c.account_summary(args.symbol, show_zero=args.show_zero),
        render_account,
    )


def cmd_klines(args: argparse.Namespace) -> int:
    return run(
        args, CommandType.MARKET_KLINES, lambda c, _: c.klines(args.symbol, args.interval, args.limit), render_klines
    )


def cmd_funding(args: argparse.Namespace) -> int:
    return run(
        args, CommandType.MARKET_FUNDING_RATE, lambda c, _: c.funding_rate(args.symbol, args.limit), render_funding
    )


def cmd_open(args: argparse.Namespace) -> int:
    def call(c: AiqtClient, key: str | None) -> Reply:
        return c.open_market(
            args.symbol,
            args.side,
            args.quantity,
            reduce_only=args.reduce_only,
            stop_loss=args.sl,
            take_profit=args.tp,
            idempotency_key=key,
        )

    return run(args, CommandType.ORDER_OPEN_MARKET, call, render_open)


def cmd_close(args: argparse.Namespace) -> int:
    return run(
        args,
        CommandType.ORDER_CLOSE_MARKET,
        lambda c, key: c.close_market(args.symbol, args.position_side, args.qty, idempotency_key=key),
        render_close,
    )


def cmd_cancel(args: argparse.Namespace) -> int:
    return run(
        args,
        CommandType.ORDER_CANCEL,
        lambda c, key: c.cancel_order(args.order_id, args.symbol, idempotency_key=key),
        render_pairs,
    )


def cmd_modify(args: argparse.Namespace) -> int:
    def call(c: AiqtClient, key: str | None) -> Reply:
        return c.modify_order(args.order_id, args.symbol, args.side, args.quantity, args.price, idempotency_key=key)

    return run(args, CommandType.ORDER_MODIFY, call, render_order)


def cmd_leverage(args: argparse.Namespace) -> int:
    return run(
        args,
        CommandType.POSITION_LEVERAGE,
        lambda c, key: c.set_leverage(args.symbol, args.leverage, idempotency_key=key),
        render_pairs,
    )


def cmd_margin_mode(args: argparse.Namespace) -> int:
    return run(
        args,
        CommandType.POSITION_MARGIN_MODE,
        lambda c, key: c.set_margin_mode(args.symbol, args.margin_type, idempotency_key=key),
        render_pairs,
    )


def cmd_halt(args: argparse.Namespace) -> int:
    return run(args, CommandType.ACCOUNT_HALT, lambda c, key: c.halt(args.flatten, idempotency_key=key), render_halt)


def cmd_resume(args: argparse.Namespace) -> int:
    return run(args, CommandType.ACCOUNT_RESUME, lambda c, key: c.resume(idempotency_key=key), render_pairs)


def cmd_status(args: argparse.Namespace) -> int:
    return run(
        args, CommandType.COMMAND_STATUS, lambda c, _: c.command_status(args.command_key, args.symbol), render_status
    )


def cmd_ping(args: argparse.Namespace) -> int:
    return run(args, CommandType.SYSTEM_PING, lambda c, _: c.ping(), render_pairs)


def compose_env() -> str:
    """A fresh `.env` for compose.yaml: random secrets, the paper exchange as the default exchange."""
    paper_key, paper_secret = secrets.token_hex(32), secrets.token_hex(32)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return f"""\
# Secrets for compose.yaml, generated by `aiqt compose-env` at {stamp}. Keep this file private.
AIQT_RABBITMQ_USER=aiqt
AIQT_RABBITMQ_PASSWORD={secrets.token_hex(24)}
AIQT_PAPER_ADMIN_TOKEN={secrets.token_hex(16)}
AIQT_PAPER_API_KEY={paper_key}
AIQT_PAPER_API_SECRET={paper_secret}

# The exchange the workers trade on: the paper exchange (the compose default). To trade on Binance,
# uncomment the URL and put your Binance API key pair below.
# AIQT_EXCHANGE_URL=https://demo-fapi.binance.com
AIQT_EXCHANGE_API_KEY={paper_key}
AIQT_EXCHANGE_API_SECRET={paper_secret}

# Your key for AIQT's REST API (account "main"). The aiqt CLI reads these three too:
#   set -a; . ./.env; set +a; aiqt account
AIQT_URL=http://127.0.0.1:8000
AIQT_API_KEY=aiqt-{secrets.token_hex(16)}
AIQT_API_SECRET={secrets.token_hex(32)}
"""


def cmd_compose_env(args: argparse.Namespace) -> int:
    text = compose_env()
    if args.out is None:
        sys.stdout.write(text)
        return OK
    path = Path(args.out)
    if path.exists() and not args.force:
        print(f"aiqt compose-env: {path} exists; pass --force to replace it (its secrets will change)", file=sys.stderr)
        return USAGE
    path.write_text(text)
    path.chmod(0o600)
    print(path)
    return OK


def _client_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("connection (defaults from AIQT_URL, AIQT_API_KEY, AIQT_API_SECRET)")
    g.add_argument("--url", help=f"gateway URL (default {DEFAULT_URL})")
    g.add_argument("--key", help="API key")
    g.add_argument("--secret", help="API secret")
    g.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the reply (default 30)")
    p.add_argument("--json", action="store_true", help="print the {code, msg, data} reply as JSON")
    return p


def _write_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--idempotency-key",
        help="send this Idempotency-Key (≤ 64 chars); retrying with the same key never acts twice",
    )
    return p


#: `add(name, command, func, help)` -> the subparser (see `register`).
Add = Callable[[str, CommandType | None, Callable[[argparse.Namespace], int], str], Any]


def _add_reads(add: Add) -> None:
    """Account and market data: read-only commands."""
    p = add("account", CommandType.ACCOUNT_SUMMARY, cmd_account, "balances, positions and open orders")
    p.add_argument("symbol", nargs="?", type=_upper, help="only this symbol")
    p.add_argument("--show-zero", action="store_true", help="include positions of quantity zero")

    p = add("klines", CommandType.MARKET_KLINES, cmd_klines, "candlesticks of a symbol")
    p.add_argument("symbol", type=_upper)
    p.add_argument("--interval", default="1h", help="1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M (default 1h)")
    p.add_argument("--limit", type=_positive_int, default=20, help="how many, newest last (default 20, max 1000)")

    p = add(
        "funding",
        CommandType.MARKET_FUNDING_RATE,
        cmd_funding,
        "the current funding rate of a symbol (and its history with --limit)",
    )
    p.add_argument("symbol", type=_upper)
    p.add_argument("--limit", type=_positive_int, help="also show this many past rates")


def _add_trades(add: Add) -> None:
    """Orders and position settings: commands that change state at the exchange."""
    p = add(
        "open",
        CommandType.ORDER_OPEN_MARKET,
        cmd_open,
        "open a position at market, with optional stop loss and take profit",
    )
    p.add_argument("symbol", type=_upper)
    p.add_argument("side", type=_upper, choices=["BUY", "SELL"], metavar="BUY|SELL")
    p.add_argument("quantity", type=_decimal)
    p.add_argument("--sl", type=_decimal, help="stop-loss trigger price (mark price)")
    p.add_argument("--tp", type=_decimal, help="take-profit trigger price (mark price)")
    p.add_argument("--reduce-only", action="store_true")

    p = add(
        "close", CommandType.ORDER_CLOSE_MARKET, cmd_close, "close a position (all of it, or --qty) with a market order"
    )
    p.add_argument("symbol", type=_upper)
    p.add_argument("position_side", type=_upper, choices=["LONG", "SHORT"], metavar="LONG|SHORT")
    p.add_argument("--qty", type=_decimal, help="close only this quantity")

    p = add(
        "cancel", CommandType.ORDER_CANCEL, cmd_cancel, "cancel an open order (also a stop-loss or take-profit order)"
    )
    p.add_argument("symbol", type=_upper)
    p.add_argument("order_id", type=_positive_int)

    p = add("modify", CommandType.ORDER_MODIFY, cmd_modify, "change the price and quantity of an open LIMIT order")
    p.add_argument("symbol", type=_upper)
    p.add_argument("order_id", type=_positive_int)
    p.add_argument("side", type=_upper, choices=["BUY", "SELL"], metavar="BUY|SELL", help="the order's side")
    p.add_argument("quantity", type=_decimal)
    p.add_argument("price", type=_decimal)

    p = add("leverage", CommandType.POSITION_LEVERAGE, cmd_leverage, "set the leverage of a symbol (1-125)")
    p.add_argument("symbol", type=_upper)
    p.add_argument("leverage", type=_positive_int)

    p = add("margin-mode", CommandType.POSITION_MARGIN_MODE, cmd_margin_mode, "set the margin mode of a symbol")
    p.add_argument("symbol", type=_upper)
    p.add_argument("margin_type", type=_upper, choices=["ISOLATED", "CROSSED"], metavar="ISOLATED|CROSSED")


def _add_admin_and_events(add: Add) -> None:
    """The kill switch, command status, ping, and the event stream (`watch`)."""
    p = add(
        "halt",
        CommandType.ACCOUNT_HALT,
        cmd_halt,
        "kill switch: cancel every open order and refuse opening orders until `aiqt resume` (admin scope)",
    )
    p.add_argument("--flatten", action="store_true", help="also close every position at market")

    add(
        "resume",
        CommandType.ACCOUNT_RESUME,
        cmd_resume,
        "lift the halt: opening orders are accepted again (admin scope)",
    )

    p = add(
        "status",
        CommandType.COMMAND_STATUS,
        cmd_status,
        "what became of a command: its orders at the exchange, by Idempotency-Key",
    )
    p.add_argument("command_key", metavar="KEY", help="the command's Idempotency-Key (printed by a write, or by a 504)")
    p.add_argument("--symbol", type=_upper, help="the command's symbol (faster; otherwise recent symbols are searched)")

    add(
        "ping",
        CommandType.SYSTEM_PING,
        cmd_ping,
        "a signed round trip through RabbitMQ and a worker (no exchange call)",
    )

    p = add("watch", None, cmd_watch, "print account events as they happen (fills, fired stops, positions, balances)")
    p.add_argument(
        "--topics",
        help="comma-separated: order,position,balance,protection,margin_call,liquidation,stream "
        "and market.<SYMBOL>.<stream> (default: every account event)",
    )
    p.add_argument("--since", type=int, help="first print the events after this seq")
    p.add_argument("--count", type=_positive_int, help="stop after this many events")


def register(sub: Any) -> None:
    """Add the user commands to `aiqt`'s subparsers."""
    common = [_client_options()]
    writes = [*common, _write_options()]

    def add(name: str, command: CommandType | None, func: Callable[[argparse.Namespace], int], help: str) -> Any:
        """A subcommand for `command` (None: not a command, such as `watch`); one that changes state
        takes --idempotency-key as well."""
        parents = writes if command is not None and COMMANDS[command].mutating else common
        p = sub.add_parser(name, parents=parents, help=help, description=help)
        p.set_defaults(func=func, log_level="WARNING", json_logs=False)
        return p

    _add_reads(add)
    _add_trades(add)
    _add_admin_and_events(add)

    p = sub.add_parser("compose-env", help="print a .env with fresh secrets for compose.yaml")
    p.add_argument("--out", help="write it to this file (mode 600) instead of stdout")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=cmd_compose_env, log_level="WARNING", json_logs=False)
