"""The AMQP contract, generated from `schemas/`: JSON Schemas and an AsyncAPI 3.0 document. It lives
in `bus/` so that the gateway can serve it without importing the CLI.

Nothing here is written by hand except prose: every payload, reply and envelope schema comes from
the pydantic models that the gateway and the workers validate with, so the published contract
cannot drift from the code. `aiqt schema --out DIR` writes the files; the gateway serves the same
bytes at `/contract/asyncapi.json` and `/contract/schemas/{name}.json`.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bus.events import EventTopology
from bus.topology import DELIVERY_LIMIT, Topology
from schemas import replies as r
from schemas.commands import CommandMessage
from schemas.enums import CommandType
from schemas.events import EVENT_DATA, EventType
from schemas.registry import COMMANDS

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
AMQP_BINDING_VERSION = "0.3.0"

COMMAND_HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "x-deadline": {
            "type": "integer",
            "description": "Epoch milliseconds after which the command must not run. A worker that receives it "
            "later replies 504 'expired in the queue; it was not executed' and dead-letters it. Recommended.",
        },
        "x-sent-ms": {
            "type": "integer",
            "description": "Epoch milliseconds when the command was published (optional; feeds the queue-wait metric).",
        },
    },
}

REPLY_HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "x-code": {"type": "integer", "description": "The envelope's `code`, so routers need not parse the body."},
        "x-worker-ms": {"type": "number", "description": "Time the worker spent on the command."},
        "x-queue-ms": {"type": "number", "description": "Publish to receipt (needs `x-sent-ms`)."},
        "x-retry-after": {"type": "integer", "description": "Seconds to wait, on code 429."},
    },
}

DEAD_LETTER_HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "x-aiqt-reason": {
            "type": "string",
            "description": "Why the command was dead-lettered: 'malformed: …' or 'deadline exceeded before "
            "execution; not executed'. Commands redelivered more than the delivery limit are dead-lettered by "
            "RabbitMQ itself (x-death header) without this one.",
        },
        "x-aiqt-routing-key": {"type": "string", "description": "The routing key it was published with."},
    },
}


def _command_body_schema(command: CommandType, payload: dict[str, Any]) -> dict[str, Any]:
    account = CommandMessage.model_json_schema()["properties"]["account"]
    return {
        "type": "object",
        "title": f"{command.value} command",
        "description": "The body of a command message. The routing key must be the same as `type`.",
        "properties": {
            "type": {"const": command.value},
            "account": {**account, "description": "The account the worker trades (the REST key's account)."},
            "payload": payload,
        },
        "required": ["type", "account", "payload"],
        "additionalProperties": False,
    }


def _reply_schema(command: CommandType, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "title": f"{command.value} reply",
        "description": "The `{code, msg, data}` envelope, exactly what the REST API returns. `code` 200: `data` "
        "is the reply data. Otherwise `data` is null or a detail of the error; `code` is AIQT's (400, 404, "
        "409, 429, 500, 503, 504) or Binance's own negative code, passed through.",
        "properties": {
            "code": {"type": "integer"},
            "msg": {"type": "string"},
            "data": {},
        },
        "required": ["code", "msg", "data"],
        "if": {"properties": {"code": {"const": 200}}},
        "then": {"properties": {"data": data}},
    }


def _standalone(model: type[BaseModel], mode: str) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema(mode=mode)  # type: ignore[arg-type]
    return schema


def _with_defs(defs: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Lift `$defs` to the top of a wrapping schema, where the `#/$defs/…` references still resolve."""
    inner = dict(schema)
    defs.update(inner.pop("$defs", {}))
    return inner


