"""Gateway settings (prefix AIQT_). Built once in `aiqt gateway` and passed in."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, model_validator

from bus.config import BusSettings
from schemas.enums import Scope

#: The scopes of a key that names none: everything but the kill switch.
DEFAULT_SCOPES = (Scope.READ, Scope.TRADE)


class ClientKey(BaseModel):
    """A REST client's API key pair, the account it trades, and what it may do there."""

    key: str = Field(min_length=8, max_length=128)
    secret: SecretStr
    account: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    scopes: frozenset[Scope] = Field(
        frozenset(DEFAULT_SCOPES),
        description='"read" (account, market data, command status), "trade" (orders, positions), '
        '"admin" (halt and resume); default ["read", "trade"]',
    )


class GatewaySettings(BusSettings):
    gateway_host: str = Field("127.0.0.1", description="Address the REST API listens on")
    gateway_port: int = Field(8000, description="Port of the REST API")
    client_keys: list[ClientKey] = Field(
        default_factory=list,
        description='REST API keys: [{"key": "...", "secret": "...", "account": "main", "scopes": ["read", "trade"]}]',
    )
    client_keys_file: Path | None = Field(None, description="JSON file of the same shape as AIQT_CLIENT_KEYS")
    request_timeout: float = Field(
        10.0, gt=0, le=120, description="Seconds a request waits for its reply; also the command's deadline"
    )
    max_body_bytes: int = Field(65536, ge=1024, description="Largest accepted request body")
    idempotency_ttl: float = Field(86400.0, gt=0, description="Seconds a completed Idempotency-Key is remembered")
    idempotency_max_entries: int = Field(100_000, ge=100, description="Completed keys remembered per gateway")

    @model_validator(mode="after")
    def _load_keys_file(self) -> GatewaySettings:
        if self.client_keys_file is not None:
            known = {k.key for k in self.client_keys}
            for raw in json.loads(self.client_keys_file.read_text()):
                key = ClientKey.model_validate(raw)
                if key.key not in known:
                    self.client_keys.append(key)
        return self
