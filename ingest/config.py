"""Sources (network-server connections) from a TOML file, and the bridge's tuning from the environment.

Unknown keys in the sources file are an error, not ignored: a misspelt
`pasword_env` silently ignored would connect without credentials and fail far
from the typo. Secrets never sit in the file: `password_env` names the
environment variable that holds them, and they are read as `SecretStr` so that
no log line or repr shows them.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.errors import ConfigurationError
from domain.uplink import DEFAULT_MAX_FUTURE, NetworkServer

_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class SourceConfig(BaseModel):
    """One network-server MQTT connection, belonging to one municipality."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=_NAME, description="unique; shown in logs and metrics")]
    kind: NetworkServer
    municipality: Annotated[str, Field(pattern=_NAME, description="slug; created if missing")]
    municipality_name: str | None = None
    host: str | None = Field(default=None, description="MQTT broker; omit for a webhook-only source")
    port: int | None = Field(default=None, ge=1, le=65535)
    tls: bool | None = None
    ca_file: str | None = None
    username: str | None = None
    password_env: str | None = None
    topic: str | list[str] | None = None
    qos: Literal[0, 1] | None = None
    mqtt_version: Literal["3.1.1", "5"] | None = None
    client_id: str | None = Field(default=None, max_length=64)
    keepalive_s: int = Field(default=60, ge=5, le=3600)
    # The Things Stack Storage Integration, for backfilling gaps after an outage.
    storage_api_url: str | None = None
    storage_api_key_env: str | None = None
    backfill_max_hours: float = Field(default=24.0, gt=0)
    # HTTP integrations (webhooks) into `/v1/ingest/...` for this source.
    webhook_secret_env: str | None = None

    @model_validator(mode="after")
    def _credentials_come_in_pairs(self) -> SourceConfig:
        if self.password_env is not None and self.username is None:
            raise ValueError("password_env without username")
        if self.host is None and self.webhook_secret_env is None:
            raise ValueError("a source needs an MQTT host, a webhook_secret_env, or both")
        return self

    @property
    def uses_mqtt(self) -> bool:
        return self.host is not None

    @property
    def uses_tls(self) -> bool:
        """TLS is on by default for The Things Stack, whose public servers offer nothing else."""
        return self.tls if self.tls is not None else self.kind is NetworkServer.TTS

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else (8883 if self.uses_tls else 1883)

    @property
    def effective_qos(self) -> int:
        """The Things Stack's MQTT server supports QoS 0 only; ChirpStack's brokers take QoS 1."""
        if self.qos is not None:
            return self.qos
        return 0 if self.kind is NetworkServer.TTS else 1

    @property
    def effective_mqtt_version(self) -> str:
        """MQTT 5 where possible: its Receive Maximum lets a batching bridge hold many unacked messages."""
        if self.mqtt_version is not None:
            return self.mqtt_version
        return "3.1.1" if self.kind is NetworkServer.TTS else "5"

    def topics(self, defaults: tuple[str, ...]) -> tuple[str, ...]:
        if self.topic is None:
            return defaults
        return (self.topic,) if isinstance(self.topic, str) else tuple(self.topic)

    def password(self) -> SecretStr | None:
        return _secret_from_env(self.password_env, self.name)

    def webhook_secret(self) -> SecretStr | None:
        return _secret_from_env(self.webhook_secret_env, self.name)

    def storage_api_key(self) -> SecretStr | None:
        return _secret_from_env(self.storage_api_key_env or self.password_env, self.name)

    @property
    def tts_application_id(self) -> str | None:
        """`app-id@tenant` → `app-id`: the Storage Integration addresses the application alone."""
        if self.username is None:
            return None
        return self.username.split("@", 1)[0]


def _secret_from_env(variable: str | None, source_name: str) -> SecretStr | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if value is None:
        raise ConfigurationError(f"source {source_name!r}: environment variable {variable} is not set")
    return SecretStr(value)


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: list[SourceConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_are_unique(self) -> SourcesFile:
        names = [source.name for source in self.source]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"source names must be unique, repeated: {', '.join(repeated)}")
        return self


def load_sources(path: Path) -> list[SourceConfig]:
    """Read and validate a sources file; every problem is reported with its location."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"sources file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return SourcesFile.model_validate(document).source
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigurationError(f"{path}: {problems}") from exc


class IngestSettings(BaseSettings):
    """How the bridge batches and paces itself (LORAKOM_INGEST_…)."""

    model_config = SettingsConfigDict(env_prefix="LORAKOM_INGEST_", extra="forbid")

    batch_size: int = Field(default=2000, ge=1)
    flush_interval_ms: int = Field(default=200, ge=1)
    max_pending: int = Field(default=20000, ge=10)
    writers: int = Field(
        # Three keep PostgreSQL busy while one bridge parses: 2 → 3 took one bridge from
        # ~12,400 to ~14,200 uplinks/s in bench_ingest; 4 gave nothing more.
        default=3,
        ge=1,
        le=8,
        description="database connections writing batches in parallel",
    )
    device_refresh_s: float = Field(default=2.0, gt=0)
    max_future_s: float = Field(
        default=DEFAULT_MAX_FUTURE.total_seconds(),
        ge=0,
        description="a network server's time further ahead of this clock is replaced by it (and flagged)",
    )
    stats_interval_s: float = Field(default=10.0, gt=0)
    fast_path: bool = Field(
        default=True,
        description="receive through the fast packet path when the installed paho has what it needs;"
        " false: always through paho's public on_message path",
    )
    shared_group: str | None = None
    instance: str | None = None

    @property
    def max_future(self) -> timedelta:
        return timedelta(seconds=self.max_future_s)

    @model_validator(mode="after")
    def _group_is_a_topic_level(self) -> IngestSettings:
        if self.shared_group is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", self.shared_group):
            raise ValueError("shared_group must be letters, digits, '-' or '_'")
        return self
