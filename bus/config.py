"""Settings every bus user reads (prefix AIQT_)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bus.connection import parse_nodes


class BusSettings(BaseSettings):
    """Where the broker is and how commands are queued."""

    # hide_input_in_errors: a bad AIQT_AMQP_URL must not be echoed, password and all, in the error.
    model_config = SettingsConfigDict(env_prefix="AIQT_", extra="ignore", hide_input_in_errors=True)

    amqp_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/",
        description=(
            "RabbitMQ URL, or the URLs of a cluster's nodes comma-separated: each process connects to the "
            "first that answers and fails over to the next when its node goes away"
        ),
    )
    bus_namespace: str = Field(
        "aiqt", pattern=r"^[A-Za-z0-9_.-]+$", description="Prefix of every exchange and queue name"
    )
    queue_type: Literal["quorum", "classic"] = Field(
        "quorum", description="quorum (replicated, survives node loss) or classic durable queues"
    )

    @field_validator("amqp_url")
    @classmethod
    def _valid_nodes(cls, value: str) -> str:
        parse_nodes(value)  # raises ValueError naming the bad URL by position, never its password
        return value
