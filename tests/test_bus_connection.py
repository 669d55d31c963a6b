"""`AIQT_AMQP_URL` with several nodes: parsing, no password in errors or logs, the first node that
answers, failing over on a lost connection. The cluster itself is exercised in
tests/reliability/test_cluster.py; these run against the one shared broker plus closed ports."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pydantic
import pytest

from bus import BusSettings, RpcClient
from bus.connection import ClusterConnection, describe, parse_nodes
from bus.errors import BusUnavailable
from harness.broker import delete_namespace
from harness.servers import free_port

SECRET = "s3cr3t-pw"


def test_parse_nodes_in_order_with_default_ports() -> None:
    nodes = parse_nodes(f" amqp://u:{SECRET}@h1:5681/ ,amqp://u:{SECRET}@h2/vh, amqps://h3 ")
    assert [n.address for n in nodes] == ["h1:5681", "h2:5672", "h3:5671"]
    assert nodes[1].url == f"amqp://u:{SECRET}@h2/vh"
    assert SECRET not in repr(nodes) and SECRET not in " ".join(map(str, nodes))
    assert describe(f"amqp://u:{SECRET}@h1:5681/,amqp://h2:5682/") == "h1:5681, h2:5682"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "no RabbitMQ URL"),
        (f"amqp://u:{SECRET}@h1/,,amqp://h3/", "URL 2 of 3 is empty"),
        (f"http://u:{SECRET}@h1/", "must start with amqp://"),
        (f"amqp://u:{SECRET}@:5672/", "has no host"),
        (f"amqp://u:{SECRET}@h1:99999/", "not a valid URL"),
    ],
)
def test_invalid_urls_are_refused_without_echoing_the_password(value: str, says: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        BusSettings(amqp_url=value)
    assert says in str(info.value)
    assert SECRET not in str(info.value)
    assert describe(value) == "(invalid AIQT_AMQP_URL)"


def _closed_url() -> str:
    return f"amqp://guest:{SECRET}@127.0.0.1:{free_port()}/"  # nothing listens there


@pytest.mark.integration
async def test_connects_to_the_first_node_that_answers(amqp_url: str, caplog: pytest.LogCaptureFixture) -> None:
    settings = BusSettings(amqp_url=f"{_closed_url()},{amqp_url}", bus_namespace=f"test-{uuid.uuid4().hex[:12]}")
    rpc = RpcClient(settings)
    caplog.set_level(logging.DEBUG, logger="aiqt.bus")
    try:
        await rpc.start(timeout=10)
        assert rpc.connected
        assert rpc.connected_url == parse_nodes(amqp_url)[0].address
        assert rpc.connects == 1
    finally:
        await rpc.close()
        await delete_namespace(amqp_url, rpc.topology)
    assert "does not answer" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.integration
async def test_no_node_answers_is_bus_unavailable_and_names_no_password() -> None:
    bus = ClusterConnection(f"{_closed_url()},{_closed_url()}", name="t", on_connect=_nothing)
    try:
        with pytest.raises(BusUnavailable) as info:
            await bus.start(timeout=1.0)
    finally:
        await bus.close()
    assert "127.0.0.1:" in str(info.value) and SECRET not in str(info.value)
    assert bus.connection is None and bus.connected_url is None


@pytest.mark.integration
async def test_a_lost_connection_is_made_again_and_set_up_again(amqp_url: str) -> None:
    setups: list[str | None] = []

    async def on_connect(connection: object) -> None:
        setups.append(bus.connected_url)

    # One node listed twice: after a loss the next entry is tried (here: the same broker again).
    bus = ClusterConnection(f"{amqp_url},{amqp_url}", name="t", on_connect=on_connect)
    try:
        await bus.start(timeout=10)
        first = bus.connection
        assert first is not None
        await first.close()  # as when the node goes away
        for _ in range(100):
            if bus.connection is not None and bus.connection is not first:
                break
            await asyncio.sleep(0.05)
        assert bus.connection is not None and bus.connection is not first
        assert bus.connects == 2 and len(setups) == 2
    finally:
        await bus.close()
    assert bus.connection is None


async def _nothing(connection: object) -> None:
    return None
