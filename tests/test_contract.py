"""The published AMQP contract: generated from schemas/, complete, served by the gateway exactly as
`aiqt schema` writes it, and true of the messages that really travel (checked with a JSON Schema
validator against real replies), plus the outside-publisher example of docs/amqp.md run against the
real broker."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema_rs
import pytest

from bus.contract import build_asyncapi, json_schemas, write_contract
from harness.stack import Account, Stack
from schemas import codec
from schemas.enums import CommandType
from schemas.events import EventType
from schemas.registry import COMMANDS

ROOT = Path(__file__).resolve().parent.parent

EXAMPLES: dict[CommandType, dict[str, Any]] = {
    CommandType.ACCOUNT_SUMMARY: {"symbol": "BTCUSDT", "showZero": True},
    CommandType.MARKET_KLINES: {"symbol": "BTCUSDT", "interval": "15m", "limit": 10},
    CommandType.MARKET_FUNDING_RATE: {"symbol": "ETHUSDT", "limit": 5},
    CommandType.ORDER_CANCEL: {"orderId": 12345, "symbol": "BTCUSDT"},
    CommandType.ORDER_MODIFY: {
        "orderId": 12345,
        "symbol": "BTCUSDT",
        "side": "BUY",
        "quantity": "0.01",
        "price": 90000,
    },
    CommandType.ORDER_OPEN_MARKET: {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.01", "stopLoss": 99000},
    CommandType.ORDER_CLOSE_MARKET: {"symbol": "BTCUSDT", "positionSide": "LONG"},
    CommandType.POSITION_LEVERAGE: {"symbol": "BTCUSDT", "leverage": 20},
    CommandType.POSITION_MARGIN_MODE: {"symbol": "BTCUSDT", "marginType": "CROSSED"},
    CommandType.ACCOUNT_HALT: {"flatten": True},
    CommandType.ACCOUNT_RESUME: {},
    CommandType.COMMAND_STATUS: {"commandId": "3f0c9a", "idempotencyKey": "order-1", "symbol": "BTCUSDT"},
    CommandType.SYSTEM_PING: {},
}


def _validator(schema: dict[str, Any]) -> Any:
    return jsonschema_rs.validator_for(schema)


def test_every_command_is_in_the_asyncapi_document() -> None:
    doc = build_asyncapi("acme")
    assert doc["asyncapi"] == "3.0.0"
    assert set(COMMANDS) == set(CommandType)
    for command in CommandType:
        channel = doc["channels"][command.value]
        assert channel["address"] == command.value
        binding = channel["bindings"]["amqp"]
        assert binding["is"] == "routingKey"
        assert binding["exchange"] == {
            "name": "acme.commands",
            "type": "direct",
            "durable": True,
            "autoDelete": False,
            "vhost": "/",
        }
        operation = doc["operations"][f"send.{command.value}"]
        assert operation["action"] == "send"
        assert operation["bindings"]["amqp"]["deliveryMode"] == (2 if COMMANDS[command].mutating else 1)
        assert operation["reply"]["address"]["location"] == "$message.header#/reply_to"
        message = doc["components"]["messages"][f"{command.value}.command"]
        assert message["headers"]["properties"]["x-deadline"]["type"] == "integer"
        assert message["correlationId"]["location"] == "$message.header#/correlation_id"
        body = doc["components"]["schemas"][f"{command.value}.command"]
        assert body["properties"]["type"] == {"const": command.value}
        assert body["properties"]["payload"] == {"$ref": f"#/components/schemas/{COMMANDS[command].payload.__name__}"}
        # Generated from the model, not written by hand: the same properties, the same required list.
        generated = COMMANDS[command].payload.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in generated.pop("$defs", {}).items():
            assert doc["components"]["schemas"][name] == definition
        assert doc["components"]["schemas"][COMMANDS[command].payload.__name__] == generated
        reply = doc["components"]["schemas"][f"{command.value}.reply"]
        assert reply["then"]["properties"]["data"] == {
            "$ref": f"#/components/schemas/{COMMANDS[command].reply.__name__}"
        }
    dead = doc["channels"]["dead"]["bindings"]["amqp"]["exchange"]
    assert (dead["name"], dead["type"]) == ("acme.dead", "fanout")
    assert "x-aiqt-reason" in doc["components"]["messages"]["dead-letter"]["headers"]["properties"]
    # Every local reference resolves.
    text = json.dumps(doc)
    for ref in set(re.findall(r'"\$ref": "#/([^"]+)"', text)):
        node: Any = doc
        for part in ref.split("/"):
            node = node[part.replace("~1", "/")]


def test_json_schemas_accept_what_the_bus_accepts_and_refuse_the_rest() -> None:
    schemas = json_schemas()
    assert {f"{c.value}.{kind}" for c in CommandType for kind in ("payload", "command", "reply")} <= set(schemas)
    for command, payload in EXAMPLES.items():
        COMMANDS[command].payload.model_validate(payload)  # the worker accepts it ...
        body = {"type": command.value, "account": "main", "payload": payload}
        assert _validator(schemas[f"{command.value}.command"]).is_valid(body), command  # ... and so does the schema
        assert _validator(schemas[f"{command.value}.payload"]).is_valid(payload), command
        assert _validator(schemas["command"]).is_valid(body)
        misspelt = {**payload, "stopLose": 1}
        assert not _validator(schemas[f"{command.value}.command"]).is_valid({**body, "payload": misspelt}), command
        assert not _validator(schemas[f"{command.value}.command"]).is_valid({**body, "type": "order.nope"}), command
    open_market = _validator(schemas["order.open_market.command"])
    bad_side: dict[str, Any] = {
        "type": "order.open_market",
        "account": "main",
        "payload": {**EXAMPLES[CommandType.ORDER_OPEN_MARKET]},
    }
    bad_side["payload"]["side"] = "HOLD"
    assert not open_market.is_valid(bad_side)
    for loose in ("9e4", "1_0", "٠.٠٠٢", "0x10", " 1", "+1", ".5"):  # the schema is as strict as the worker
        loose_body = {**bad_side, "payload": {**EXAMPLES[CommandType.ORDER_OPEN_MARKET], "quantity": loose}}
        assert not open_market.is_valid(loose_body), loose
        with pytest.raises(ValueError, match="ASCII digits"):
            COMMANDS[CommandType.ORDER_OPEN_MARKET].payload.model_validate(loose_body["payload"])
    reply = _validator(schemas["position.leverage.reply"])
    assert reply.is_valid({"code": 200, "msg": "ok", "data": {"symbol": "BTCUSDT", "leverage": 3, "maxQty": "1"}})
    assert not reply.is_valid({"code": 200, "msg": "ok", "data": {"symbol": "BTCUSDT"}})
    assert reply.is_valid({"code": -4028, "msg": "Leverage 200 is not valid", "data": None})


@pytest.mark.integration
def test_gateway_serves_what_aiqt_schema_writes(stack: Stack, tmp_path: Path) -> None:
    assert stack.gateway is not None
    written = write_contract(tmp_path / "direct", namespace=stack.namespace, queue_type=stack.queue_type)
    env = {**os.environ, "AIQT_BUS_NAMESPACE": stack.namespace, "AIQT_QUEUE_TYPE": stack.queue_type}
    out = subprocess.run(
        [sys.executable, "-m", "aiqt.cli", "schema", "--out", str(tmp_path / "cli")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    listed = [Path(line) for line in out.stdout.splitlines()]
    assert [p.relative_to(tmp_path / "cli") for p in listed] == [p.relative_to(tmp_path / "direct") for p in written]
    assert len(written) == 1 + 2 + 3 * len(CommandType) + len(EventType)  # asyncapi, command, envelope, …
    with httpx.Client(base_url=stack.gateway.url, timeout=10) as http:
        for path in written:
            relative = path.relative_to(tmp_path / "direct").as_posix()
            served = http.get(f"/contract/{relative}")
            assert served.status_code == 200, relative
            assert served.headers["content-type"] == "application/json"
            assert served.content == path.read_bytes() == (tmp_path / "cli" / relative).read_bytes(), relative
        missing = http.get("/contract/schemas/nope.json")
        assert (missing.status_code, missing.json()["code"]) == (404, 404)
    doc = json.loads((tmp_path / "direct" / "asyncapi.json").read_text())
    assert doc["channels"]["order.cancel"]["bindings"]["amqp"]["exchange"]["name"] == stack.topology.commands_exchange


@pytest.mark.integration
def test_real_replies_match_the_reply_schemas(stack: Stack, account: Account) -> None:
    schemas = json_schemas()
    with stack.client(account) as c:
        replies = {
            CommandType.SYSTEM_PING: c.ping(),
            CommandType.POSITION_LEVERAGE: c.set_leverage("BTCUSDT", 7),
            CommandType.POSITION_MARGIN_MODE: c.set_margin_mode("BTCUSDT", "ISOLATED"),
            CommandType.ORDER_OPEN_MARKET: c.open_market(
                "BTCUSDT", "BUY", "0.004", stop_loss="50000", take_profit="150000"
            ),
            CommandType.ACCOUNT_SUMMARY: c.account_summary(),
            CommandType.MARKET_KLINES: c.klines("BTCUSDT", "5m", 3),
            CommandType.MARKET_FUNDING_RATE: c.funding_rate("BTCUSDT", 2),
            CommandType.ORDER_CLOSE_MARKET: c.close_market("BTCUSDT", "LONG", "0.001"),
        }
        stop_loss = replies[CommandType.ORDER_OPEN_MARKET].data["stopLoss"]["orderId"]
        replies[CommandType.ORDER_CANCEL] = c.cancel_order(stop_loss, "BTCUSDT")
        errors = [c.cancel_order(1, "BTCUSDT"), c.set_leverage("BTCUSDT", 126)]
    for command, reply in replies.items():
        assert reply.code == 200, (command, reply.msg)
        # What a non-Python subscriber sees: plain JSON numbers.
        body = json.loads(codec.dumps({"code": reply.code, "msg": reply.msg, "data": reply.data}))
        validator = _validator(schemas[f"{command.value}.reply"])
        problems = [e.message for e in validator.iter_errors(body)]
        assert not problems, (command, problems[:3])
    for reply in errors:
        assert reply.code != 200 and _validator(schemas["envelope"]).is_valid(
            {"code": reply.code, "msg": reply.msg, "data": reply.data}
        )


# --- docs/amqp.md and its example ----------------------------------------------------------------


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


def test_docs_embed_the_example_verbatim_and_name_every_command() -> None:
    page = (ROOT / "docs" / "amqp.md").read_text()
    example = (ROOT / "examples" / "amqp_publisher.py").read_text()
    assert example in _python_blocks(page)
    for command in CommandType:
        assert f"`{command.value}`" in page, command
    for word in ("message_id", "correlation_id", "reply_to", "x-deadline", "expiration", "x-aiqt-reason", ".dead"):
        assert word in page, word


@contextlib.contextmanager
def _publisher_user(stack: Stack) -> Iterator[str]:
    """A RabbitMQ user with only the permissions docs/amqp.md gives a publisher (when rabbitmqctl can
    manage the test broker; otherwise the broker's own URL)."""
    parsed = urlsplit(stack.amqp_url)
    if shutil.which("rabbitmqctl") is None or parsed.hostname not in {"127.0.0.1", "localhost"}:
        yield stack.amqp_url
        return
    user, password = f"pub-{stack.namespace}", secrets.token_hex(12)
    ns = re.escape(stack.namespace)

    def ctl(*args: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=30)

    ctl("add_user", user, password)
    try:
        ctl(
            "set_permissions",
            "-p",
            parsed.path.lstrip("/") or "/",
            user,
            rf"^{ns}\.reply\..*",
            rf"^{ns}\.commands$",
            rf"^{ns}\.reply\..*",
        )
        yield parsed._replace(netloc=f"{user}:{password}@{parsed.hostname}:{parsed.port or 5672}").geturl()
    finally:
        ctl("delete_user", user)


@pytest.mark.integration
def test_the_amqp_example_runs_against_the_real_broker(stack: Stack, account: Account) -> None:
    env = {**os.environ, "AIQT_BUS_NAMESPACE": stack.namespace, "AIQT_ACCOUNT": account.name}
    with _publisher_user(stack) as url:
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "amqp_publisher.py")],
            env={**env, "AIQT_AMQP_URL": url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    steps = [json.loads(line, parse_float=Decimal) for line in done.stdout.splitlines()]
    assert [s["step"] for s in steps] == [
        "ping",
        "account.summary",
        "order.open_market",
        "order.open_market (same command id)",
        "position.leverage (invalid)",
        "order.close_market",
    ]
    state = stack.state(account)
    market_orders = [o for o in state["orders"] if o["type"] == "MARKET"]
    assert len(market_orders) == 2  # one entry (published twice, placed once) and one close
    opened = steps[2]["data"]["market"]["clientOrderId"]
    assert sum(o["clientOrderId"] == opened for o in market_orders) == 1


def test_event_schemas_accept_what_the_streamer_publishes() -> None:
    """Each event type has a JSON Schema (and an AsyncAPI message) that a real event validates against."""
    schemas = json_schemas()
    doc = build_asyncapi("acme")
    assert set(doc["channels"]["events"]["messages"]) == {t.value for t in EventType}
    assert doc["channels"]["events"]["bindings"]["amqp"]["exchange"] == {
        "name": "acme.events",
        "type": "topic",
        "durable": True,
        "autoDelete": False,
        "vhost": "/",
    }
    position = {
        "type": "position",
        "account": "main",
        "seq": 7,
        "time": 1795937580654,
        "data": {
            "symbol": "BTCUSDT",
            "positionSide": "BOTH",
            "direction": "NEUTRAL",
            "quantity": 0,
            "entryPrice": 0,
            "unrealizedPnl": 0,
            "marginType": "CROSS",
        },
    }
    assert _validator(schemas["position.event"]).is_valid(position)
    assert not _validator(schemas["position.event"]).is_valid({**position, "seq": 0})
    assert not _validator(schemas["order.event"]).is_valid(position)
