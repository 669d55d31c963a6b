"""One logical connection to RabbitMQ, which may be a cluster of several nodes.

`AIQT_AMQP_URL` lists one node URL or several, comma-separated. A cluster is one broker to AIQT: a
process connects to the first node that answers and, when that node goes away, fails over to the
next one — it does not wait for its own node to come back.

Why not aio-pika's `connect_robust`: it reconnects to the one URL it was given, so a process whose
node left stays down until that node returns (measured on a 3-node cluster: the quorum command queue
kept every command, but the gateway on the stopped node answered 503 until it was started again).
So this module owns the reconnect loop: plain connections, tried node by node starting with the one
after the node that failed, and a setup callback (`on_connect`) that each user (the RPC client, the
consumer) runs on every new connection to open its channels, declare the topology and consume.

What happens to work in flight is decided by the users, not here: a publish that was not confirmed
when the connection dropped raises (the RPC client answers 503); a reply not received by the
deadline is a 504; a worker's unacked deliveries are redelivered by RabbitMQ, and the command lock
(`bus/lock.py`, an exclusive queue) dies with its connection.

Passwords never leave this module: nodes are logged and shown as `host:port`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aiormq
from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import AMQPError

from bus.errors import BusUnavailable

log = logging.getLogger("aiqt.bus.connection")

#: How long one node may take to accept a connection before the next one is tried.
NODE_CONNECT_TIMEOUT = 3.0
#: Pause after every node of the list has failed once, growing up to the maximum.
ROUND_PAUSE = 0.25
ROUND_PAUSE_MAX = 2.0

OnConnect = Callable[[AbstractConnection], Awaitable[None]]


@dataclass(frozen=True)
class Node:
    """One broker node: its URL (with credentials) and how it may be shown (without them)."""

    url: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.address

    def __repr__(self) -> str:
        return f"Node({self.address})"


def parse_nodes(amqp_url: str) -> tuple[Node, ...]:
    """The nodes of an `AIQT_AMQP_URL` value, in order; ValueError (naming no password) if any is invalid."""
    parts = [p.strip() for p in amqp_url.split(",")]
    if not any(parts):
        raise ValueError("no RabbitMQ URL given")
    nodes: list[Node] = []
    for i, part in enumerate(parts, 1):
        if not part:
            raise ValueError(f"URL {i} of {len(parts)} is empty (stray comma?)")
        try:
            split = urlsplit(part)
            port = split.port
        except ValueError as exc:  # a bad port; the message does not contain the URL
            raise ValueError(f"URL {i} of {len(parts)} is not a valid URL: {exc}") from None
        if split.scheme not in ("amqp", "amqps"):
            raise ValueError(f"URL {i} of {len(parts)} must start with amqp:// or amqps://")
        if not split.hostname:
            raise ValueError(f"URL {i} of {len(parts)} has no host")
        default = 5671 if split.scheme == "amqps" else 5672
        nodes.append(Node(url=part, host=split.hostname, port=port or default))
    return tuple(nodes)


def describe(amqp_url: str) -> str:
    """`host:port, host:port, …` of an `AIQT_AMQP_URL` value, for logs and banners (no credentials)."""
    try:
        return ", ".join(n.address for n in parse_nodes(amqp_url))
    except ValueError:
        return "(invalid AIQT_AMQP_URL)"


async def open_connection(url: str, *, name: str, timeout: float) -> AbstractConnection:
    """`aio_pika.connect`, but a connection interrupted half-way (a timeout, a cancelled task) is
    closed here rather than left for the garbage collector, which cannot close it outside its loop."""
    made: list[aio_pika.Connection] = []

    class Tracked(aio_pika.Connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    try:
        return await aio_pika.connect(
            url, client_properties={"connection_name": name}, timeout=timeout, connection_class=Tracked
        )
    except BaseException:
        for connection in made:
            with contextlib.suppress(Exception):
                await connection.close()
        raise


async def connect_first(
    amqp_url: str, *, name: str = "aiqt", timeout: float = NODE_CONNECT_TIMEOUT
) -> tuple[AbstractConnection, Node]:
    """A plain connection to the first node that answers (for one-shot tools and tests)."""
    errors: list[str] = []
    for node in parse_nodes(amqp_url):
        try:
            connection = await open_connection(node.url, name=name, timeout=timeout)
        except (OSError, AMQPError, aiormq.exceptions.AMQPError, TimeoutError) as exc:
            errors.append(f"{node}: {type(exc).__name__}")
            continue
        return connection, node
    raise BusUnavailable(f"no RabbitMQ node answers ({'; '.join(errors)})")


class ClusterConnection:
    """A connection to whichever node of the list answers, re-made on the next node when it drops.

    `on_connect(connection)` runs on every new connection before it counts as up; if it raises, that
    node counts as failed and the next one is tried. A user whose channel dies while the connection
    lives on calls `lost(connection)`, and the connection is re-made the same way.
    """

    def __init__(
        self,
        amqp_url: str,
        *,
        name: str,
        on_connect: OnConnect,
        node_timeout: float = NODE_CONNECT_TIMEOUT,
    ) -> None:
        self.nodes = parse_nodes(amqp_url)
        self._name = name
        self._on_connect = on_connect
        self._node_timeout = node_timeout
        self._connection: AbstractConnection | None = None
        self._node: Node | None = None
        self._up = asyncio.Event()
        self._lost: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._last_error = "not tried yet"
        #: How many times a connection has been made (1 after the first; more after failovers).
        self.connects = 0

    @property
    def connection(self) -> AbstractConnection | None:
        """The current connection, if it is up."""
        conn = self._connection
        return conn if conn is not None and not conn.is_closed else None

    @property
    def node(self) -> Node | None:
        """The node the current connection is to."""
        return self._node if self.connection is not None else None

    @property
    def connected_url(self) -> str | None:
        """`host:port` of the node this process is connected to, None while it is not."""
        node = self.node
        return node.address if node is not None else None

    async def start(self, *, timeout: float = 10.0) -> None:
        """Connect; BusUnavailable if no node answered within `timeout`. Unless closed, this keeps
        trying in the background after such a failure, so a process started before its broker
        connects by itself when one answers."""
        self._closing = False
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._supervise(), name=f"{self._name} connection")
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            raise BusUnavailable(
                f"cannot connect to RabbitMQ at {', '.join(map(str, self.nodes))}: {self._last_error}"
            ) from None

    def lost(self, connection: AbstractConnection | None = None) -> None:
        """The current connection (or `connection`, if it is still the current one) is unusable."""
        if connection is not None and connection is not self._connection:
            return
        if self._lost is not None:
            self._lost.set()

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drop()

    async def _drop(self) -> None:
        conn, self._connection = self._connection, None
        self._up.clear()
        if conn is not None and not conn.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2.0)

    async def _supervise(self) -> None:
        index = 0
        pause = ROUND_PAUSE
        while not self._closing:
            made = await self._connect_round(index)
            if made is None:
                await asyncio.sleep(pause)
                pause = min(pause * 2, ROUND_PAUSE_MAX)
                continue
            pause = ROUND_PAUSE
            index, lost = made
            await lost.wait()
            node = self._node
            await self._drop()
            if self._closing:
                return
            log.warning("lost RabbitMQ node %s; failing over to the next node", node)
            index = (index + 1) % len(self.nodes)

    async def _connect_round(self, start: int) -> tuple[int, asyncio.Event] | None:
        """Try every node once, starting at `start`; (its index, its lost event) for the first that works."""
        for offset in range(len(self.nodes)):
            index = (start + offset) % len(self.nodes)
            node = self.nodes[index]
            lost = asyncio.Event()
            try:
                conn = await open_connection(node.url, name=self._name, timeout=self._node_timeout)
            except (OSError, AMQPError, aiormq.exceptions.AMQPError, TimeoutError) as exc:
                self._last_error = f"{node}: {type(exc).__name__}"
                log.debug("RabbitMQ node %s does not answer: %s", node, type(exc).__name__)
                continue

            def on_close(*_: Any, lost: asyncio.Event = lost) -> None:
                lost.set()

            conn.close_callbacks.add(on_close)
            self._connection, self._node, self._lost = conn, node, lost
            try:
                await asyncio.wait_for(self._on_connect(conn), self._node_timeout * 3)
                if conn.is_closed or lost.is_set():
                    raise ConnectionError("the connection closed during set-up")
            except asyncio.CancelledError:
                await self._drop()
                raise
            except Exception as exc:
                self._last_error = f"{node}: set-up failed ({type(exc).__name__})"
                log.warning("RabbitMQ node %s: set-up failed (%s: %s)", node, type(exc).__name__, exc)
                await self._drop()
                continue
            self.connects += 1
            self._up.set()
            log.info("connected to RabbitMQ node %s (%d of %d)", node, index + 1, len(self.nodes))
            return index, lost
        return None
