"""The contract shared by the gateway, the workers and outside AMQP publishers. No I/O here."""

from schemas.commands import CommandMessage, Payload
from schemas.enums import CommandType
from schemas.registry import COMMANDS, MUTATING_COMMANDS, CommandSpec
from schemas.replies import Envelope

__all__ = ["COMMANDS", "MUTATING_COMMANDS", "CommandMessage", "CommandSpec", "CommandType", "Envelope", "Payload"]
