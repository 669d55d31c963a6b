"""The broker as the harness sees it: whether one answers at a URL, and deleting what a stack
declared on it (its namespace's queues and exchanges: commands, events, per-account state and halt flags,
audit)."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from urllib.parse import urlparse

from bus import Topology
from bus.audit import audit_exchange, audit_stream
from bus.connection import connect_first
from bus.events import EventTopology

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


def answers(url: str) -> bool:
    """Whether something accepts TCP connections at the AMQP URL's host and port."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5672), timeout=2):
            return True
    except OSError:
        return False


async def delete_namespace(amqp_url: str, topology: Topology, accounts: Iterable[str] = ()) -> None:
    connection, _ = await connect_first(amqp_url)  # a cluster's URL list: any node that answers
    events = EventTopology(topology.namespace)
    async with connection:
        channel = await connection.channel()
        queues = [topology.commands_queue, topology.dead_queue, events.journal, f"{topology.namespace}.orders.index"]
        queues += [events.state_queue(account) for account in accounts] + [audit_stream(topology)]
        queues += [topology.halt_queue(account) for account in accounts]
        queues += [topology.reads_queue, f"{topology.namespace}.governor.freeze"]
        for queue in queues:
            await channel.queue_delete(queue)
        exchanges = [topology.commands_exchange, topology.dead_exchange, events.exchange, audit_exchange(topology)]
        exchanges.append(f"{topology.namespace}.governor")
        for exchange in exchanges:
            await channel.exchange_delete(exchange)