def json_schemas() -> dict[str, dict[str, Any]]:
    """Every JSON Schema of the contract by file name (without `.json`). Each one stands alone."""
    out: dict[str, dict[str, Any]] = {}
    out["command"] = {
        "$schema": JSON_SCHEMA_DIALECT,
        **CommandMessage.model_json_schema(),
        "description": "Any command body: `payload` is checked against `<type>.payload.json`.",
    }
    out["envelope"] = {"$schema": JSON_SCHEMA_DIALECT, **r.Envelope.model_json_schema(mode="serialization")}
    for command in CommandType:
        payload = _standalone(COMMANDS[command].payload, "validation")
        out[f"{command.value}.payload"] = {"$schema": JSON_SCHEMA_DIALECT, **payload}

        defs: dict[str, Any] = {}
        body = _command_body_schema(command, _with_defs(defs, payload))
        out[f"{command.value}.command"] = {"$schema": JSON_SCHEMA_DIALECT, **body, **({"$defs": defs} if defs else {})}

        defs = {}
        data = _with_defs(defs, _standalone(COMMANDS[command].reply, "serialization"))
        reply = _reply_schema(command, data)
        out[f"{command.value}.reply"] = {"$schema": JSON_SCHEMA_DIALECT, **reply, **({"$defs": defs} if defs else {})}
    for event_type, model in EVENT_DATA.items():
        defs = {}
        data = _with_defs(defs, _standalone(model, "serialization"))
        body = _event_schema(event_type, data)
        out[f"{event_type.value}.event"] = {"$schema": JSON_SCHEMA_DIALECT, **body, **({"$defs": defs} if defs else {})}
    return out


# --- AsyncAPI ------------------------------------------------------------------------------------


def _component(schemas: dict[str, Any], model: type[BaseModel], mode: str, name: str | None = None) -> dict[str, Any]:
    """Add `model` (and its definitions) to components.schemas; return a $ref to it."""
    schema: dict[str, Any] = model.model_json_schema(
        mode=mode,  # type: ignore[arg-type]
        ref_template="#/components/schemas/{model}",
    )
    for key, value in schema.pop("$defs", {}).items():
        if key in schemas and schemas[key] != value:
            raise ValueError(f"two different schemas are both called {key}")
        schemas[key] = value
    key = name or model.__name__
    schemas[key] = schema
    return {"$ref": f"#/components/schemas/{key}"}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/{kind}/{name.replace('/', '~1')}"}


