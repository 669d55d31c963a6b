"""The RabbitMQ command bus: topology, the RPC client, the consumer loop. Knows nothing of HTTP
or Binance; aio-pika is imported only here."""

from bus.config import BusSettings
from bus.consumer import CommandConsumer, Delivery, HandlerResult
from bus.errors import BusError, BusTimeout, BusUnavailable, CommandLocked
from bus.rpc import RpcClient, RpcReply
from bus.topology import Topology

__all__ = [
    "BusError",
    "BusSettings",
    "BusTimeout",
    "BusUnavailable",
    "CommandConsumer",
    "CommandLocked",
    "Delivery",
    "HandlerResult",
    "RpcClient",
    "RpcReply",
    "Topology",
]
