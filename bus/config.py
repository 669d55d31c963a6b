"""Settings every bus user reads (prefix AIQT_)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BusSettings(BaseSettings):
    """Where the broker is and how commands are queued."""

    model_config = SettingsConfigDict(env_prefix="AIQT_", extra="ignore")

    amqp_url: str = Field("amqp://guest:guest@127.0.0.1:5672/", description="RabbitMQ URL")
    bus_namespace: str = Field(
        "aiqt", pattern=r"^[A-Za-z0-9_.-]+$", description="Prefix of every exchange and queue name"
    )
    queue_type: Literal["quorum", "classic"] = Field(
        "quorum", description="quorum (replicated, survives node loss) or classic durable queues"
    )