def build_asyncapi(namespace: str = "aiqt", queue_type: str = "quorum") -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the command bus for the given namespace."""
    topology = Topology(namespace, queue_type)
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    exchange_binding = {
        "amqp": {
            "is": "routingKey",
            "exchange": {
                "name": topology.commands_exchange,
                "type": "direct",
                "durable": True,
                "autoDelete": False,
                "vhost": "/",
            },
            "bindingVersion": AMQP_BINDING_VERSION,
        }
    }
    _component(schemas, r.Envelope, "serialization")
    reply_messages: dict[str, Any] = {}

    for command in CommandType:
        key = command.value
        payload_ref = _component(schemas, COMMANDS[command].payload, "validation")
        data_ref = _component(schemas, COMMANDS[command].reply, "serialization")
        schemas[f"{key}.command"] = _command_body_schema(command, payload_ref)
        schemas[f"{key}.reply"] = _reply_schema(command, data_ref)
        mutating = COMMANDS[command].mutating
        messages[f"{key}.command"] = {
            "name": key,
            "title": f"{key} command",
            "summary": (COMMANDS[command].payload.__doc__ or "").strip().splitlines()[0],
            "description": f"Same fields as `{COMMANDS[command].route}`. "
            + (
                "Changes state at the exchange: the command id (`message_id`) is its idempotency key; "
                "publishing it again returns the first outcome and never acts twice."
                if mutating
                else "Read-only: safe to publish again with a new id."
            ),
            "contentType": "application/json",
            "correlationId": {"location": "$message.header#/correlation_id"},
            "headers": COMMAND_HEADERS,
            "payload": _ref("components/schemas", f"{key}.command"),
            "bindings": {"amqp": {"messageType": key, "bindingVersion": AMQP_BINDING_VERSION}},
        }
        reply_name = f"{key}.reply"
        messages[reply_name] = {
            "name": reply_name,
            "title": f"{key} reply",
            "contentType": "application/json",
            "correlationId": {"location": "$message.header#/correlation_id"},
            "headers": REPLY_HEADERS,
            "payload": _ref("components/schemas", reply_name),
        }
        reply_messages[reply_name] = _ref("components/messages", reply_name)
        channels[key] = {
            "address": key,
            "title": f"{topology.commands_exchange} → {key}",
            "description": f"Publish to exchange `{topology.commands_exchange}` with routing key `{key}`"
            + (
                f" (lands in the {queue_type} queue `{topology.commands_queue}`)."
                if mutating
                else f" (lands in the read lane, the classic non-durable queue `{topology.reads_queue}`; "
                "publish transient, publisher confirms not needed: a lost read is asked again)."
            ),
            "messages": {"command": _ref("components/messages", f"{key}.command")},
            "bindings": exchange_binding,
        }
        operations[f"send.{key}"] = {
            "action": "send",
            "title": f"Send {key}",
            "channel": _ref("channels", key),
            "messages": [_ref(f"channels/{key}/messages", "command")],
            "bindings": {
                "amqp": {
                    # Writes: persistent, confirmed, mandatory. Reads take the fast lane: transient.
                    "deliveryMode": 2 if mutating else 1,
                    "mandatory": mutating,
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
            "reply": {
                "address": {
                    "location": "$message.header#/reply_to",
                    "description": "The publisher's own (exclusive) reply queue, named in `reply_to`.",
                },
                "channel": _ref("channels", "reply"),
                "messages": [_ref("channels/reply/messages", reply_name)],
            },
        }

    channels["reply"] = {
        "address": None,
        "title": "Replies",
        "description": "Workers publish each reply to the default exchange with routing key = the command's "
        "`reply_to`, carrying its `correlation_id`. Not persistent: declare the reply queue before publishing.",
        "messages": reply_messages,
    }
    channels["dead"] = {
        "address": "",
        "title": topology.dead_exchange,
        "description": f"Fanout exchange `{topology.dead_exchange}` bound to the queue `{topology.dead_queue}`: "
        f"malformed commands, commands past their `x-deadline`, and commands redelivered more than "
        f"{DELIVERY_LIMIT} times (a worker crashing on each).",
        "messages": {"dead": _ref("components/messages", "dead-letter")},
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": {
                    "name": topology.dead_exchange,
                    "type": "fanout",
                    "durable": True,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
    }
    messages["dead-letter"] = {
        "name": "dead-letter",
        "title": "Dead-lettered command",
        "contentType": "application/json",
        "headers": DEAD_LETTER_HEADERS,
        "payload": _ref("components/schemas", "CommandMessage"),
    }
    _component(schemas, CommandMessage, "validation")
    _events(namespace, schemas, messages, channels, operations)
    operations["receive.dead"] = {
        "action": "receive",
        "title": "Inspect dead-lettered commands (operators)",
        "channel": _ref("channels", "dead"),
        "messages": [_ref("channels/dead/messages", "dead")],
    }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "AIQT command bus",
            "version": "0.1.0",
            "description": _DESCRIPTION.format(
                exchange=topology.commands_exchange,
                queue=topology.commands_queue,
                reads=topology.reads_queue,
                queue_type=queue_type,
                dead=topology.dead_exchange,
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The broker your AIQT workers consume from. Outside publishers authenticate with "
                "RabbitMQ users and vhost permissions; the bus never carries exchange credentials.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": dict(sorted(schemas.items())), "messages": messages},
    }


def _event_schema(event_type: EventType, data_ref: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "title": f"{event_type.value} event",
        "properties": {
            "type": {"const": event_type.value},
            "account": {"type": "string"},
            "seq": {"type": "integer", "minimum": 1, "description": "+1 per account: a gap means a missed event"},
            "time": {"type": "integer", "description": "The exchange's event time (ms)"},
            "data": data_ref,
        },
        "required": ["type", "account", "seq", "time", "data"],
    }


def _events(
    namespace: str,
    schemas: dict[str, Any],
    messages: dict[str, Any],
    channels: dict[str, Any],
    operations: dict[str, Any],
) -> None:
    """The events channel: `{ns}.events`, a topic exchange; one message per event type."""
    topology = EventTopology(namespace)
    event_messages: dict[str, Any] = {}
    for event_type, model in EVENT_DATA.items():
        name = f"{event_type.value}.event"
        schemas[name] = _event_schema(event_type, _component(schemas, model, "serialization"))
        messages[name] = {
            "name": name,
            "title": f"{event_type.value} event",
            "summary": (model.__doc__ or event_type.value).strip().splitlines()[0],
            "contentType": "application/json",
            "payload": _ref("components/schemas", name),
            "bindings": {"amqp": {"messageType": event_type.value, "bindingVersion": AMQP_BINDING_VERSION}},
        }
        event_messages[event_type.value] = _ref("components/messages", name)
    channels["events"] = {
        "address": "{account}.{type}",
        "title": topology.exchange,
        "description": f"Topic exchange `{topology.exchange}`: routing key `<account>.<type>` for account events "
        "and `market.<SYMBOL>.<stream>` for market data (markPrice, kline_1m). Bind a queue of your own. Account "
        f"events are also kept in the stream `{topology.journal}` (7 days), replayable by offset or time. "
        "Delivery is at least once: `seq` (and an order's id and status) let you drop a repeat.",
        "parameters": {"account": {"description": "The account name"}, "type": {"enum": [t.value for t in EventType]}},
        "messages": event_messages,
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": {
                    "name": topology.exchange,
                    "type": "topic",
                    "durable": True,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
    }
    operations["receive.events"] = {
        "action": "receive",
        "title": "Subscribe to account events",
        "channel": _ref("channels", "events"),
        "messages": [_ref("channels/events/messages", t.value) for t in EventType],
    }


_DESCRIPTION = """\
Commands for Binance USDⓈ-M futures, executed by AIQT workers. Publish a JSON body
`{{"type", "account", "payload"}}` to the durable direct exchange `{exchange}` with routing key = `type`
(commands that change state land in the durable {queue_type} queue `{queue}`; commands that only read
land in the classic non-durable queue `{reads}`; every worker consumes both), and these properties:

