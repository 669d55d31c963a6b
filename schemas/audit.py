"""An entry of the audit journal: one command and its outcome.

The journal answers "who did what, and what came of it" after the fact — for an agent that traded
overnight, a dispute about an order, a risk review. So an entry records the command as it arrived
(type, account, payload, who sent it) and its outcome as the caller saw it (code, msg, the orders it
touched, how long it took). It never holds a secret: the sender is named by its API key (an
identifier, sent in clear in every request) or its RabbitMQ user, never by anything that signs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: AMQP headers the gateway sets on a command so that its audit entry can name the sender.
KEY_ID_HEADER = "x-aiqt-key-id"
IDEMPOTENCY_KEY_HEADER = "x-aiqt-idempotency-key"


class AuditEntry(BaseModel):
    """One command and its outcome, as the worker that answered it wrote it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    time: int = Field(description="When the reply was sent (Unix ms, UTC)")
    commandId: str = Field(description="The command id (AMQP message_id)")
    type: str = Field(description="Command type, e.g. order.open_market ('' when the message was unreadable)")
    account: str = Field(description="The account it acted on ('' when unreadable)")
    keyId: str | None = Field(None, description="The REST API key it came through (the gateway's header)")
    amqpUser: str | None = Field(None, description="The publisher's RabbitMQ user (user_id, checked by RabbitMQ)")
    idempotencyKey: str | None = Field(None, description="The caller's Idempotency-Key, when sent through the gateway")
    payload: dict[str, Any] = Field(default_factory=dict, description="The command's fields")
    code: int = Field(description="The reply's code (200 = success)")
    msg: str = Field(description="The reply's msg")
    orderIds: list[int] = Field(default_factory=list, description="Exchange order ids in the reply (writes)")
    clientOrderIds: list[str] = Field(default_factory=list, description="Their client order ids")
    durationMs: float = Field(description="Receipt to reply, in the worker")
    queueMs: float | None = Field(None, description="Publish to receipt")
    redelivered: bool = False
    deadLetter: str | None = Field(None, description="Why the command was dead-lettered, if it was")
    worker: str = Field("", description="The worker that answered")
