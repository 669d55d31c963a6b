"""The contract shared by the gateway, the workers and outside AMQP publishers. No I/O here."""

from schemas.commands import PAYLOADS, CommandMessage, Payload
from schemas.enums import MUTATING_COMMANDS, CommandType
from schemas.replies import Envelope

__all__ = ["MUTATING_COMMANDS", "PAYLOADS", "CommandMessage", "CommandType", "Envelope", "Payload"]