- `message_id`: the command id, your idempotency key (≤ 128 chars). Required. For commands that change
  state, publishing the same id again returns the first outcome and never places a second order.
- `correlation_id` and `reply_to`: where the reply goes, and how you match it.
- `content_type`: `application/json`; for commands that change state, `delivery_mode`: 2 (persistent),
  published with `mandatory` and publisher confirms, so that an unroutable command fails at once. Reads
  may be published transient (`delivery_mode` 1) without confirms: if one is lost, ask again.
- `expiration` (ms) and header `x-deadline` (epoch ms): when you stop waiting. A command past its
  deadline is never executed; it is dead-lettered to `{dead}` with header `x-aiqt-reason`.

The reply is the REST API's `{{code, msg, data}}` envelope, published to `reply_to` with the same
`correlation_id` and header `x-code`. Money is a JSON number with exact digits (or a numeric string in
payloads); parse it as a decimal, never as a float.
"""


def render(document: dict[str, Any]) -> bytes:
    """The bytes written to disk and served by the gateway (stable key order, UTF-8)."""
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


@functools.lru_cache(maxsize=8)
def contract_files(namespace: str = "aiqt", queue_type: str = "quorum") -> dict[str, bytes]:
    """Every file of the contract by relative path: `asyncapi.json` and `schemas/<name>.json`."""
    files = {"asyncapi.json": render(build_asyncapi(namespace, queue_type))}
    for name, schema in json_schemas().items():
        files[f"schemas/{name}.json"] = render(schema)
    return files


def write_contract(out: Path, namespace: str | None = None, queue_type: str | None = None) -> list[Path]:
    """Write `asyncapi.json` and `schemas/*.json` under `out`; return the paths written.

    The namespace and queue type default to what the processes read (`AIQT_BUS_NAMESPACE`,
    `AIQT_QUEUE_TYPE`), so the files match what a gateway with the same environment serves.
    """
    if namespace is None or queue_type is None:
        from bus.config import BusSettings

        settings = BusSettings()
        namespace = namespace or settings.bus_namespace
        queue_type = queue_type or settings.queue_type
    written = []
    for relative, content in contract_files(namespace, queue_type).items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    return written
